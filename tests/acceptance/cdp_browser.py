"""Headless chromium driven over the DevTools protocol (CDP), for tests of `jq top --web`; and the
process-group helpers that make sure every process a test started has ended.

The dashboard is painted by xterm.js on a canvas, so the text is read from xterm's own buffer: a
script added before the page runs catches the Terminal object as textual.js creates it.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from websockets.sync.client import connect

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Every name but 127.0.0.1 resolves to nothing: the browser reaches no other host.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
    "--window-size=1280,860",
]
# Runs in the page before textual.js: the first object given a `terminal` property that looks like
# an xterm Terminal is kept in window.__jqTerminal, and the hook removes itself.
CATCH_TERMINAL = """
Object.defineProperty(Object.prototype, "terminal", {
  configurable: true,
  get() { return undefined; },
  set(value) {
    Object.defineProperty(this, "terminal", {value, writable: true, configurable: true, enumerable: true});
    if (value && value.buffer && value.buffer.active) {
      window.__jqTerminal = value;
      delete Object.prototype.terminal;
    }
  },
});
"""
SCREEN_TEXT = """(() => {
  const t = window.__jqTerminal;
  if (!t) return null;
  const b = t.buffer.active, lines = [];
  for (let i = 0; i < t.rows; i++) {
    const line = b.getLine(b.viewportY + i);
    lines.push(line ? line.translateToString(true) : "");
  }
  return lines.join("\\n");
})()"""
ENTER = {"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "text": "\r"}


# -- processes ------------------------------------------------------------------------------------


def live_in_group(pgid: int) -> list[int]:
    """Processes of a process group that are still running (zombies excluded)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


def stop_group(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM to a process group started with start_new_session, SIGKILL to what outlives it."""
    pgid = proc.pid
    if live_in_group(pgid):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while live_in_group(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if live_in_group(pgid):
        os.killpg(pgid, signal.SIGKILL)
    proc.wait(timeout)


def read_bytes(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError:
        return b""


# -- the browser ----------------------------------------------------------------------------------


class Chromium:
    """Headless chromium with one page, driven over CDP (flattened sessions, one websocket)."""

    def __init__(self, executable: str, profile: Path) -> None:
        self.proc = subprocess.Popen(
            [executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        # Drained for as long as chromium runs, so that its chatter never fills the pipe.
        threading.Thread(target=self._drain, daemon=True).start()
        self.ids = itertools.count(1)
        self.closing = contextlib.ExitStack()
        self.ws = self.closing.enter_context(
            connect(self._devtools_url(), max_size=None, open_timeout=30)
        )
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.page("Page.enable")
        self.page("Page.addScriptToEvaluateOnNewDocument", source=CATCH_TERMINAL)
        self.page(
            "Emulation.setDeviceMetricsOverride",
            width=1280,
            height=860,
            deviceScaleFactor=1,
            mobile=False,
        )

    def _drain(self) -> None:
        for line in self.proc.stderr:
            self.lines.put(line)

    def _devtools_url(self) -> str:
        deadline = time.monotonic() + 60
        seen = []
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            seen.append(line)
            found = re.search(r"DevTools listening on (ws://\S+)", line)
            if found:
                return found.group(1)
        pytest.fail("chromium did not open its DevTools socket: " + "".join(seen)[-2000:])

    def call(self, method: str, session: str | None = None, **params) -> dict:
        """One CDP command; events that arrive meanwhile are dropped (the test polls instead)."""
        ident = next(self.ids)
        message = {"id": ident, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        while True:
            reply = json.loads(self.ws.recv(timeout=60))
            if reply.get("id") == ident:
                if "error" in reply:
                    raise AssertionError(f"CDP {method}: {reply['error']}")
                return reply.get("result", {})

    def page(self, method: str, **params) -> dict:
        return self.call(method, self.session, **params)

    def evaluate(self, expression: str):
        result = self.page("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def screen(self) -> str:
        return self.evaluate(SCREEN_TEXT) or ""

    def press(self, key: str, event: dict | None = None) -> None:
        """A key as a user types it: keydown (with its text), keyup."""
        event = event or {"key": key, "text": key, "unmodifiedText": key}
        self.page("Input.dispatchKeyEvent", type="keyDown", **event)
        self.page("Input.dispatchKeyEvent", type="keyUp", key=event["key"])

    def type(self, text: str) -> None:
        for char in text:
            self.press(char)

    def screenshot(self, folder: Path, name: str) -> Path:
        folder.mkdir(exist_ok=True)
        path = folder / f"{name}.png"
        data = self.page("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        print(f"screenshot: {path}")
        return path

    def close(self) -> None:
        try:
            self.closing.close()
        finally:
            stop_group(self.proc, timeout=15)
