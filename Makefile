# Two commands for a newcomer: `make demo` runs the product, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-model lint install

$(BIN)/oncall: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/oncall

install: $(BIN)/oncall

demo: install
	$(BIN)/oncall demo

test: install
	$(BIN)/python -m pytest -q -m "not model"

# The model path against the real local model (scripts/local_model/ builds and fetches it; about
# 10 minutes on 2 cores, one test at a time).
test-model: install
	$(BIN)/python -m pytest -q -m model tests/model

lint: install
	$(BIN)/ruff check services tests bench scripts
	$(BIN)/ruff format --check services tests bench scripts
	$(BIN)/mypy
