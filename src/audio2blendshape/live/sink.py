"""Live output: the contract every sink keeps and the pieces the sinks share.

A sink takes one frame at a time, ``send(time_s, values, names, head=None)`` with ``values`` of shape (K,)
matching ``names`` and ``head`` None or the head rotation (3,): yaw, pitch, roll in radians with the signs
of ``runtime.head`` (see ``docs/live.md`` for what each sink makes of it), and ``close()``. Sinks are
built from a ``"HOST:PORT"`` string (``"[::1]:39539"`` for an IPv6 literal); the host is resolved once,
at construction, so a typo fails at once with a message naming it instead of silently sending nowhere.
Every sink cleans the values before sending: NaN -> 0 (counted in ``stats.nan_values``) and everything
clipped to [0, 1], because receivers (VSeeFace, Unreal) misbehave on out-of-range weights rather than
reject them. A head's non-finite angles become 0 (counted the same way); angles are not clipped.

A missing or slow receiver must never stall the stream feeding the sinks: UDP sinks use a non-blocking
socket and count, rather than raise, the errors that only mean "nobody is listening right now"
(``stats.send_errors``); the WebSocket sink drops a slow client's oldest frames (``stats.dropped``).

The concrete sinks live in ``vmc.py``, ``livelink_udp.py`` and ``websocket.py``, which import the helpers
below; ``outputs.py`` fans frames out to several of them.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from audio2blendshape.names import ARKIT_NAMES, Rig

# Errors of a UDP send that mean the receiver or the path is momentarily absent or full; the frame is
# lost (as UDP frames may be) and the next one is tried. ECONNREFUSED is the ICMP "port unreachable" of an
# earlier datagram, reported on a connected socket when nothing listens.
TRANSIENT_SEND_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ENOBUFS,
        errno.EAGAIN,
        errno.EWOULDBLOCK,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
    }
)

Names = Sequence[str] | Rig


class LiveOutputError(ValueError):
    """A live output that cannot be set up or fed; the message names the output, its address and why."""


@dataclass
class SinkStats:
    """Counters of one sink; read them any time (they are plain ints, updated as frames go out)."""

    frames: int = 0  # frames given to send()
    sent: int = 0  # datagrams handed to the OS (UDP) or messages queued for clients (WebSocket)
    send_errors: int = 0  # UDP sends that failed transiently (nobody listening, buffer full); ignored
    nan_values: int = 0  # NaN weights replaced by 0
    dropped: int = 0  # WebSocket: frames dropped for slow clients (oldest first), summed over clients
    last_error: str = ""  # text of the latest counted send error, for a status line


class Sink(Protocol):
    """What ``LiveOutputs`` needs of a sink."""

    stats: SinkStats

    def send(
        self, time_s: float, values: np.ndarray, names: Names, head: np.ndarray | None = None
    ) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Address:
    """A parsed and resolved ``HOST:PORT``."""

    spec: str  # as the user wrote it, for messages
    host: str
    port: int
    family: int  # socket.AF_INET or AF_INET6
    sockaddr: tuple[Any, ...]  # what connect()/bind() take


def parse_host_port(spec: str, what: str, allow_port_zero: bool = False) -> tuple[str, int]:
    """``"HOST:PORT"`` or ``"[V6]:PORT"`` -> (host, port); ``what`` names the output in errors."""
    text = spec.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise LiveOutputError(f"{what} address {spec!r}: write an IPv6 host as [ADDRESS]:PORT")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise LiveOutputError(f"{what} address {spec!r}: expected HOST:PORT, e.g. 127.0.0.1:39539")
        if ":" in host:
            raise LiveOutputError(f"{what} address {spec!r}: write an IPv6 host in brackets, [{host}]:PORT")
    if not host:
        raise LiveOutputError(f"{what} address {spec!r}: the host is empty (use 127.0.0.1 or 0.0.0.0)")
    lowest = 0 if allow_port_zero else 1
    if not port_text.isdigit() or not lowest <= int(port_text) <= 65535:
        raise LiveOutputError(f"{what} address {spec!r}: port {port_text!r} is not a number {lowest}..65535")
    return host, int(port_text)


def resolve_address(spec: str, what: str, kind: int, allow_port_zero: bool = False) -> Address:
    """Parse and resolve ``spec`` for a socket of type ``kind`` (SOCK_DGRAM / SOCK_STREAM), first match."""
    host, port = parse_host_port(spec, what, allow_port_zero)
    try:
        infos = socket.getaddrinfo(host, port, type=kind)
    except (socket.gaierror, UnicodeError) as error:
        reason = error.strerror if isinstance(error, socket.gaierror) else str(error)
        raise LiveOutputError(
            f"{what} address {spec!r}: host {host!r} does not resolve ({reason})"
        ) from error
    family, _, _, _, sockaddr = infos[0]
    return Address(spec, host, port, int(family), tuple(sockaddr))


def sanitize(values: np.ndarray, count: int, where: str) -> tuple[np.ndarray, int]:
    """Values (K,) -> (float32 (K,) with NaN -> 0 and clipped to [0, 1], number of NaN replaced)."""
    array = np.asarray(values, dtype=np.float32)
    if array.shape != (count,):
        raise LiveOutputError(
            f"{where}: values have shape {array.shape}, expected ({count},) to match the names"
        )
    nan = np.isnan(array)
    nan_count = int(nan.sum())
    # np.clip keeps NaN, so replace first; +-inf clip to the nearest bound like any out-of-range weight.
    clean = np.clip(np.where(nan, np.float32(0.0), array), 0.0, 1.0).astype(np.float32, copy=False)
    return clean, nan_count


def sanitize_head(head: np.ndarray | None, where: str) -> tuple[np.ndarray | None, int]:
    """Head (3,) yaw, pitch, roll in radians, or None -> (float32 (3,) with NaN/inf -> 0, number replaced)."""
    if head is None:
        return None, 0
    array = np.asarray(head, dtype=np.float32)
    if array.shape != (3,):
        raise LiveOutputError(
            f"{where}: head has shape {array.shape}, expected (3,): yaw, pitch, roll in radians"
        )
    bad = ~np.isfinite(array)
    return np.where(bad, np.float32(0.0), array).astype(np.float32, copy=False), int(bad.sum())


def name_tuple(names: Names) -> tuple[str, ...]:
    """A rig or a sequence of names -> a tuple of names."""
    return tuple(names.names) if isinstance(names, Rig) else tuple(names)


def arkit_columns(names: tuple[str, ...], where: str, require_all: bool) -> np.ndarray:
    """Canonical ARKit index (int64 (K,)) of each of ``names``; a clear error for a non-ARKit name.

    ``require_all`` asks for exactly the 52 (in any order), as a Live Link packet always carries all of them.
    """
    lookup = {n.lower(): i for i, n in enumerate(ARKIT_NAMES)}
    foreign = [n for n in names if n.strip().lower() not in lookup]
    if foreign:
        shown = ", ".join(repr(n) for n in foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        raise LiveOutputError(
            f"{where}: needs ARKit blendshape names, got {len(foreign)} others ({shown}); "
            "retarget to the ARKit rig or use the WebSocket output, which takes any rig"
        )
    columns = np.array([lookup[n.strip().lower()] for n in names], dtype=np.int64)
    if len(set(columns.tolist())) != len(columns):
        raise LiveOutputError(f"{where}: a blendshape name appears twice in {list(names)}")
    if require_all and len(columns) != len(ARKIT_NAMES):
        missing = [n for i, n in enumerate(ARKIT_NAMES) if i not in set(columns.tolist())]
        raise LiveOutputError(f"{where}: needs all 52 ARKit blendshapes, missing {missing}")
    return columns


class UdpSink:
    """Shared body of the UDP sinks: resolve, connect a non-blocking socket, clean values, count faults.

    Subclasses set ``what`` and implement ``_prepare(names)`` (validate a new name list, called only when
    the names change) and ``_encode(time_s, clean_values, clean_head) -> bytes`` (one datagram per frame;
    ``clean_head`` is None when the frame has no head).
    """

    what = "UDP output"

    def __init__(self, address: str) -> None:
        self.address = resolve_address(address, self.what, socket.SOCK_DGRAM)
        self.where = f"{self.what} to {self.address.spec}"
        self.stats = SinkStats()
        self._names: tuple[str, ...] | None = None
        self._sock: socket.socket | None = socket.socket(self.address.family, socket.SOCK_DGRAM)
        try:
            # Non-blocking so a full send buffer loses a frame instead of stalling the caller; connected
            # so the kernel reports a missing receiver (ECONNREFUSED) and sends skip a route lookup.
            self._sock.setblocking(False)
            self._sock.connect(self.address.sockaddr)
        except OSError as error:
            self._sock.close()
            raise LiveOutputError(f"{self.where}: cannot open a UDP socket ({error.strerror})") from error

    def _prepare(self, names: tuple[str, ...]) -> None:
        raise NotImplementedError

    def _encode(self, time_s: float, values: np.ndarray, head: np.ndarray | None) -> bytes:
        raise NotImplementedError

    def send(self, time_s: float, values: np.ndarray, names: Names, head: np.ndarray | None = None) -> None:
        """Send one frame: ``values`` (K,) weights for ``names`` (K names) at ``time_s`` seconds, and the
        head rotation (3,) in radians when given."""
        if self._sock is None:
            raise LiveOutputError(f"{self.where}: send() after close()")
        names = name_tuple(names)
        if names != self._names:  # validated once per rig, not per frame
            self._prepare(names)
            self._names = names
        clean, nan_count = sanitize(values, len(names), self.where)
        clean_head, head_nan = sanitize_head(head, self.where)
        self.stats.frames += 1
        self.stats.nan_values += nan_count + head_nan
        self._send_datagram(self._encode(float(time_s), clean, clean_head))

    def _send_datagram(self, datagram: bytes) -> None:
        assert self._sock is not None
        try:
            self._sock.send(datagram)
        except OSError as error:
            if error.errno not in TRANSIENT_SEND_ERRNOS:
                raise LiveOutputError(f"{self.where}: sending failed ({error.strerror})") from error
            self.stats.send_errors += 1
            self.stats.last_error = error.strerror or str(error)
            return
        self.stats.sent += 1

    def close(self) -> None:
        """Close the socket; idempotent."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> UdpSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
