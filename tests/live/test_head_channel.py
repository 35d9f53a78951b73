"""The head rotation channel on the live outputs: Live Link UDP slots, VMC Head bone, WebSocket key."""

from __future__ import annotations

import json
import math
import socket
import struct
import time

import numpy as np
import pytest
from live.loopback import TIMEOUT_S, address
from pythonosc.osc_bundle import OscBundle
from websockets.sync.client import connect

from audio2blendshape.live.livelink_udp import LiveLinkSender, decode_livelink_packet
from audio2blendshape.live.outputs import LiveOutputs
from audio2blendshape.live.session import FrameSender
from audio2blendshape.live.sink import LiveOutputError, Names, SinkStats
from audio2blendshape.live.vmc import (
    BONE_ADDRESS,
    VmcBundleTemplate,
    VmcSender,
    build_vmc_bundle,
    head_quaternion,
)
from audio2blendshape.live.websocket import WebSocketServer
from audio2blendshape.names import ARKIT_NAMES
from audio2blendshape.runtime.streamer import StreamFrames

HEAD = np.array([0.25, -0.125, 0.0625], np.float32)  # yaw, pitch, roll in radians


def weights(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 1.0, 52).astype(np.float32)


# --- Live Link UDP ---


def test_livelink_packet_carries_the_head_after_the_52_shapes(receiver: socket.socket) -> None:
    with LiveLinkSender(address(receiver), subject="s") as sender:
        sender.send(0.5, weights(), ARKIT_NAMES, HEAD)
        data = receiver.recv(65536)
        sender.send(0.6, weights(), ARKIT_NAMES)
        without = receiver.recv(65536)
    # Field by field: the 61 big-endian floats are the datagram's last 244 bytes.
    values = struct.unpack(">61f", data[-61 * 4 :])
    np.testing.assert_array_equal(values[:52], weights())
    assert values[52:55] == tuple(float(v) for v in HEAD)  # float32 round trip is exact
    assert values[55:] == (0.0,) * 6  # eye rotations stay 0
    packet = decode_livelink_packet(data)
    np.testing.assert_array_equal(packet.head_and_eyes[:3], HEAD)
    assert struct.unpack(">61f", without[-61 * 4 :])[52:] == (0.0,) * 9


# --- VMC ---


def rotate(q: np.ndarray, v: tuple[float, float, float]) -> np.ndarray:
    """Vector ``v`` rotated by unit quaternion ``q`` (x, y, z, w)."""
    u, w = q[:3], q[3]
    vec = np.asarray(v, dtype=np.float64)
    return np.asarray(vec + 2 * np.cross(u, np.cross(u, vec) + w * vec))


@pytest.mark.parametrize(
    ("head", "forward", "up"),
    [
        # Unity frame: x = the avatar's right, y = up, z = the way it faces.
        ((math.pi / 2, 0.0, 0.0), (-1, 0, 0), (0, 1, 0)),  # yaw > 0: turn to the character's own left
        ((0.0, math.pi / 2, 0.0), (0, -1, 0), (0, 0, 1)),  # pitch > 0: nod down, the crown goes forward
        ((0.0, 0.0, math.pi / 2), (0, 0, 1), (1, 0, 0)),  # roll > 0: tilt to the character's right
    ],
)
def test_head_quaternion_turns_the_face_the_documented_way(
    head: tuple[float, float, float], forward: tuple[int, int, int], up: tuple[int, int, int]
) -> None:
    q = head_quaternion(*head)
    assert math.isclose(float(np.linalg.norm(q)), 1.0, abs_tol=1e-12)
    np.testing.assert_allclose(rotate(q, (0, 0, 1)), forward, atol=1e-12)
    np.testing.assert_allclose(rotate(q, (0, 1, 0)), up, atol=1e-12)


def test_head_quaternion_is_yaw_then_pitch_then_roll() -> None:
    yaw, pitch, roll = 0.3, -0.2, 0.1
    half = {axis: (math.sin(a / 2), math.cos(a / 2)) for axis, a in (("y", -yaw), ("x", pitch), ("z", -roll))}
    q_y = np.array([0, half["y"][0], 0, half["y"][1]])
    q_x = np.array([half["x"][0], 0, 0, half["x"][1]])
    q_z = np.array([0, 0, half["z"][0], half["z"][1]])

    def mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        v = a[3] * b[:3] + b[3] * a[:3] + np.cross(a[:3], b[:3])
        return np.array([*v, a[3] * b[3] - a[:3] @ b[:3]])

    np.testing.assert_allclose(head_quaternion(yaw, pitch, roll), mul(mul(q_y, q_x), q_z), atol=1e-12)


