"""Shared by the live-output tests (the ``receiver`` fixture itself is in ``conftest.py`` beside this)."""

from __future__ import annotations

import socket

TIMEOUT_S = 2.0  # a loopback datagram or message arrives in microseconds; this only bounds a failure


def address(sock: socket.socket) -> str:
    """``host:port`` of a receiver, as the senders take it."""
    return f"127.0.0.1:{sock.getsockname()[1]}"
