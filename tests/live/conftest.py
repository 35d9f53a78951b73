"""Fixtures of the live-output tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from live.loopback import TIMEOUT_S


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    """A UDP socket on 127.0.0.1 with a free port, the stand-in for VSeeFace or Unreal."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(TIMEOUT_S)
    yield sock
    sock.close()
