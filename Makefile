# Two commands do all the set-up on a fresh machine:  `make demo`  and  `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/prodcat: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

.PHONY: install demo lint test bench stop
install: $(BIN)/prodcat

demo: install  ## start the stack, train + announce a small model, replay a sample feed through a worker, show results
	$(BIN)/prodcat demo

lint: install  ## the floors (.importlinter: a dependency pointing upwards fails), ruff, mypy
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/mypy

test: install  ## unit + integration tests; the session fixture starts and stops the real stack
	$(BIN)/pytest

stop:  ## the demo's worker and pages, then the stack
	$(BIN)/prodcat demo --stop
	$(BIN)/prodcat stack down
