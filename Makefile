# The two set-up commands of the README:
#   make demo   installs everything into .venv and runs the demo
#   make test   installs everything (PostgreSQL server and Chromium included) and runs the whole test suite
# and the other lanes of the suite (the README's Development section says what each runs and how long):
#   make check  the fast lane while you work: lint, then every test but Spark's and the long ones
#   make long   the long attacks only (the `long` marker), before an issue is closed
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo check test long lint bench schema clean

install: $(VENV)/.installed

# Says what it installs before pip starts, and lets pip show each package and its download
# (the first install takes a couple of minutes; a silent one looks hung).
$(VENV)/.installed: pyproject.toml
	@echo "Installing pqlkit into $(VENV) with everything it can use: Ibis with DuckDB, PostgreSQL"
	@echo "and Spark (PySpark), the collector's server, scikit-learn, the hand-off and CRM clients,"
	@echo "the web app, and the test tools (pytest, Playwright). About 2 minutes the first time."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --progress-bar on -e ".[dev]"
	@echo "Installed into $(VENV); pql is $(BIN)/pql."
	touch $@

demo: install
	$(BIN)/pql demo

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

check: install
	bash scripts/ensure-postgres
	bash scripts/ensure-chromium
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/python -m pytest -n 3 --dist loadfile -m "not spark and not long"

test: install
	bash scripts/ensure-postgres
	bash scripts/ensure-chromium
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -n 3 --dist loadfile -m "not long"

long: install
	bash scripts/ensure-postgres
	$(BIN)/python -m pytest -n 3 --dist loadfile -m long || [ $$? -eq 5 ]  # 5: no test is marked long yet

schema: install
	$(BIN)/python -m pqlkit.model.schema > schemas/pql-model-v1.json

bench: install
	$(BIN)/python bench/bench_score.py

clean:
	rm -rf $(VENV) pql-demo .pytest_cache .mypy_cache .ruff_cache
