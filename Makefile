# Two commands do all the set-up: `make book` and `make test` (see README.md).
# Both create the virtual environment in .venv when it is missing and reinstall only when
# requirements.lock or pyproject.toml changed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= quick

.PHONY: all venv book test lint pytest clean help

all: book

help:
	@echo "make book     - build the book into _build/html (creating .venv if needed)"
	@echo "make test     - lint with ruff and run every test (creating .venv if needed)"
	@echo "make clean    - remove build outputs (not the virtual environment)"

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

book: $(STAMP)
	$(BIN)/jupyter-book build . --builder html
	@echo "Book: _build/html/index.html"

lint: $(STAMP)
	$(BIN)/ruff check .

pytest: $(STAMP)
	$(BIN)/python -m pytest

test: lint pytest

clean:
	rm -rf _build .pytest_cache .ruff_cache
