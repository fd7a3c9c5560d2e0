# The README's two commands: `make demo` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
DEVSTAMP = $(VENV)/.installed-dev

.PHONY: demo test test-deps lint typecheck pytest bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("faultloop needs Python 3.11+, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $@

$(DEVSTAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/faultloop demo

lint: $(DEVSTAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

typecheck: $(DEVSTAMP)
	$(BIN)/mypy

test-deps:
	sh scripts/test-deps.sh

pytest: $(DEVSTAMP) test-deps
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

bench: $(DEVSTAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
