"""The panels of `jq top`, one widget per module."""
