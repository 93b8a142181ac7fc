"""Which web sites may talk to `jq serve` and `jq top --web`: the one rule both servers apply.

A page of another site open in an operator's browser can reach a server on loopback in two ways:
by sending it a request (a bodyless cross-site POST needs no CORS preflight), and by a name of
its own that resolves to 127.0.0.1 (DNS rebinding: the browser then treats the server as that
site, and reads its answers). The Host allow-list refuses the second; the Origin check on every
state-changing request refuses the first.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from jq_cli.config import Settings
from jq_cli.http.keys import ApiKeys, is_loopback

# Methods that change state: a browser sends these cross-site, with an Origin header.
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ANY_HOST = "*"


def hostname(host: str) -> str:
    """The name in a Host header, lowercased, without its port (an IPv6 address keeps its
    colons, without brackets)."""
    try:
        return (urlsplit(f"//{host.strip()}").hostname or "").lower()
    except ValueError:  # a malformed header: no name, so never allowed
        return ""


class AllowedHosts:
    """The names a request's Host header may carry: loopback names and addresses always, the
    address the server is bound to, and the names an operator configured (JQ_SERVE_ALLOWED_HOSTS,
    `--allowed-host`); `*` among them allows any."""

    def __init__(self, names: Iterable[str] = (), bind: str | None = None) -> None:
        listed = {hostname(n) if n.strip() != ANY_HOST else ANY_HOST for n in names if n.strip()}
        if bind:
            listed.add(hostname(f"[{bind}]" if ":" in bind else bind))
        self.any = ANY_HOST in listed
        self.names = frozenset(listed - {ANY_HOST, ""})

    def __repr__(self) -> str:
        return f"AllowedHosts({sorted(self.names)}{', *' if self.any else ''})"

    def allows(self, host: str | None) -> bool:
        """Whether a request whose Host header is `host` may be answered (HTTP/1.1 requires the
        header, so a request without one is refused)."""
        if self.any:
            return True
        name = hostname(host or "")
        return bool(name) and (is_loopback(name) or name in self.names)


def same_origin(origin: str | None, host: str | None) -> bool:
    """Whether a request's Origin header names this server (the Host it was sent to). No Origin
    means no browser sent it cross-site (a script or curl: its key decides); `null` (a sandboxed
    or file: page) and any other site are not this server."""
    if origin is None:
        return True
    try:
        return bool(host) and urlsplit(origin.strip()).netloc.lower() == (host or "").lower()
    except ValueError:  # not a URL
        return False


def split_hosts(value: str | None) -> list[str]:
    """The names of a comma-separated setting, blanks dropped."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def default_hosts(
    settings: Settings, keys: ApiKeys, names: Iterable[str] = (), bind: str | None = None
) -> AllowedHosts:
    """The Host allow-list of a shim: loopback, `bind`, JQ_SERVE_ALLOWED_HOSTS and `names`.
    Keyless, it is always enforced (the shim is open to whatever reaches it); with keys and no
    name configured it allows any Host, as behind a proxy that names the service its own way."""
    configured = [*split_hosts(settings.serve_allowed_hosts), *names]
    if keys and not configured:
        return AllowedHosts(["*"])
    return AllowedHosts(configured, bind=bind)
