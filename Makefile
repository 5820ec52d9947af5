# The two commands of the README. Each creates the virtual environment on first use.
VENV ?= .venv
BIN := $(VENV)/bin

$(BIN)/fsgen: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

.PHONY: main test test-slow
main: $(BIN)/fsgen         ## the main job: adapt the embedded default source to the embedded target, offline
	$(BIN)/fsgen adapt

test: $(BIN)/fsgen         ## lint, the import contracts (pyproject.toml [tool.importlinter]), then the fast CPU test suite
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q

test-slow: $(BIN)/fsgen    ## real-data runs (needs ../shared)
	$(BIN)/python -m pytest -q -m slow
