# Two set-up-included entry points: `make bench` and `make test`.
# Each creates .venv (once, or again when pyproject.toml changes) and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: bench test clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

## A short benchmark on the embedded SQLite: ORM vs raw, insert and upsert, then the results table.
bench: $(VENV)/.installed
	$(PY) -m sqlite_bench.before_after --scales 50K,100K --mode both

## The test suite.
test: $(VENV)/.installed
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) results .pytest_cache .hypothesis
