# One command sets up and runs the default scenario; one runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo app test test-fast bench clean

$(BIN)/cssim: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(BIN)/cssim

setup: $(BIN)/cssim

demo: setup
	$(BIN)/cssim run scenarios/baseline.yaml --out results/baseline --force

# The planning page on http://127.0.0.1 (SCENARIO=high_touch or a YAML file to start elsewhere).
SCENARIO ?= baseline
app: setup
	$(BIN)/cssim app $(SCENARIO)

test: setup
	$(BIN)/python -m pytest -q

# The inner loop: everything but the slow statistical checks and the notebooks.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not notebook"

bench: setup
	for f in benchmarks/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) results .pytest_cache
