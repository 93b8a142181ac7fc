"""The built-in job types: send_email and process_video (simulated), scrape_website (real), noop."""
from __future__ import annotations

import ipaddress
import random
import re
import socket
import time
from typing import Literal
from urllib.parse import urljoin, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from jq_cli.handlers.registry import InvalidPayload, JobContext, PermanentError, job

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_SCRAPE_BYTES = 5 * 1024 * 1024
MAX_REDIRECTS = 5
MAX_MATCHES = 1000


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http or https URL")
    return value


class EmailPayload(_Payload):
    to: str = Field(max_length=254)
    subject: str = Field(max_length=998)
    body: str = Field(max_length=1_000_000)
    failure_rate: float = Field(0.0, ge=0, le=1)

    @field_validator("to")
    @classmethod
    def _address(cls, value: str) -> str:
        if not EMAIL.match(value):
            raise ValueError("must be an email address")
        return value


class DeliveryFailed(Exception):
    """The simulated mail server refused the message (a transient failure: retried)."""


@job("send_email", payload=EmailPayload)
def send_email(payload: EmailPayload, ctx: JobContext) -> dict:
    """Simulated email delivery that fails with probability failure_rate."""
    time.sleep(random.uniform(0.01, 0.05))
    if random.random() < payload.failure_rate:
        raise DeliveryFailed(f"simulated SMTP failure delivering to {payload.to} (failure_rate={payload.failure_rate})")
    return {"delivered_to": payload.to, "message_id": f"<{ctx.job_id}.{ctx.attempt}@jq.local>"}


class VideoPayload(_Payload):
    video_url: str = Field(max_length=2048)
    output_format: Literal["mp4", "webm", "mkv", "mov", "avi", "gif"] = "mp4"
    duration: float = Field(5.0, gt=0, le=3600, description="seconds of simulated work")

    _url = field_validator("video_url")(classmethod(lambda cls, v: _http_url(v)))


@job("process_video", payload=VideoPayload)
def process_video(payload: VideoPayload, ctx: JobContext) -> dict:
    """Simulated transcoding that reports its progress as it goes and stops when cancelled."""
    steps = max(1, min(100, int(payload.duration * 4)))
    for step in range(1, steps + 1):
        if ctx.wait_cancelled(payload.duration / steps):
            from jq_cli.handlers.registry import Cancelled

            raise Cancelled(f"cancelled at {100 * (step - 1) // steps}%")
        ctx.progress(100 * step / steps, f"transcoding to {payload.output_format}")
    name = urlsplit(payload.video_url).path.rsplit("/", 1)[-1].rsplit(".", 1)[0] or "video"
    return {"output": f"{name}.{payload.output_format}", "format": payload.output_format,
            "duration": payload.duration}


class ScrapePayload(_Payload):
    url: str = Field(max_length=2048)
    selector: str = Field(max_length=1000)
    timeout: float = Field(10.0, gt=0, le=120)

    _url = field_validator("url")(classmethod(lambda cls, v: _http_url(v)))

    @field_validator("selector")
    @classmethod
    def _css(cls, value: str) -> str:
        import soupsieve

        try:
            soupsieve.compile(value)
        except Exception as exc:  # soupsieve raises several error kinds for bad selectors
            raise ValueError(f"not a valid CSS selector: {exc}".splitlines()[0]) from None
        return value


def _refuse_private(url: str, allow_private: bool) -> None:
    """Refuse a URL whose host resolves to anything but globally routable addresses, so that a
    submitted job cannot make a worker probe its own network (SSRF)."""
    if allow_private:
        return
    parts = urlsplit(url)
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
                                   proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise ConnectionError(f"cannot resolve {parts.hostname}: {exc}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if not address.is_global:
            raise PermanentError(
                f"refusing to fetch {parts.hostname}: it resolves to the non-public address {address}"
                " (set JQ_SCRAPE_ALLOW_PRIVATE=1 to allow)"
            )


@job("scrape_website", payload=ScrapePayload)
def scrape_website(payload: ScrapePayload, ctx: JobContext) -> dict:
    """A real HTTP GET; the result is the text of the elements the CSS selector matches."""
    import requests
    from bs4 import BeautifulSoup

    allow_private = bool(getattr(ctx.settings, "scrape_allow_private", False))
    url = payload.url
    with requests.Session() as session:
        for _ in range(MAX_REDIRECTS + 1):
            _refuse_private(url, allow_private)  # every hop: a redirect may point inwards
            response = session.get(url, timeout=payload.timeout, allow_redirects=False, stream=True,
                                   headers={"User-Agent": "jq-scraper/1"})
            if response.is_redirect:
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
                    raise PermanentError(f"response from {url} is larger than {MAX_SCRAPE_BYTES} bytes")
    soup = BeautifulSoup(body, "html.parser")
    matches = [el.get_text(" ", strip=True) for el in soup.select(payload.selector, limit=MAX_MATCHES)]
    return {"url": url, "status": response.status_code, "count": len(matches), "matches": matches}


class NoopPayload(BaseModel):
    model_config = ConfigDict(extra="allow")


@job("noop", payload=NoopPayload)
def noop(payload: NoopPayload, ctx: JobContext) -> None:
    """Does nothing: for benchmarks and smoke tests."""
    return None


__all__ = ["DeliveryFailed", "InvalidPayload"]
