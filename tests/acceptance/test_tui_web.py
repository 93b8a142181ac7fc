"""`jq top --web` in a real browser: Debian's chromium, headless, driven over the DevTools protocol
(CDP) against a `jq top --web` subprocess serving the test's namespace, on 127.0.0.1 only.

The browser's side (CDP, reading xterm.js's buffer) is in cdp_browser.py. Screenshots are kept
in tests/acceptance/artifacts/ (ignored by git).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from jq_cli.tui.plain import STATES
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from cdp_browser import ENTER, Chromium, live_in_group, read_bytes, stop_group
from conftest import DATABASE_URL, JQ, listen_on_free_port, make_settings, settings_env, wait_for

ARTIFACTS = Path(__file__).parent / "artifacts"
# An apt-get install of chromium can take minutes on a loaded machine; the browser steps themselves
# wait at most a minute each.
pytestmark = pytest.mark.timeout(900)


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


class WebTop:
    """A `jq top --web` subprocess in a process group of its own (its sessions join it)."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        def start(port: int) -> subprocess.Popen:
            return subprocess.Popen(
                [JQ, "top", "--web", "--port", str(port), "--refresh", "0.3", *args],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )

        self.proc, self.port = listen_on_free_port(start, listening, timeout=60)
        self.url = f"http://127.0.0.1:{self.port}"
        self.stderr = ""

    def sessions(self) -> list[int]:
        """The pids of the `jq top` sessions the server started."""
        return [
            pid
            for pid in live_in_group(self.proc.pid)
            if b"-m\0jq_cli\0top\0" in read_bytes(f"/proc/{pid}/cmdline")
        ]

    def terminate(self) -> int:
        """SIGTERM to the server alone, as systemd or kill(1) would send it; its exit code."""
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(60)
        self.stderr = self.proc.stderr.read()
        return code

    def stop(self) -> None:
        if self.proc.returncode is None:
            stop_group(self.proc)
            self.stderr = self.proc.stderr.read()


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's chromium, installed with apt-get if it is missing."""
    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() != 0:
        pytest.skip("chromium is not installed, and installing it (apt-get) needs root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", "chromium"],
    ):
        done = subprocess.run(command, capture_output=True, text=True, timeout=800, env=env)
        if done.returncode:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            pytest.skip(f"chromium could not be installed: {' '.join(command)}: {last}")
    found = shutil.which("chromium")
    if not found:
        pytest.skip("apt-get installed chromium but no chromium command is on PATH")
    return found


@pytest.fixture
def browser(chromium_path: str, tmp_path: Path) -> Iterator[Chromium]:
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    b = Chromium(chromium_path, profile)
    yield b
    b.close()
    assert not live_in_group(b.proc.pid), "chromium left processes behind"


@pytest.fixture
def key() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture
def secret_settings(settings):
    """The test's settings, with a database URL that holds a password (trust auth ignores it), to
    show that no secret reaches a command line."""
    password = f"pw{secrets.token_hex(8)}"
    user = os.environ.get("USER") or "root"
    url = DATABASE_URL.replace("postgresql://", f"postgresql://{user}:{password}@", 1)
    return make_settings(settings.namespace, database_url=url), password


@pytest.fixture
def web_top(secret_settings, key) -> Iterator[WebTop]:
    s, _ = secret_settings
    server = WebTop({**settings_env(s), "JQ_API_KEY": key})
    yield server
    server.stop()
    assert not live_in_group(server.proc.pid), "jq top --web left processes behind"


# -- reading the dashboard ------------------------------------------------------------------------


def shown_counts(screen: str) -> dict[str, int] | None:
    """The jobs-by-state counts of the counts panel (`queued    5   scheduled 1` ...): the panel
    above the recent jobs, the first number after each state on its lines."""
    panel, below, _ = screen.partition("recent jobs")
    if not below:
        return None
    counts = {}
    for state in STATES:
        found = re.search(rf"\b{state}\s+(\d+)", panel)
        if not found:
            return None
        counts[state] = int(found.group(1))
    return counts


