"""The chaos suite of jq (`make chaos`): real daemons, one fault at a time, figures from Postgres.

Kept import-light: `jq worker --import chaos.jobs` imports this package inside every worker.
"""
