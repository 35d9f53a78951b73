"""Live outputs with real receivers on loopback: VMC (OSC bundles), Live Link Face UDP, WebSocket JSON."""

from __future__ import annotations

import json
import socket
import struct
import time
import uuid
from collections.abc import Iterator
from fractions import Fraction

import numpy as np
import pytest
from live.loopback import TIMEOUT_S, address
from pythonosc.osc_bundle import OscBundle
from websockets.sync.client import ClientConnection, connect

from audio2blendshape.live.livelink_udp import (
    LiveLinkSender,
    decode_livelink_packet,
    encode_livelink_packet,
    livelink_frame_time,
)
from audio2blendshape.live.outputs import open_live_outputs
from audio2blendshape.live.sink import LiveOutputError, parse_host_port, sanitize
from audio2blendshape.live.vmc import VmcBundleTemplate, VmcSender, build_vmc_bundle
from audio2blendshape.live.websocket import WebSocketServer
from audio2blendshape.names import ARKIT, ARKIT_NAMES, Rig, to_pascal


def free_udp_port() -> int:
    """A port nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def frames(count: int, width: int = 52, seed: int = 0) -> np.ndarray:
    """(count, width) weights, distinct per frame, inside [0, 1]."""
    return np.random.default_rng(seed).uniform(0.0, 1.0, (count, width)).astype(np.float32)


def ws_client(server: WebSocketServer, sock: socket.socket | None = None) -> ClientConnection:
    """A connected sync client; waits (bounded) until the server has registered it."""
    before = server.client_count
    client = connect(f"ws://127.0.0.1:{server.port}", sock=sock, proxy=None, open_timeout=TIMEOUT_S)
    deadline = time.monotonic() + TIMEOUT_S
    while server.client_count <= before and time.monotonic() < deadline:
        time.sleep(0.002)
    assert server.client_count == before + 1
    return client


# --- addresses and values ---


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("127.0.0.1", "expected HOST:PORT"),
        ("127.0.0.1:abc", "port 'abc'"),
        ("127.0.0.1:70000", "port '70000'"),
        ("127.0.0.1:0", "port '0'"),
        (":39539", "host is empty"),
        ("::1:39539", "IPv6 host in brackets"),
    ],
)
def test_bad_addresses_are_named(spec: str, needle: str) -> None:
    with pytest.raises(LiveOutputError, match="VMC output") as caught:
        VmcSender(spec)
    assert needle in str(caught.value) and repr(spec) in str(caught.value)


def test_host_port_forms() -> None:
    assert parse_host_port("localhost:39539", "x") == ("localhost", 39539)
    assert parse_host_port(" [::1]:11111 ", "x") == ("::1", 11111)
    assert parse_host_port("0.0.0.0:0", "x", allow_port_zero=True) == ("0.0.0.0", 0)


def test_unresolvable_host_fails_quickly_with_its_name() -> None:
    start = time.monotonic()
    with pytest.raises(LiveOutputError, match=r"host 'no-such-host\.invalid' does not resolve"):
        LiveLinkSender("no-such-host.invalid:39539")
    assert time.monotonic() - start < 5.0


def test_sanitize_replaces_nan_and_clips() -> None:
    clean, nan_count = sanitize(np.array([np.nan, -0.5, 0.25, 1.5, np.inf, np.nan]), 6, "here")
    assert nan_count == 2
    np.testing.assert_array_equal(clean, np.array([0, 0, 0.25, 1, 1, 0], np.float32))
    with pytest.raises(LiveOutputError, match=r"here: values have shape \(5,\), expected \(6,\)"):
        sanitize(np.zeros(5), 6, "here")


# --- VMC ---


def test_vmc_template_bytes_equal_a_bundle_built_message_by_message() -> None:
    names = (*ARKIT_NAMES[:7], "tongueOut")
    template = VmcBundleTemplate(names)
    for values in frames(3, len(names)):
        assert template.fill(values) == build_vmc_bundle(names, values)


def test_vmc_receiver_gets_every_shape_of_every_frame_then_apply(receiver: socket.socket) -> None:
    weights = frames(4)
    weights[1, 17] = np.nan  # jawOpen of frame 1
    weights[2, 0], weights[2, 1] = 1.7, -0.3
    with VmcSender(address(receiver)) as sender:
        for i, row in enumerate(weights):
            sender.send(i / 60, row, ARKIT)
        assert sender.stats.nan_values == 1 and sender.stats.frames == 4
    expected = np.clip(np.nan_to_num(weights, nan=0.0), 0, 1)
    for row in expected:
        bundle = OscBundle(receiver.recv(65536))
        messages = list(bundle)
        assert len(messages) == 53
        assert [m.address for m in messages] == ["/VMC/Ext/Blend/Val"] * 52 + ["/VMC/Ext/Blend/Apply"]
        assert [m.params[0] for m in messages[:52]] == list(ARKIT_NAMES)
        np.testing.assert_array_equal(np.array([m.params[1] for m in messages[:52]], np.float32), row)
        assert messages[52].params == []


def test_vmc_sends_canonical_or_pascal_spelling_of_a_subset(receiver: socket.socket) -> None:
    names = ["JAWOPEN", "mouthsmileleft", "eyeBlinkRight"]
    for pascal, wire in ((False, ["jawOpen", "mouthSmileLeft", "eyeBlinkRight"]), (True, None)):
        with VmcSender(address(receiver), pascal=pascal) as sender:
            sender.send(0.0, np.array([0.5, 0.25, 1.0]), names)
        messages = list(OscBundle(receiver.recv(65536)))
        want = wire or [to_pascal(n) for n in ["jawOpen", "mouthSmileLeft", "eyeBlinkRight"]]
        assert [(m.params[0], m.params[1]) for m in messages[:3]] == list(
            zip(want, [0.5, 0.25, 1.0], strict=True)
        )


def test_vmc_rejects_names_that_are_not_arkit(receiver: socket.socket) -> None:
    with VmcSender(address(receiver)) as sender, pytest.raises(LiveOutputError) as caught:
        sender.send(0.0, np.zeros(2), ["jawOpen", "Mouth_A"])
    assert address(receiver) in str(caught.value) and "'Mouth_A'" in str(caught.value)


def test_ipv6_loopback_and_send_after_close() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with sock:
        sock.settimeout(TIMEOUT_S)
        sender = VmcSender(f"[::1]:{sock.getsockname()[1]}")
        sender.send(0.0, np.array([0.75]), ["jawOpen"])
        sender.close()
        assert [(m.address, m.params) for m in OscBundle(sock.recv(65536))] == [
            ("/VMC/Ext/Blend/Val", ["jawOpen", 0.75]),
            ("/VMC/Ext/Blend/Apply", []),
        ]
    with pytest.raises(LiveOutputError, match=r"VMC output to \[::1\]:\d+: send\(\) after close\(\)"):
        sender.send(0.0, np.array([0.75]), ["jawOpen"])


# --- Live Link Face ---


def test_livelink_frame_time_from_timestamp() -> None:
    assert livelink_frame_time(0.1, Fraction(60)) == (6, 0.0)  # 0.1 * 60 = 5.9999999 in floats
    assert livelink_frame_time(0.5 + 1 / 240, Fraction(60)) == (30, pytest.approx(0.25))
    assert livelink_frame_time(1.0, Fraction(30000, 1001)) == (29, pytest.approx(0.97002997))
    with pytest.raises(LiveOutputError, match="-1"):
        livelink_frame_time(-1.0, Fraction(60))


def test_livelink_packet_byte_for_byte(receiver: socket.socket) -> None:
    device = "0F8A1C2E-3B4D-4E5F-8A9B-0C1D2E3F4A5B"
    order = np.random.default_rng(1).permutation(52)  # the caller's column order need not be canonical
    names = [ARKIT_NAMES[i] for i in order]
    canonical = frames(1)[0]
    canonical[5] = np.nan
    with LiveLinkSender(address(receiver), subject="Face1", fps=60, device_id=device) as sender:
        sender.send(0.5 + 1 / 240, canonical[order], names)
    data = receiver.recv(65536)
    want_values = canonical.copy()
    want_values[5] = 0.0
    header = (
        b"\x06\x00\x00\x00" + b"$" + device.encode("ascii")  # version 6 LE, "$" + UUID
        + b"\x00\x00\x00\x05" + b"Face1"  # int32 BE subject length, subject
        + b"\x00\x00\x00\x1e" + b"\x3e\x80\x00\x00"  # frame 30, sub-frame 0.25 (float32 BE)
        + b"\x00\x00\x00\x3c" + b"\x00\x00\x00\x01"  # rate 60 / 1
        + b"\x3d"  # count 61
    )  # fmt: skip
    assert data[: len(header)] == header
    assert data[len(header) :] == struct.pack(">61f", *want_values.tolist(), *[0.0] * 9)
    # Unreal reads the same bytes as a uint8 version and an int32 BE length-prefixed 36-character UUID.
    assert data[0] == 6 and struct.unpack(">i", data[1:5])[0] == 36 and data[5:41] == device.encode()
    packet = decode_livelink_packet(data)
    assert (packet.version, packet.device_id, packet.subject) == (6, "$" + device, "Face1")
    assert (packet.frame_number, packet.sub_frame, packet.rate) == (30, 0.25, Fraction(60))
    np.testing.assert_array_equal(packet.blendshapes, want_values)
    np.testing.assert_array_equal(packet.head_and_eyes, np.zeros(9, np.float32))


def test_livelink_needs_exactly_the_52(receiver: socket.socket) -> None:
    with LiveLinkSender(address(receiver)) as sender, pytest.raises(LiveOutputError) as caught:
        sender.send(0.0, np.zeros(51), ARKIT_NAMES[:51])
    assert "all 52" in str(caught.value) and "tongueOut" in str(caught.value)
    assert address(receiver) in str(caught.value)


def test_livelink_decoder_names_what_is_wrong() -> None:
    packet = encode_livelink_packet(np.zeros(52), 3, subject="Me")
    assert decode_livelink_packet(packet).frame_number == 3
    with pytest.raises(LiveOutputError, match="too short"):
        decode_livelink_packet(packet[:40])
    with pytest.raises(LiveOutputError, match="version 7"):
        decode_livelink_packet(b"\x07" + packet[1:])
    with pytest.raises(LiveOutputError, match="262 bytes after the subject name, expected 261"):
        decode_livelink_packet(packet + b"\x00")


def test_missing_receiver_neither_raises_nor_slows_sending() -> None:
    port = free_udp_port()
    weights = frames(1000)
    for sender in (VmcSender(f"127.0.0.1:{port}"), LiveLinkSender(f"127.0.0.1:{port}")):
        with sender:
            start = time.perf_counter()
            for i, row in enumerate(weights):
                sender.send(i / 60, row, ARKIT_NAMES)
            elapsed = time.perf_counter() - start
        assert elapsed < 0.5, f"{sender.where}: 1000 frames took {elapsed:.3f} s"
        stats = sender.stats
        assert stats.frames == 1000 and stats.sent + stats.send_errors == 1000
        assert stats.send_errors > 0 and "refused" in stats.last_error.lower()


# --- WebSocket ---


@pytest.fixture
def server() -> Iterator[WebSocketServer]:
    with WebSocketServer("127.0.0.1:0") as running:
        yield running


def test_websocket_clients_get_names_once_then_values_in_order(server: WebSocketServer) -> None:
    rig = Rig(("A", "b_mouth", "Custom 3"), "custom")  # any rig goes over WebSocket
    weights = frames(5, 3)
    weights[3, 1] = np.nan
    with ws_client(server) as first:
        for i in range(3):
            server.send(i * 0.02, weights[i], rig)
        with ws_client(server) as late:
            for i in range(3, 5):
                server.send(i * 0.02, weights[i], rig)
            got = [json.loads(first.recv(timeout=TIMEOUT_S)) for _ in range(5)]
            got_late = [json.loads(late.recv(timeout=TIMEOUT_S)) for _ in range(2)]
    assert [m.get("names") for m in got] == [["A", "b_mouth", "Custom 3"], None, None, None, None]
    assert [m["frame"] for m in got] == [0, 1, 2, 3, 4]
    assert [m["time"] for m in got] == [0.0, 0.02, 0.04, 0.06, 0.08]
    weights[3, 1] = 0.0
    np.testing.assert_allclose([m["values"] for m in got], weights, atol=5e-6)
    assert got_late[0]["names"] == ["A", "b_mouth", "Custom 3"] and "names" not in got_late[1]
    assert [m["frame"] for m in got_late] == [3, 4]
    assert server.stats.nan_values == 1 and server.stats.dropped == 0


def test_slow_websocket_client_loses_only_the_oldest_frames() -> None:
    names = [f"shape{i:03d}" for i in range(400)]  # ~3.6 kB per message, so buffers fill quickly
    count, queue = 1500, 8
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a client that reads slowly
    with WebSocketServer("127.0.0.1:0", max_queue=queue) as server:
        sock.connect(("127.0.0.1", server.port))
        with ws_client(server, sock) as client:
            weights = frames(count, len(names))
            slowest = 0.0
            for i, row in enumerate(weights):
                start = time.perf_counter()
                server.send(i / 60, row, names)
                slowest = max(slowest, time.perf_counter() - start)
            # A send that waited for this client would wait for ever (it reads only after the loop); the
            # bound is loose so a busy machine's scheduling pause is not mistaken for one.
            assert slowest < 0.5, f"send() took {slowest:.3f} s while the client was not reading"
            received: list[int] = []
            while not received or received[-1] != count - 1:
                received.append(json.loads(client.recv(timeout=TIMEOUT_S))["frame"])
        dropped = server.stats.dropped
    assert received == sorted(set(received))  # in order, no repeats
    assert received[-queue:] == list(range(count - queue, count))  # the newest frames all arrive
    assert dropped > 0 and dropped == count - len(received)


def test_websocket_port_in_use_is_named() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(LiveOutputError, match=f"port {port} is already in use"):
            WebSocketServer(f"127.0.0.1:{port}")


# --- fan-out ---


def test_live_outputs_send_each_frame_to_every_sink(receiver: socket.socket) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as unreal:
        unreal.bind(("127.0.0.1", 0))
        unreal.settimeout(TIMEOUT_S)
        outputs = open_live_outputs(
            vmc=address(receiver), livelink=address(unreal), websocket="127.0.0.1:0", livelink_subject="Av"
        )
        web = outputs.sinks[2]
        assert isinstance(web, WebSocketServer)
        weights = frames(2)
        with outputs, ws_client(web) as browser:
            for i, row in enumerate(weights):
                outputs.send(i / 30, row, ARKIT)
            for row in weights:
                vmc_values = [m.params[1] for m in list(OscBundle(receiver.recv(65536)))[:52]]
                np.testing.assert_array_equal(np.array(vmc_values, np.float32), row)
                np.testing.assert_array_equal(decode_livelink_packet(unreal.recv(65536)).blendshapes, row)
                np.testing.assert_allclose(
                    json.loads(browser.recv(timeout=TIMEOUT_S))["values"], row, atol=5e-6
                )
            assert [s.frames for s in outputs.stats().values()] == [2, 2, 2]
            assert list(outputs.stats()) == [
                f"VMC output to {address(receiver)}",
                f"Live Link output to {address(unreal)}",
                "WebSocket output on 127.0.0.1:0",
            ]
        assert outputs.sinks == [] and not web._thread.is_alive()


def test_open_live_outputs_closes_what_it_opened_when_one_fails(
    receiver: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[str] = []
    original = VmcSender.close

    def recording_close(self: VmcSender) -> None:
        closed.append(self.where)
        original(self)

    monkeypatch.setattr(VmcSender, "close", recording_close)
    with pytest.raises(LiveOutputError, match=r"Live Link output address .*no-such-host\.invalid"):
        open_live_outputs(vmc=address(receiver), livelink="no-such-host.invalid:11111")
    assert closed == [f"VMC output to {address(receiver)}"]


def test_livelink_device_id_must_be_a_uuid(receiver: socket.socket) -> None:
    with pytest.raises(LiveOutputError, match=r"device id .* is not a UUID"):
        LiveLinkSender(address(receiver), device_id=str(uuid.uuid4())[:-1])
