"""The migration files as the runner reads them (no service needed)."""

from __future__ import annotations

from jq_cli.store import available_migrations
from jq_cli.store.migrations import NO_TRANSACTION, split_statements


def test_a_no_transaction_file_splits_into_its_statements_without_comments():
    text = (
        "-- jq: no-transaction\n-- why\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS a ON jobs (x); -- trailing\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS b\n    ON jobs (y) WHERE state IN ('a;b');\n"
    )
    assert NO_TRANSACTION.search(text)
    assert split_statements(text) == [
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS a ON jobs (x)",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS b\n    ON jobs (y) WHERE state IN ('a;b')",
    ]


def test_every_index_on_jobs_after_001_is_built_concurrently_outside_a_transaction():
    # 001 creates the table empty; from then on a build inside a transaction would lock out every
    # job write for as long as it takes on a big table.
    checked = 0
    for version, name, path in available_migrations():
        if version == 1:
            continue
        text = path.read_text(encoding="utf-8")
        for statement in split_statements(text):
            flat = " ".join(statement.split())
            if "INDEX" in flat and " ON jobs " in flat:
                assert "CONCURRENTLY" in flat and NO_TRANSACTION.search(text), (name, flat)
                checked += 1
    assert checked >= 4