def database_counts(store) -> dict[str, int]:
    rows = store._all("SELECT state, count(*) AS n FROM jobs GROUP BY state")
    return {state: 0 for state in STATES} | {r["state"]: r["n"] for r in rows}


# -- the tests ------------------------------------------------------------------------------------


def test_the_dashboard_in_a_browser_counts_and_purges(
    ops, store, web_top, browser, key, secret_settings
):
    _, password = secret_settings
    queued = [ops.submit("noop", {"n": n}) for n in range(3)]
    queued += [ops.submit("noop", {}, priority="high", queue="reports") for _ in range(2)]
    cancelled = [ops.submit("noop", {}, queue="other") for _ in range(2)]
    ops.cancel(cancelled)
    scheduled = ops.submit("noop", {}, delay="1h")

    # Signing in: the key in the address once, a cookie from then on.
    browser.page("Page.navigate", url=f"{web_top.url}/?key={key}")
    wait_for(
        lambda: browser.evaluate("location.href") == f"{web_top.url}/",
        60,
        what="the redirect that drops the key from the address",
    )
    db = database_counts(store)
    assert db["queued"] == 5 and db["cancelled"] == 2 and db["scheduled"] == 1
    wait_for(
        lambda: shown_counts(browser.screen()) == db,
        60,
        what=lambda: f"the counts {db} on the page, which shows:\n{browser.screen()}",
    )
    screen = browser.screen()
    assert f"ns {ops.settings.namespace}" in screen  # the test's namespace, as jq top shows it
    assert "reports 2" in screen and "default 3" in screen, screen
    picture = browser.screenshot(ARTIFACTS, "jq-top-web-dashboard")
    assert picture.stat().st_size > 10_000  # a painted dashboard, not a blank page

    # The session is `jq top` itself, its settings passed by environment: no secret in `ps`.
    sessions = wait_for(web_top.sessions, 30, what="the session's jq top process")
    for pid in live_in_group(web_top.proc.pid):
        assert password.encode() not in read_bytes(f"/proc/{pid}/cmdline")
        assert key.encode() not in read_bytes(f"/proc/{pid}/cmdline")
    environ = read_bytes(f"/proc/{sessions[0]}/environ").split(b"\0")
    assert any(v.startswith(b"JQ_DATABASE_URL=") and password.encode() in v for v in environ)
    assert not any(v.startswith(b"JQ_API_KEY=") for v in environ)  # the key stays in the server

    # Keys act: filter on the cancelled jobs, purge them, confirm; the database loses them.
    browser.evaluate("window.__jqTerminal.focus()")
    # Each step waits for the screen to show the last one, as a user's eyes would.
    browser.press("/")
    wait_for(lambda: "filter: state:dead" in browser.screen(), 30, what="the filter input")
    browser.type("state:cancelled")
    wait_for(lambda: "state:cancelled" in browser.screen(), 30, what="the typed filter")
    browser.press("Enter", ENTER)
    wait_for(
        lambda: "2 shown" in browser.screen() and "filter: state:dead" not in browser.screen(),
        30,
        what=lambda: f"the cancelled jobs alone, the page shows:\n{browser.screen()}",
    )
    browser.press("p")
    wait_for(
        lambda: "Delete 2 cancelled jobs" in browser.screen(),
        30,
        what=lambda: f"the purge confirmation, the page shows:\n{browser.screen()}",
    )
    browser.screenshot(ARTIFACTS, "jq-top-web-confirm")
    browser.press("y")
    wait_for(
        lambda: not set(cancelled) & set(store.job_states(queued + cancelled + [scheduled])),
        30,
        what="the purge in the database",
    )
    assert sorted(store.job_states(queued + cancelled + [scheduled])) == sorted(
        [*queued, scheduled]
    )
    wait_for(
        lambda: (shown_counts(browser.screen()) or {}).get("cancelled") == 0,
        30,
        what=lambda: f"the purge on the page, which shows:\n{browser.screen()}",
    )
    browser.screenshot(ARTIFACTS, "jq-top-web-purged")

    # SIGTERM to the server ends it and the session it started.
    assert web_top.terminate() == 0, web_top.stderr
    wait_for(lambda: not web_top.sessions(), 30, what="the session to end with the server")
    assert key not in web_top.stderr and password not in web_top.stderr


