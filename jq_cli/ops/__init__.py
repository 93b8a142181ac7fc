"""The operations every front end calls (CLI, `jq top`, the HTTP shim, the Python API)."""
