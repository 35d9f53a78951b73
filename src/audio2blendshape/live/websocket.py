"""WebSocket output: a server that streams frames as JSON text messages to any number of web clients.

One message per frame::

    {"time": 1.016667, "frame": 61, "values": [0.0, 0.12345, ...]}

``time`` is the frame's timestamp in seconds, ``frame`` counts the frames given to ``send`` from 0 (a gap
tells a client it lost frames), ``values`` are the weights, rounded to 5 decimals, in the order of
``names``. ``names`` (a list of strings) is added to the first message each client receives and again
whenever the rig changes, so a client learns the columns once. Any rig is accepted. A frame with a head
rotation adds ``"head": [yaw, pitch, roll]`` (radians, 5 decimals; yaw > 0 turns the head to the
character's own left, pitch > 0 nods down, roll > 0 tilts toward the character's right shoulder, as in
``runtime.writers.Animation``); frames without one have no ``head`` key.

The server runs in a background thread with its own asyncio loop. ``send`` (from the caller's thread) only
encodes the message and hands it to that loop; it never waits for a client. Each client has a queue of at
most ``max_queue`` frames: when a client reads too slowly (its TCP buffers and the library's 32 KiB write
buffer are full), its oldest queued frame is dropped to make room for the newest, so a slow client sees
the live face with gaps instead of an ever-growing delay, and it never slows the others. Drops are counted
in ``stats.dropped`` (all clients together). The default 16 frames bounds a client's backlog to about a
quarter of a second at 60 fps.

Compression is off: the messages are small, and deflating each one would cost the streaming machine CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import math
import socket
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from audio2blendshape.live.sink import (
    LiveOutputError,
    Names,
    SinkStats,
    name_tuple,
    resolve_address,
    sanitize,
    sanitize_head,
)

log = logging.getLogger(__name__)

WEBSOCKET_PORT = 8765
_START_TIMEOUT_S = 10.0  # binding is instant; this only guards against a thread that never reports
_STOP_TIMEOUT_S = 3.0  # closing clients that do not answer the close handshake gives up after this
# Clients send only short commands, so a message bigger than this closes that client (code 1009) instead
# of letting each of them make the server buffer the library's default of 1 MiB per message.
CLIENT_MESSAGE_MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class _Message:
    """One frame, encoded once for every client; ``names_json`` goes only to clients lacking the names."""

    names: tuple[str, ...]
    names_json: str
    body: str  # '"time": ..., "frame": ..., "values": [...]', without braces

    def text_for(self, client: _Client) -> str:
        if client.names == self.names:
            return "{" + self.body + "}"
        client.names = self.names
        return "{" + self.body + ',"names":' + self.names_json + "}"


@dataclass(eq=False)
class _Client:
    """A connected client; touched only from the server's loop."""

    connection: ServerConnection
    queue: deque[_Message] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    names: tuple[str, ...] | None = None  # the names this client was last sent
    dropped: int = 0


