"""The hosts of the test bed: network namespaces joined by veth pairs to a bridge in the
services host, on a private range that exists only inside them.

Layout (one /24 of 10.77.0.0, nothing routed outside it):

    services host (namespace svc): bridge 10.77.0.1, RabbitMQ nodes 10.77.0.11-13,
                                   PostgreSQL primary 10.77.0.21, standby 10.77.0.22
    worker hosts w1..w3:           10.77.0.101-103, one veth each into the bridge

Every namespace and link made here carries the run's tag and is removed by Bed.remove(),
which first kills every process still inside a namespace (they can only be ours).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field

SUBNET = "10.77.0"
SVC_ADDR = f"{SUBNET}.1"
RABBIT_ADDRS = [f"{SUBNET}.11", f"{SUBNET}.12", f"{SUBNET}.13"]
PG_ADDRS = {"primary": f"{SUBNET}.21", "standby": f"{SUBNET}.22"}
WORKER_HOSTS = 3


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


def netns_permitted() -> str | None:
    """None when this process may make network namespaces, else the reason it may not."""
    name = f"jqcprobe{os.getpid()}"
    try:
        done = ip("netns", "add", name, check=False)
    except FileNotFoundError:
        return "iproute2 (`ip`) is not installed"
    if done.returncode != 0:
        return f"`ip netns add` is not permitted here: {done.stderr.strip()}"
    ip("netns", "del", name, check=False)
    return None


@dataclass
class Bed:
    tag: str
    made: list[str] = field(default_factory=list)  # namespaces, in the order made

    @property
    def svc(self) -> str:
        return f"jqc{self.tag}svc"

    def host(self, i: int) -> str:
        return f"jqc{self.tag}w{i}"

    def _link(self, i: int) -> tuple[str, str]:
        # Interface names are at most 15 characters.
        return f"jq{self.tag}b{i}", f"jq{self.tag}h{i}"

    def create(self) -> Bed:
        try:
            self._netns(self.svc)
            self._in(self.svc, "link", "add", "br0", "type", "bridge")
            self._in(self.svc, "addr", "add", f"{SVC_ADDR}/24", "dev", "br0")
            for extra in [*RABBIT_ADDRS, *PG_ADDRS.values()]:
                self._in(self.svc, "addr", "add", f"{extra}/32", "dev", "br0")
            self._in(self.svc, "link", "set", "br0", "up")
            for i in range(1, WORKER_HOSTS + 1):
                name = self.host(i)
                self._netns(name)
                bridge_end, host_end = self._link(i)
                ip("link", "add", bridge_end, "type", "veth", "peer", "name", host_end)
                ip("link", "set", bridge_end, "netns", self.svc)
                ip("link", "set", host_end, "netns", name)
                self._in(self.svc, "link", "set", bridge_end, "master", "br0", "up")
                self._in(name, "addr", "add", f"{SUBNET}.{100 + i}/24", "dev", host_end)
                self._in(name, "link", "set", host_end, "up")
        except BaseException:
            self.remove()
            raise
        return self

    def _netns(self, name: str) -> None:
        ip("netns", "add", name)
        self.made.append(name)
        self._in(name, "link", "set", "lo", "up")

    def _in(self, ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return ip("-n", ns, *args, check=check)

    def exec_prefix(self, ns: str) -> list[str]:
        return ["ip", "netns", "exec", ns]

    # -- faults -----------------------------------------------------------------------------------

    def cut(self, i: int) -> None:
        """Host i loses its only link: nothing reaches it, nothing leaves it. Its TCP sessions
        stay open (they resume when the link comes back, as after a switch failure)."""
        self._in(self.host(i), "link", "set", self._link(i)[1], "down")

    def restore(self, i: int) -> None:
        self._in(self.host(i), "link", "set", self._link(i)[1], "up")

    def partition(self, i: int, addr: str) -> None:
        """Host i can no longer reach one address of the services host (a one-node partition)."""
        self._in(self.host(i), "route", "add", "blackhole", f"{addr}/32")

    def heal(self, i: int, addr: str) -> None:
        self._in(self.host(i), "route", "del", "blackhole", f"{addr}/32", check=False)

    # -- tear-down --------------------------------------------------------------------------------

    def pids(self, ns: str) -> list[int]:
        done = ip("netns", "pids", ns, check=False)
        return [int(p) for p in done.stdout.split() if p.strip().isdigit()]

    def kill_all(self, timeout: float = 15) -> None:
        """SIGTERM then SIGKILL every process left in our namespaces (epmd, a stray postmaster)."""
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            pids = [p for ns in self.made for p in self.pids(ns)]
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and any(self.pids(ns) for ns in self.made):
                time.sleep(0.2)

    def remove(self) -> None:
        self.kill_all()
        for ns in reversed(self.made):
            ip("netns", "del", ns, check=False)  # its veth ends go with it
        self.made.clear()
