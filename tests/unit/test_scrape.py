"""scrape_website's guard against server-side request forgery: hosts are judged on the addresses
they resolve to, the connection goes to the judged address, and every redirect is judged again."""

from __future__ import annotations

import http.server
import ipaddress
import socket
import threading

import pytest
from jq_cli.handlers.registry import JobContext, PermanentError
from jq_cli.handlers.scrape import (
    ScrapePayload,
    is_public,
    resolve_public,
    scrape_website,
)


class _Settings:
    def __init__(self, allow_private: bool):
        self.scrape_allow_private = allow_private


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "10.1.2.3",
        "192.168.0.10",
        "172.16.0.1",
        "169.254.169.254",
        "::1",
        "fd00::1",
        "0.0.0.0",
        "100.64.0.1",
    ],
)
def test_non_public_addresses_are_refused_for_good(host):
    with pytest.raises(PermanentError, match="non-public address"):
        resolve_public(host, 80, allow_private=False)


@pytest.mark.parametrize(
    "host",
    [
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::808:808",  # NAT64 of a public address: refused all the same
        "64:ff9b:1::a00:1",  # local-use NAT64 of 10.0.0.1
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "::7f00:1",  # IPv4-compatible ::127.0.0.1
        "::a9fe:a9fe",  # IPv4-compatible ::169.254.169.254
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:8.8.8.8",  # IPv4-mapped, public inside
        "::ffff:0:7f00:1",  # IPv4-translated (SIIT)
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    ],
)
def test_ipv6_forms_embedding_an_ipv4_address_are_refused(host):
    with pytest.raises(PermanentError, match="non-public address"):
        resolve_public(host, 80, allow_private=False)


@pytest.mark.parametrize("address", ["2001:4860:4860::8888", "2606:4700::1111", "8.8.8.8"])
def test_native_public_addresses_are_allowed(address):
    assert is_public(ipaddress.ip_address(address))


def test_a_name_with_any_private_answer_is_refused(monkeypatch):
    real = socket.getaddrinfo

    def answers(host, *args, **kwargs):
        if host == "mixed.test":  # one public and one private answer, as a rebinding attacker gives
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 80)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 80)),
            ]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", answers)
    with pytest.raises(PermanentError, match=r"127\.0\.0\.1"):
        resolve_public("mixed.test", 80, allow_private=False)


@pytest.fixture
def server():
    seen: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append({"path": self.path, "host": self.headers["Host"]})
            if self.path == "/to-file":
                self.send_response(302)
                self.send_header("Location", "file:///etc/passwd")
                self.end_headers()
                return
            body = b"<p class='x'>pinned</p>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1], seen
    httpd.shutdown()


def _run(url: str, allow_private: bool) -> dict:
    payload = ScrapePayload(url=url, selector="p.x", timeout=5)
    return scrape_website(payload, JobContext(1, 1, settings=_Settings(allow_private)))


def test_the_connection_goes_to_the_judged_address_and_keeps_the_name(monkeypatch, server):
    port, seen = server
    real = socket.getaddrinfo
    lookups: list[str] = []

    def answers(host, *args, **kwargs):
        lookups.append(host)
        if host == "pinned.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", answers)
    result = _run(f"http://pinned.test:{port}/page", allow_private=True)
    assert result["matches"] == ["pinned"]
    assert seen == [{"path": "/page", "host": f"pinned.test:{port}"}]
    assert lookups.count("pinned.test") == 1  # judged once; urllib3 then connected to the address


def test_a_loopback_url_is_refused_before_any_request_is_sent(server):
    port, seen = server
    with pytest.raises(PermanentError, match="non-public"):
        _run(f"http://127.0.0.1:{port}/page", allow_private=False)
    assert seen == []


def test_a_redirect_to_another_scheme_is_refused(server):
    port, _seen = server
    with pytest.raises(PermanentError, match="only http and https"):
        _run(f"http://127.0.0.1:{port}/to-file", allow_private=True)
