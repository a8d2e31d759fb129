# The two set-up commands of the README:
#   make demo   installs everything into .venv and runs the demo
#   make test   installs everything (PostgreSQL server and Chromium included) and runs the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint bench schema clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

demo: install
	$(BIN)/pql demo

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

test: install
	bash scripts/ensure-postgres
	bash scripts/ensure-chromium
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -n 3 --dist loadfile

schema: install
	$(BIN)/python -m pqlkit.model.schema > schemas/pql-model-v1.json

bench: install
	$(BIN)/python bench/bench_score.py

clean:
	rm -rf $(VENV) pql-demo .pytest_cache .mypy_cache .ruff_cache
