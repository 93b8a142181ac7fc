"""The scrape_website job type: a real HTTP GET and a CSS selector, safe to offer to submitters.

A submitted URL must not let a worker probe its own network (SSRF). Every host is judged on the
addresses it resolves to, not on the text of the URL, and the connection is made to the very
address that was judged (so a DNS answer that changes between the check and the connect — DNS
rebinding — cannot slip through). Every redirect hop is judged again. Refusals are permanent.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from jq_cli.handlers.builtin import http_url
from jq_cli.handlers.registry import JobContext, PermanentError, job

if TYPE_CHECKING:
    import requests

MAX_SCRAPE_BYTES = 5 * 1024 * 1024
MAX_REDIRECTS = 5
MAX_MATCHES = 1000
# IPv6 ranges that carry an IPv4 address inside them, which a gateway, a tunnel or the kernel
# itself may turn into that IPv4 address: ipaddress calls several of them global whatever the
# address they embed (64:ff9b::7f00:1 reaches 127.0.0.1 through a NAT64 gateway). They are
# refused outright: a public site has a native address of one family or the other.
EMBEDDING_IPV4 = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "::/96",  # IPv4-compatible (deprecated), ::a.b.c.d
        "::ffff:0:0/96",  # IPv4-mapped, ::ffff:a.b.c.d
        "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
        "64:ff9b::/96",  # NAT64, the well-known prefix
        "64:ff9b:1::/48",  # NAT64, local-use prefixes
        "2001::/32",  # Teredo
        "2002::/16",  # 6to4
    )
)


class ScrapePayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048)
    selector: str = Field(max_length=1000)
    timeout: float = Field(10.0, gt=0, le=120)

    _url = field_validator("url")(classmethod(lambda cls, v: http_url(v)))

    @field_validator("selector")
    @classmethod
    def _css(cls, value: str) -> str:
        import soupsieve

        try:
            soupsieve.compile(value)
        except Exception as exc:  # soupsieve raises several error kinds for bad selectors
            raise ValueError(f"not a valid CSS selector: {exc}".splitlines()[0]) from None
        return value


def resolve_public(host: str, port: int, allow_private: bool) -> str:
    """The first address `host` resolves to, after checking that every address it resolves to is
    globally routable (unless allow_private). Raises PermanentError for a refused host."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise ConnectionError(f"cannot resolve {host}: {exc}") from None
    addresses = [str(info[4][0]).split("%", 1)[0] for info in infos]
    if not allow_private:
        for text in addresses:
            address = ipaddress.ip_address(text)
            if not is_public(address):
                raise PermanentError(
                    f"refusing to fetch {host}: it resolves to the non-public address {address}"
                    " (set JQ_SCRAPE_ALLOW_PRIVATE=1 to allow)"
                )
    return addresses[0]


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether a worker may connect to `address` for a submitter: globally routable, and not an
    IPv6 form that embeds an IPv4 address (EMBEDDING_IPV4)."""
    if isinstance(address, ipaddress.IPv6Address) and any(address in net for net in EMBEDDING_IPV4):
        return False
    return address.is_global


def _pinned_session(allow_private: bool) -> requests.Session:
    """A requests Session whose connections go to the address resolve_public() judged, while the
    Host header, SNI and certificate checks keep using the name."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class Pinned:
        # A mixin for urllib3's connection classes, which have these.
        host: str
        port: int

        def _new_conn(self) -> Any:
            # urllib3 connects to self._dns_host; the name stays in self.host.
            self._dns_host = resolve_public(self.host, self.port, allow_private)
            return super()._new_conn()  # type: ignore[misc]  # from the connection class

    class PinnedHTTP(Pinned, HTTPConnection):
        pass

    class PinnedHTTPS(Pinned, HTTPSConnection):
        pass

    class PinnedHTTPPool(HTTPConnectionPool):
        ConnectionCls = PinnedHTTP

    class PinnedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = PinnedHTTPS

    class PinnedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {
                "http": PinnedHTTPPool,
                "https": PinnedHTTPSPool,
            }

    session = requests.Session()
    session.trust_env = False  # a proxy from the environment would make the pinning moot
    session.mount("http://", PinnedAdapter())
    session.mount("https://", PinnedAdapter())
    return session


@job("scrape_website", payload=ScrapePayload)
def scrape_website(payload: ScrapePayload, ctx: JobContext) -> dict:
    """A real HTTP GET; the result is the text of the elements the CSS selector matches."""
    from bs4 import BeautifulSoup

    allow_private = bool(getattr(ctx.settings, "scrape_allow_private", False))
    url = payload.url
    with _pinned_session(allow_private) as session:
        for _ in range(MAX_REDIRECTS + 1):
            if urlsplit(url).scheme not in ("http", "https"):
                raise PermanentError(f"refusing to follow a redirect to {url}: only http and https")
            response = session.get(
                url,
                timeout=payload.timeout,
                allow_redirects=False,
                stream=True,
                headers={"User-Agent": "jq-scraper/1"},
            )
            if response.is_redirect:  # each hop is resolved and judged again by the adapter
                url = urljoin(url, response.headers["location"])
                response.close()
                continue
            break
        else:
            raise PermanentError(f"more than {MAX_REDIRECTS} redirects")
        with response:
            if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                raise PermanentError(f"HTTP {response.status_code} from {url}")
            response.raise_for_status()
            body = b""
            for chunk in response.iter_content(65536):
                body += chunk
                if len(body) > MAX_SCRAPE_BYTES:
                    raise PermanentError(
                        f"response from {url} is larger than {MAX_SCRAPE_BYTES} bytes"
                    )
    soup = BeautifulSoup(body, "html.parser")
    matches = [
        el.get_text(" ", strip=True) for el in soup.select(payload.selector, limit=MAX_MATCHES)
    ]
    return {"url": url, "status": response.status_code, "count": len(matches), "matches": matches}
