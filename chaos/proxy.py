"""A small TCP proxy on loopback (asyncio, no root tools) that makes a connection slow or broken.

One listener per service; the daemons and the CLI connect to it instead of the service. Modes,
changed at any time from another thread:
- latency: every chunk waits `delay` seconds (plus up to `jitter`) before it is forwarded;
- stall: nothing is forwarded (reads stop, so TCP pushes back), which is what a network that
  drops every packet looks like to an application until the drops end and retransmits succeed;
- reset: every open connection is closed with a TCP RST, and new ones are reset at once while
  `refuse` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import socket
import struct
import threading
from dataclasses import dataclass, field


@dataclass
class Route:
    name: str
    target_port: int
    listen_port: int = 0
    connections: set = field(default_factory=set)
    accepted: int = 0
    resets: int = 0


class FaultProxy:
    def __init__(self, targets: dict[str, int]):
        self.routes = {name: Route(name, port) for name, port in targets.items()}
        self.delay = 0.0
        self.jitter = 0.0
        self.refuse = False
        self._loop = asyncio.new_event_loop()
        self._flowing: asyncio.Event | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="chaos-proxy", daemon=True
        )

    # -- control (any thread) --------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    def port(self, name: str) -> int:
        return self.routes[name].listen_port

    def set_latency(self, delay: float, jitter: float = 0.0) -> None:
        self.delay, self.jitter = delay, jitter

    @property
    def flowing(self) -> asyncio.Event:
        """Set while bytes flow, cleared while stalled; made by the proxy's loop in _listen."""
        if self._flowing is None:
            raise RuntimeError("the proxy is not started")
        return self._flowing

    def stall(self, on: bool) -> None:
        self._loop.call_soon_threadsafe(self.flowing.clear if on else self.flowing.set)

    def reset_all(self, refuse: bool = False) -> int:
        """RST every open connection; with refuse, reset new ones too until reset_all(False)."""
        self.refuse = refuse
        return asyncio.run_coroutine_threadsafe(self._reset_all(), self._loop).result(10)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    # -- the loop --------------------------------------------------------------------------------

    async def _listen(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        for route in self.routes.values():
            server = await asyncio.start_server(
                functools.partial(self._serve, route), "127.0.0.1", 0
            )
            route.listen_port = server.sockets[0].getsockname()[1]
            self._servers.append(server)

    async def _serve(self, route: Route, client_r, client_w) -> None:
        route.accepted += 1
        if self.refuse:
            _rst(client_w)
            route.resets += 1
            return
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", route.target_port)
        except OSError:
            _rst(client_w)
            return
        pair = (client_w, up_w)
        route.connections.add(pair)
        try:
            await asyncio.gather(self._pump(client_r, up_w), self._pump(up_r, client_w))
        finally:
            route.connections.discard(pair)
            for w in pair:
                w.close()

    async def _pump(self, reader, writer) -> None:
        try:
            while True:
                await self.flowing.wait()
                data = await reader.read(65536)
                if not data:
                    break
                if self.delay or self.jitter:
                    await asyncio.sleep(self.delay + random.uniform(0, self.jitter))
                await self.flowing.wait()
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(OSError):
                writer.write_eof() if writer.can_write_eof() else None

    async def _reset_all(self) -> int:
        count = 0
        for route in self.routes.values():
            for pair in list(route.connections):
                for w in pair:
                    _rst(w)
                route.resets += 1
                count += 1
        return count

    async def _close(self) -> None:
        await self._reset_all()
        for server in self._servers:
            server.close()


def _rst(writer) -> None:
    """Close with SO_LINGER 0: the peer sees ECONNRESET, not a polite FIN."""
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()
