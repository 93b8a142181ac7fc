"""The `jq scheduler` daemon: the owner of time, one small duty per module."""
