# The two commands a fresh machine needs: `make demo` and `make test`.
# Each creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/sessionlens demo --db demo.duckdb --out demo-report

lint: $(STAMP)
	$(BIN)/ruff check src tests bench notebooks
	$(BIN)/ruff format --check src tests bench notebooks

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest -q

docs: $(STAMP)
	$(BIN)/python -c "import sessionlens as sl; from sessionlens.store import schema_markdown; print(schema_markdown(sl.connect()), end='')" > docs/tables.md

clean:
	rm -rf $(VENV) demo.duckdb demo-report .pytest_cache .mypy_cache .ruff_cache
