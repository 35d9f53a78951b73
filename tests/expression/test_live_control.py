"""Live emotion changes over a real WebSocket and a real OSC socket on loopback."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from pythonosc.udp_client import SimpleUDPClient
from websockets.sync.client import connect

from audio2blendshape.audio.decode import load_audio
from audio2blendshape.expression.layers import ExpressionControls
from audio2blendshape.live.control import OSC_EMOTION, ExpressionCommands, OscControl
from audio2blendshape.live.websocket import WebSocketServer
from audio2blendshape.runtime.backends import load_stream_model
from audio2blendshape.runtime.streamer import Streamer

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello.wav"
TIMEOUT_S = 5.0
CHEEK = 47  # cheekSquintLeft: raised by "happy", ungated by the lips


class Recorder:
    """A stand-in Streamer that records the changes asked of it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float, float | None]] = []

    def set_emotion(self, preset: str, intensity: float = 1.0, ramp_s: float | None = None) -> None:
        if preset not in ("happy", "sad"):
            raise ValueError(f"unknown emotion preset {preset!r}")
        self.calls.append((preset, intensity, ramp_s))


def stream(streamer: Streamer, audio: np.ndarray, change_at: int | None, change: object = None) -> np.ndarray:
    """Weights of a stream of ``audio`` in 20 ms chunks, ``change()`` called before chunk ``change_at``."""
    parts = []
    for number, first in enumerate(range(0, len(audio), 320)):
        if number == change_at and callable(change):
            change()
        parts.append(streamer.push(audio[first : first + 320]).weights)
    parts.append(streamer.flush().weights)
    return np.concatenate(parts)


def new_streamer() -> Streamer:
    return Streamer(load_stream_model(None, "auto", 1), 16000, 60, False, 0, expression=ExpressionControls())


def test_a_websocket_command_ramps_the_running_stream() -> None:
    audio = load_audio(HELLO)
    plain = stream(new_streamer(), audio, None)
    streamer = new_streamer()
    commands = ExpressionCommands(streamer)
    replies: list[dict[str, object]] = []
    with (
        WebSocketServer("127.0.0.1:0", on_message=commands.handle_json) as server,
        connect(f"ws://127.0.0.1:{server.port}", proxy=None, open_timeout=TIMEOUT_S) as client,
    ):

        def send() -> None:
            command = {"type": "expression", "emotion": "happy", "intensity": 0.8, "ramp_s": 0.5}
            client.send(json.dumps(command))
            replies.append(json.loads(client.recv(timeout=TIMEOUT_S)))
            client.send(json.dumps({"type": "expression", "emotion": "giddy"}))
            replies.append(json.loads(client.recv(timeout=TIMEOUT_S)))

        directed = stream(streamer, audio, 100, send)  # at 2.0 s
    assert replies[0] == {"type": "expression", "ok": True}
    assert replies[1]["type"] == "error" and "giddy" in str(replies[1]["error"])
    assert commands.applied == 1 and commands.refused == 1
    cheek = directed[:, CHEEK] - plain[:, CHEEK]
    start = np.flatnonzero(np.abs(cheek) > 1e-6)[0]
    assert 110 <= start <= 125  # the first frame computed after the command (2 s, plus the model's delay)
    np.testing.assert_array_equal(directed[:start], plain[:start])
    ramp = cheek[start : start + 30]  # 0.5 s at 60 fps
    assert np.all(np.diff(ramp) > -1e-3) and np.abs(np.diff(ramp)).max() < 0.05  # ramped, not snapped
    assert cheek[start + 40 :].min() > 0.2


def test_osc_messages_change_the_emotion() -> None:
    target = Recorder()
    commands = ExpressionCommands(target)
    with OscControl(commands, 0) as server:
        client = SimpleUDPClient("127.0.0.1", server.port)
        client.send_message(OSC_EMOTION, ["happy", 0.7, 0.2])
        client.send_message(OSC_EMOTION, ["sad"])
        client.send_message(OSC_EMOTION, ["giddy", 1.0])
        client.send_message(OSC_EMOTION, [])
        deadline = time.monotonic() + TIMEOUT_S
        while commands.applied + commands.refused < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
    calls = sorted(target.calls)
    assert [c[0] for c in calls] == ["happy", "sad"] and calls[1][1:] == (1.0, None)
    np.testing.assert_allclose(calls[0][1:], (0.7, 0.2), rtol=1e-6)  # OSC floats are float32
    assert commands.refused == 2


def test_bad_websocket_commands_are_answered_not_applied() -> None:
    commands = ExpressionCommands(Recorder())
    for text, needle in (
        ("not json", "Expecting value"),
        ('{"type": "other"}', '"type": "expression"'),
        ('{"type": "expression", "emotion": "happy", "intensity": "loud"}', "intensity must be a number"),
        ('{"type": "expression", "emotion": "happy", "speed": 1}', "unknown keys speed"),
    ):
        reply = json.loads(commands.handle_json(text))
        assert reply["type"] == "error" and needle in reply["error"]
    assert commands.applied == 0 and commands.refused == 4