class WebSocketServer:
    """Serves frames on ``"HOST:PORT"`` (``0.0.0.0`` for every interface; port 0 picks a free port)."""

    what = "WebSocket output"

    def __init__(
        self, address: str, max_queue: int = 16, on_message: Callable[[str | bytes], str | None] | None = None
    ) -> None:
        if max_queue < 1:
            raise LiveOutputError(f"{self.what}: max_queue must be at least 1, got {max_queue}")
        self.address = resolve_address(address, self.what, socket.SOCK_STREAM, allow_port_zero=True)
        self.where = f"{self.what} on {self.address.spec}"
        self.max_queue = max_queue
        self.on_message = on_message  # a client's message -> a reply (or None); e.g. live.control commands
        self.stats = SinkStats()
        self.port = self.address.port  # the bound port once started (differs when asked for port 0)
        self._clients: set[_Client] = set()
        self._names: tuple[str, ...] | None = None
        self._names_json = "[]"
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._server: Server | None = None
        self._start_error: BaseException | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"websocket-out-{self.port}", daemon=True)
        self._thread.start()
        if not self._started.wait(_START_TIMEOUT_S):
            raise LiveOutputError(f"{self.where}: the server thread did not start")
        if self._start_error is not None:
            self._thread.join()
            raise self._bind_error(self._start_error) from self._start_error

    def _bind_error(self, error: BaseException) -> LiveOutputError:
        if isinstance(error, OSError) and error.errno == errno.EADDRINUSE:
            reason = f"port {self.address.port} is already in use (another stream or program listens there)"
        elif isinstance(error, OSError):
            reason = f"cannot listen on port {self.address.port} ({error.strerror or error})"
        else:
            reason = f"the server failed to start ({error!r})"
        return LiveOutputError(f"{self.where}: {reason}")

    @property
    def client_count(self) -> int:
        """Clients connected now."""
        return len(self._clients)

    def send(self, time_s: float, values: np.ndarray, names: Names, head: np.ndarray | None = None) -> None:
        """Queue one frame (values (K,) for K names at ``time_s`` s, head (3,) radians or None) for every
        client; never blocks."""
        if self._closed:
            raise LiveOutputError(f"{self.where}: send() after close()")
        if not math.isfinite(time_s):
            raise LiveOutputError(f"{self.where}: frame time {time_s!r} is not a finite number of seconds")
        names = name_tuple(names)
        if names != self._names:
            self._names, self._names_json = names, json.dumps(list(names))
        clean, nan_count = sanitize(values, len(names), self.where)
        values_json = json.dumps(np.round(clean.astype(np.float64), 5).tolist())
        body = f'"time":{round(float(time_s), 6)!r},"frame":{self.stats.frames},"values":{values_json}'
        clean_head, head_nan = sanitize_head(head, self.where)
        if clean_head is not None:
            body += ',"head":' + json.dumps(np.round(clean_head.astype(np.float64), 5).tolist())
        self.stats.frames += 1
        self.stats.nan_values += nan_count + head_nan
        try:
            self._loop.call_soon_threadsafe(self._broadcast, _Message(names, self._names_json, body))
        except RuntimeError as error:  # the loop is closed: the server thread ended
            raise LiveOutputError(f"{self.where}: the server has stopped") from error

    def close(self) -> None:
        """Disconnect every client and stop the server thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(RuntimeError):  # loop already closed
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_START_TIMEOUT_S)

    def __enter__(self) -> WebSocketServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- everything below runs in the server thread ---

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._server = self._loop.run_until_complete(self._start())
        except BaseException as error:  # reported to the constructor, which raises it in the caller's thread
            self._start_error = error
            self._loop.close()
            self._started.set()
            return
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._started.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self._shutdown())
            self._loop.close()

    async def _start(self) -> Server:
        host = str(self.address.sockaddr[0])
        return await serve(
            self._handle, host, self.address.port, compression=None, close_timeout=1.0,
            max_size=CLIENT_MESSAGE_MAX_BYTES,
        )  # fmt: skip

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        try:
            await asyncio.wait_for(self._server.wait_closed(), _STOP_TIMEOUT_S)
        except TimeoutError:
            log.warning("%s: some clients did not close in time", self.where)
        tasks = [t for t in asyncio.all_tasks(self._loop) if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _broadcast(self, message: _Message) -> None:
        for client in self._clients:
            if len(client.queue) >= self.max_queue:
                client.queue.popleft()  # the oldest: a late frame is worth less than a new one
                client.dropped += 1
                self.stats.dropped += 1
            client.queue.append(message)
            client.wake.set()

    async def _handle(self, connection: ServerConnection) -> None:
        client = _Client(connection)
        self._clients.add(client)
        writer = asyncio.create_task(self._write(client))
        try:
            # Reading keeps pings and the close handshake flowing; messages are commands (live.control).
            async for message in connection:
                reply = self.on_message(message) if self.on_message is not None else None
                if reply is not None:
                    await connection.send(reply)
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(client)
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            if client.dropped:
                log.info(
                    "%s: client %s missed %d frames", self.where, connection.remote_address, client.dropped
                )

    async def _write(self, client: _Client) -> None:
        try:
            while True:
                while not client.queue:
                    client.wake.clear()
                    await client.wake.wait()
                message = client.queue.popleft()
                await client.connection.send(message.text_for(client))  # waits while the client is slow
                self.stats.sent += 1
        except ConnectionClosed:
            pass  # the handler notices too and removes the client
