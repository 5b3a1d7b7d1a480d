# Two commands do all the set-up on a fresh machine:  `make demo`  and  `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/prodcat: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

.PHONY: install demo test bench stop
install: $(BIN)/prodcat

demo: install  ## start the stack and a worker, replay a sample feed, print category counts
	$(BIN)/prodcat demo

test: install  ## unit + integration tests; the session fixture starts and stops the real stack
	$(BIN)/pytest

stop:
	$(BIN)/prodcat stack down
