"""The `jq` command line (Typer + Rich)."""
