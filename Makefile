# The two quick-start commands of the README: `make demo` and `make test`.
# Each creates .venv on first use and installs the project into it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/conductor: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

.PHONY: demo test lint
demo: $(BIN)/conductor
	$(BIN)/conductor demo

test: $(BIN)/conductor
	$(BIN)/ruff check .
	$(BIN)/ruff format --check --quiet .
	$(BIN)/mypy
	$(BIN)/pytest -q

lint: $(BIN)/conductor
	$(BIN)/ruff check .