def test_vmc_bundle_has_a_head_bone_message_only_with_a_head(receiver: socket.socket) -> None:
    names = ARKIT_NAMES[:3]
    with VmcSender(address(receiver)) as sender:
        sender.send(0.0, weights()[:3], names, HEAD)
        with_head = list(OscBundle(receiver.recv(65536)))
        sender.send(0.1, weights()[:3], names)
        without = receiver.recv(65536)
    addresses = [m.address for m in with_head]
    assert addresses == ["/VMC/Ext/Blend/Val"] * 3 + [BONE_ADDRESS, "/VMC/Ext/Blend/Apply"]
    bone = with_head[3].params
    assert bone[0] == "Head" and bone[1:4] == [0.0, 0.0, 0.0]
    np.testing.assert_allclose(bone[4:], head_quaternion(*HEAD.tolist()), atol=1e-7)
    assert math.isclose(float(np.linalg.norm(bone[4:])), 1.0, abs_tol=1e-6)
    assert without == build_vmc_bundle(names, weights()[:3])  # no head: the bundle of before


def test_vmc_head_template_bytes_equal_the_built_bundle() -> None:
    names = ARKIT_NAMES[:5]
    template = VmcBundleTemplate(names, head=True)
    for seed in range(3):
        head = np.random.default_rng(seed).uniform(-1, 1, 3).astype(np.float32)
        assert template.fill(weights(seed)[:5], head) == build_vmc_bundle(names, weights(seed)[:5], head)


# --- WebSocket ---


def test_websocket_frame_message_carries_the_head() -> None:
    server = WebSocketServer("127.0.0.1:0")
    url = f"ws://127.0.0.1:{server.port}"
    with server, connect(url, proxy=None, open_timeout=TIMEOUT_S) as client:
        deadline = time.monotonic() + TIMEOUT_S
        while server.client_count == 0 and time.monotonic() < deadline:
            time.sleep(0.002)
        server.send(0.0, weights()[:2], ("a", "b"), np.array([0.1234567, -0.5, np.nan]))
        server.send(0.1, weights()[:2], ("a", "b"))
        first = json.loads(client.recv(timeout=TIMEOUT_S))
        second = json.loads(client.recv(timeout=TIMEOUT_S))
    assert first["head"] == [0.12346, -0.5, 0.0]  # 5 decimals; NaN -> 0 and counted
    assert "head" not in second
    assert server.stats.nan_values == 1


def test_a_head_of_the_wrong_shape_is_named(receiver: socket.socket) -> None:
    sender = LiveLinkSender(address(receiver))
    with sender, pytest.raises(LiveOutputError, match=r"head has shape \(2,\), expected \(3,\)"):
        sender.send(0.0, weights(), ARKIT_NAMES, np.zeros(2))


# --- fan-out and the session ---


class Recorder:
    """A sink that keeps what it was given (and, like sinks written before the head, may lack ``head``)."""

    def __init__(self) -> None:
        self.stats = SinkStats()
        self.got: list[tuple[float, np.ndarray | None]] = []

    def send(self, time_s: float, values: np.ndarray, names: Names, head: np.ndarray | None = None) -> None:
        self.got.append((time_s, None if head is None else np.asarray(head)))

    def close(self) -> None:
        pass


def test_frame_sender_passes_each_frames_head_to_every_sink() -> None:
    recorder = Recorder()
    sender = FrameSender(LiveOutputs([recorder]), ARKIT_NAMES, latency_s=None)
    heads = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], np.float32)
    index = np.arange(2)
    sender.add(StreamFrames(index, index / 60, np.zeros((2, 52), np.float32), 0.1, head=heads))
    sender.add(StreamFrames(index + 2, (index + 2) / 60, np.zeros((2, 52), np.float32), 0.2))
    assert [t for t, _ in recorder.got] == pytest.approx([0, 1 / 60, 2 / 60, 3 / 60])
    np.testing.assert_array_equal(recorder.got[1][1], heads[1])
    assert recorder.got[2][1] is None and recorder.got[3][1] is None


@pytest.mark.parametrize(
    ("head", "needle"),
    [
        (np.zeros((3, 2)), r"head has shape \(3, 2\), expected \(2, 3\)"),
        (np.full((2, 3), np.inf), "head yaw at frame 0 is not a finite"),
    ],
)
def test_stream_frames_check_the_head(head: np.ndarray, needle: str) -> None:
    index = np.arange(2)
    with pytest.raises(ValueError, match=f"StreamFrames: {needle}"):
        StreamFrames(index, index / 60, np.zeros((2, 52), np.float32), 0.1, head=head)
