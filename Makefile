# The two commands a new machine needs: `make run` (the demo) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench chaos cluster install migrate clean

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

# The gate CI runs before the tests: lint and format check.
lint: $(STAMP)
	$(BIN)/ruff check jq_cli bench chaos cluster tests
	$(BIN)/ruff format --check jq_cli bench chaos cluster tests

bench: migrate
	$(BIN)/python -m bench

# The fault suite: private PostgreSQL/RabbitMQ/Redis (ports 5433, 5673, 6380), never the shared ones.
chaos: install
	$(BIN)/python -m chaos

# Several hosts (network namespaces, root): a RabbitMQ cluster, a PostgreSQL primary with a
# synchronous standby, the scaling figure and the loss of each part (issue 17). Under 15 minutes.
cluster: install
	$(BIN)/python -m cluster

clean:
	rm -rf $(VENV) build dist *.egg-info
