# rpbot: `make dev` to play locally, `make test` to run every test (real Synapse included).
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: dev test clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet -e '.[test,homeserver]'
	touch $(STAMP)

dev: $(STAMP)
	$(VENV)/bin/rpbot dev

test: $(STAMP)
	$(VENV)/bin/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache
