# The two commands a new machine needs: `make run` (the demo) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-unit lint bench chaos install migrate clean

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

# Everything: tests/unit (no services) and tests/integration (the real PostgreSQL, RabbitMQ, Redis).
test: $(STAMP)
	$(BIN)/pytest -q

# The unit tier alone: no service needed, a few seconds.
test-unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

# The gate CI runs before the tests: lint and format check.
lint: $(STAMP)
	$(BIN)/ruff check jq_cli bench chaos tests
	$(BIN)/ruff format --check jq_cli bench chaos tests

bench: migrate
	$(BIN)/python -m bench

# The fault suite: private PostgreSQL/RabbitMQ/Redis (ports 5433, 5673, 6380), never the shared ones.
chaos: install
	$(BIN)/python -m chaos

clean:
	rm -rf $(VENV) build dist *.egg-info
