# The two commands a new machine needs: `make run` (the demo) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench bench-quick bench-memory chaos install migrate clean

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
	$(BIN)/ruff check jq_cli bench chaos tests
	$(BIN)/ruff format --check jq_cli bench chaos tests

# jq beside pgqueuer, Dramatiq, Celery, Procrastinate and RQ, the services' own limits, and the
# targets of issue 12 as ratios (about 12 minutes here). The peers' venvs are built on first use
# under .bench/venvs/ from bench/peers/*/requirements.txt. bench-quick: small counts, a smoke run.
bench: migrate
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-quick: migrate
	$(BIN)/python -m bench --quick $(BENCH_ARGS)

# W5 alone at the count of its target: one worker's RSS over 100,000 jobs (5+ minutes here).
bench-memory: migrate
	$(BIN)/python -m bench --only W5 --w5-jobs 100000 --json bench/results-memory.json

# The fault suite: private PostgreSQL/RabbitMQ/Redis (ports 5433, 5673, 6380), never the shared ones.
chaos: install
	$(BIN)/python -m chaos

clean:
	rm -rf $(VENV) build dist *.egg-info .bench
