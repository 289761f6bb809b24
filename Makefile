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

# Two workers, each with its own nats-server, one test file each at a time (a file's module fixtures
# stay in one process): most tests wait on servers and timeouts, so this halves the wall time.
test: install
	$(BIN)/python -m pytest -q -m "not model" -n 2 --dist loadfile

# The model path against the real local model (scripts/local_model/ builds and fetches it; about
# 10 minutes on 2 cores, one test at a time).
test-model: install
	$(BIN)/python -m pytest -q -m model tests/model

lint: install
	$(BIN)/ruff check services tests bench scripts
	$(BIN)/ruff format --check services tests bench scripts
	$(BIN)/mypy
