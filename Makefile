# The two commands a new machine needs: `make run` (the demo) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCK   := requirements.lock

.PHONY: run test test-unit test-integration test-acceptance lint docs cli-reference bench bench-quick bench-memory bench-leases chaos cluster scale install lock migrate clean

# pyproject.toml bounds each dependency's major version; $(LOCK) pins the exact versions the tests
# passed with, and install takes those (as constraints: the package itself stays editable).
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c $(LOCK) -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Refresh the lock after changing a dependency in pyproject.toml: `make lock` installs the newest
# versions pyproject.toml allows into a scratch venv and writes what it got to $(LOCK). Then run
# `make install lint test` on it, and commit pyproject.toml and $(LOCK) together.
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet --upgrade pip
	.venv-lock/bin/pip install --quiet -e '.[test]'
	{ echo '# The exact versions the tests pass with; make install uses them as constraints (see the Makefile: make lock).'; \
	  .venv-lock/bin/pip freeze --exclude-editable; } > $(LOCK)
	rm -rf .venv-lock

migrate: $(STAMP)
	$(BIN)/jq db migrate

run: migrate
	$(BIN)/jq demo

# Everything: tests/unit (no services), tests/integration (jq in-process against the real PostgreSQL,
# RabbitMQ and Redis) and tests/acceptance (whole processes: the CLI, daemons, the browser, chaos and
# cluster subsets, README examples), in TEST_PROCS parallel test processes (pytest-xdist). Each test
# has its own namespace; each process migrates one schema and lends it to its tests in turn
# (tests/schema_pool.py). Most tests wait on services and subprocesses rather than compute, hence
# more processes than the two cores. loadgroup keeps a module's shared fixture in one process.
# Tests marked `alone` assert on timings that the others' load would distort: they run afterwards,
# by themselves.
TEST_PROCS ?= 6
PARALLEL   := -n $(TEST_PROCS) --dist loadgroup -m "not alone"

test: $(STAMP)
	$(BIN)/pytest -q $(PARALLEL)
	$(BIN)/pytest -q -m alone || [ $$? -eq 5 ]  # 5: no test is marked alone

# The unit tier alone: no service needed, a few seconds.
test-unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

test-integration: $(STAMP)
	$(BIN)/pytest -q $(PARALLEL) tests/integration
	$(BIN)/pytest -q -m alone tests/integration || [ $$? -eq 5 ]

test-acceptance: $(STAMP)
	$(BIN)/pytest -q $(PARALLEL) tests/acceptance

# The gate CI runs before the tests: lint, format check and types (configured in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check jq_cli bench chaos cluster tests
	$(BIN)/ruff format --check jq_cli bench chaos cluster tests
	$(BIN)/mypy jq_cli bench chaos cluster

# The documentation site (docs/, mkdocs.yml): MkDocs with the Material theme, --strict, into site/.
# Nothing is fetched at build time. The `docs` extra holds both; the `test` extra too.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# docs/reference/cli.md from the Typer app; tests/unit/test_docs.py fails while it is stale.
cli-reference: $(STAMP)
	$(BIN)/python docs/gen_cli_reference.py

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

# Issue 12's leases part alone: 1,000 jobs held running (row versions, index entries, cancel latency).
bench-leases: migrate
	$(BIN)/python -m bench --only leases --json bench/results-leases.json

# The fault suite: private PostgreSQL/RabbitMQ/Redis (ports 5433, 5673, 6380), never the shared ones.
chaos: install
	$(BIN)/python -m chaos

# Several hosts (network namespaces, root): a RabbitMQ cluster, a PostgreSQL primary with a
# synchronous standby, the scaling figure and the loss of each part (issue 17). Under 15 minutes.
cluster: install
	$(BIN)/python -m cluster

# tests/integration/test_scale.py at ten million jobs (make test runs it at one million): EXPLAIN ANALYZE of
# every duty-loop and dashboard query, their times against a key lookup, the online upgrade.
scale: install
	JQ_SCALE_ROWS=10000000 JQ_SCALE_EXPLAIN=1 $(BIN)/pytest -q -s --timeout 3600 tests/integration/test_scale.py

clean:
	rm -rf $(VENV) .venv-lock build dist *.egg-info .bench site
