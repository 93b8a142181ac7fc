"""Files a user names (payloads, bulk jobs, schedules, API keys): read as UTF-8 text, or one clear
InvalidInput naming the file, never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jq_cli.errors import InvalidInput


def read_user_text(path: str | Path, what: str) -> str:
    """The text of `path`; `what` names the file in errors ("payload file", "JQ_API_KEYS_FILE")."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read {what} {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{what} {path} is not UTF-8 text") from None


# A user's YAML is a tree of plain values. Anchors and aliases let a few hundred bytes stand for
# billions of nodes (an "alias bomb"), and every level of nesting costs the composer a level of
# recursion: refuse both while composing, before anything is built.
MAX_YAML_DEPTH = 40  # a schedule file's own levels, then a payload's MAX_DEPTH (jobspec.py)


def load_user_yaml(text: str, what: str) -> Any:
    """The YAML document of `text`, composed by yaml's safe loader with no anchor, alias or
    nesting past MAX_YAML_DEPTH. Raises InvalidInput naming `what` ("schedule file PATH")."""
    import yaml

    class PlainLoader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise InvalidInput(f"{what}: YAML anchors and aliases (&, *) are not accepted")
            self.depth += 1
            if self.depth > MAX_YAML_DEPTH:
                raise InvalidInput(f"{what} is nested deeper than {MAX_YAML_DEPTH} levels")
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    loader = PlainLoader(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{what} is not valid YAML: {' '.join(str(exc).split())}") from None
    finally:
        loader.dispose()