def test_every_path_needs_a_key_when_keys_are_set(settings, key):
    server = WebTop({**settings_env(settings), "JQ_API_KEY": key})
    try:
        for path in ("/", "/static/js/textual.js", f"/?key={key}x"):
            answer = requests.get(server.url + path, allow_redirects=False, timeout=30)
            assert answer.status_code == 401, path
            assert key not in answer.text
        with (
            pytest.raises(InvalidStatus) as refused,
            connect(f"ws://127.0.0.1:{server.port}/ws", open_timeout=30),
        ):
            pass
        assert refused.value.response.status_code == 401

        signin = requests.get(f"{server.url}/?key={key}", allow_redirects=False, timeout=30)
        assert signin.status_code == 303 and signin.headers["Location"] == "/"
        cookie = signin.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and key not in cookie
        jar = signin.cookies
        page = requests.get(server.url + "/", cookies=jar, timeout=30)
        assert page.status_code == 200 and "textual-terminal" in page.text
        for header in ({"X-API-Key": key}, {"Authorization": f"Bearer {key}"}):
            assert requests.get(server.url + "/", headers=header, timeout=30).status_code == 200

        # With the cookie, the websocket opens, but only for the page's own origin.
        session = f"{next(iter(jar.keys()))}={next(iter(jar.values()))}"
        with (
            pytest.raises(InvalidStatus) as cross,
            connect(
                f"ws://127.0.0.1:{server.port}/ws",
                additional_headers={"Cookie": session, "Origin": "http://evil.example"},
                open_timeout=30,
            ),
        ):
            pass
        assert cross.value.response.status_code == 403
        with connect(
            f"ws://127.0.0.1:{server.port}/ws?width=80&height=24",
            additional_headers={"Cookie": session, "Origin": server.url},
            open_timeout=30,
        ) as ws:
            assert ws.recv(timeout=60)  # the session's first output
    finally:
        server.stop()
    assert key not in server.stderr  # the sign-in's query string is not logged
    assert "1 API key(s) loaded" in server.stderr


def test_without_keys_only_loopback_and_only_loopback_names(settings):
    out = subprocess.run(
        [JQ, "top", "--web", "--host", "0.0.0.0", "--port", "9"],
        capture_output=True,
        text=True,
        timeout=60,
        env=settings_env(settings),
    )
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("jq: error: refusing to listen on 0.0.0.0 without an API key")
    assert len(out.stderr.splitlines()) == 1

    server = WebTop(settings_env(settings))
    try:
        assert requests.get(server.url + "/", timeout=30).status_code == 200
        # A name that resolves to 127.0.0.1 for an attacker's page (DNS rebinding) is refused.
        rebound = requests.get(
            server.url + "/", headers={"Host": f"evil.example:{server.port}"}, timeout=30
        )
        assert rebound.status_code == 403
    finally:
        server.stop()
    assert "no API key set" in server.stderr


@pytest.mark.parametrize(
    "args",
    [["--host", "127.0.0.1"], ["--port", "8001"], ["--web", "--once"]],
    ids=["host-without-web", "port-without-web", "web-with-once"],
)
def test_web_options_that_do_not_go_together(run_cli, args):
    out = run_cli("top", *args)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("jq: error: ") and len(out.stderr.splitlines()) == 1


def test_jq_top_without_web_does_not_import_textual_serve():
    probe = (
        "import sys\n"
        "from jq_cli.cli.main import app\n"
        "try:\n"
        "    app(['top', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('textual_serve', 'aiohttp') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_web_without_the_web_extra_says_so(settings):
    probe = (
        "import sys\n"
        "sys.modules['textual_serve'] = None  # as if the web extra were not installed\n"
        "sys.argv = ['jq', 'top', '--web']\n"
        "from jq_cli.cli.main import main\n"
        "main()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        env=settings_env(settings),
    )
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == "jq: error: jq top --web needs the web extra: pip install 'jq-cli[web]'\n"
