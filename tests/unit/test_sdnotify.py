"""The systemd notify protocol: datagrams to $NOTIFY_SOCKET when it is set, nothing otherwise."""

from __future__ import annotations

import socket

import pytest
from jq_cli.observe import sdnotify


@pytest.fixture
def notify_socket(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(5)
    yield sock
    sock.close()


def test_lines_go_to_the_notify_socket_as_one_datagram(notify_socket, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", notify_socket.getsockname())
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert sdnotify.notify("READY=1", "STATUS=consuming default") is True
    assert notify_socket.recv(4096).decode().splitlines() == ["READY=1", "STATUS=consuming default"]
    # A watchdog ping only when systemd asked for one.
    assert sdnotify.notify("STATUS=x", watchdog=True) is True
    assert notify_socket.recv(4096).decode().splitlines() == ["STATUS=x"]
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    assert sdnotify.notify("STATUS=y", watchdog=True) is True
    assert notify_socket.recv(4096).decode().splitlines() == ["STATUS=y", "WATCHDOG=1"]


def test_without_notify_socket_nothing_is_sent(monkeypatch):
    opened: list[tuple] = []
    real = socket.socket

    def watched(*args, **kwargs):
        opened.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(sdnotify.socket, "socket", watched)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    for unset in (
        lambda: monkeypatch.delenv("NOTIFY_SOCKET", raising=False),
        lambda: monkeypatch.setenv("NOTIFY_SOCKET", ""),
    ):
        unset()
        assert sdnotify.notify("READY=1", watchdog=True) is False
    assert opened == []  # no socket was even made
    # The probe sees a send when there is one to see.
    monkeypatch.setenv("NOTIFY_SOCKET", "@jq-test-no-listener")
    assert sdnotify.notify("READY=1") is False  # nobody listens on that abstract name
    assert opened == [(socket.AF_UNIX, socket.SOCK_DGRAM)]


def test_a_missing_socket_is_not_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    assert sdnotify.notify("READY=1") is False
