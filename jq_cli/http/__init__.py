"""The optional HTTP shim (`jq serve`): the operations of jq_cli.ops over JSON, nothing more.

Needs the `http` extra (`pip install 'jq-cli[http]'`); the rest of jq never imports this package.
"""

from __future__ import annotations

from jq_cli.http.app import create_app

__all__ = ["create_app"]
