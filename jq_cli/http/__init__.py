"""The optional HTTP shim (`jq serve`): the operations of jq_cli.client over JSON, nothing more.

Needs the `http` extra (`pip install 'jq-cli[http]'`); the rest of jq never imports this package.
Its API keys (keys.py) are shared with `jq top --web`, which must not need FastAPI: create_app is
therefore imported on first use, not with the package.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from jq_cli.http.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
