# The two commands a new machine needs: `make run` (the demo) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench chaos scale install migrate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

migrate: $(STAMP)
	$(BIN)/jq db migrate

run: migrate
	$(BIN)/jq demo

test: $(STAMP)
	$(BIN)/pytest -q

# The gate CI runs before the tests: lint, format check and types (configured in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check jq_cli bench chaos tests
	$(BIN)/ruff format --check jq_cli bench chaos tests
	$(BIN)/mypy jq_cli bench chaos

bench: migrate
	$(BIN)/python -m bench

# The fault suite: private PostgreSQL/RabbitMQ/Redis (ports 5433, 5673, 6380), never the shared ones.
chaos: install
	$(BIN)/python -m chaos

# tests/test_scale.py at ten million jobs (make test runs it at one million): EXPLAIN ANALYZE of
# every duty-loop and dashboard query, their times against a key lookup, the online upgrade.
scale: install
	JQ_SCALE_ROWS=10000000 JQ_SCALE_EXPLAIN=1 $(BIN)/pytest -q -s --timeout 3600 tests/test_scale.py

clean:
	rm -rf $(VENV) build dist *.egg-info
