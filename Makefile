# rpbot: `make dev` to play locally, `make test` to run every test (real Synapse included),
# `make test-fast` for the tests that need no homeserver, `make lint` for ruff and mypy.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: dev test test-fast lint clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet -e '.[test,homeserver]'
	touch $(STAMP)

dev: $(STAMP)
	$(VENV)/bin/rpbot dev

ELEMENT_CLIENT := tests/element/node_modules/.package-lock.json

$(ELEMENT_CLIENT): tests/element/package-lock.json
	cd tests/element && npm ci --no-audit --no-fund

# The suite runs in parallel (pytest-xdist): the real-Synapse tests mostly wait (on rate limits, the
# bot, the homeserver), so more workers than cores pay. Each worker starts its own homeservers and
# takes one test at a time from a queue that hands out the long ones first (tests/conftest.py).
TEST_WORKERS ?= 4
PARALLEL = -n $(TEST_WORKERS) --dist load --maxschedchunk 1

test: $(STAMP) $(ELEMENT_CLIENT)
	$(VENV)/bin/python -m pytest $(PARALLEL)

test-fast: $(STAMP)
	$(VENV)/bin/python -m pytest $(PARALLEL) -m "not synapse"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache
