"""docs/errors.md: the expression, head and live-command rows, built here, get the messages the table shows.

tests/runtime/test_untrusted_input.py checks the file readers' rows and tests/audio/test_audio.py the audio
ones; each file lists the id prefixes it owns, and together they cover every row.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from pythonosc.udp_client import SimpleUDPClient
from websockets.sync.client import connect

from audio2blendshape.cli.expression import require_arkit
from audio2blendshape.expression.layers import ExpressionControls, ExpressionLayer
from audio2blendshape.live.control import OSC_EMOTION, ExpressionCommands, OscControl
from audio2blendshape.live.websocket import WebSocketServer
from audio2blendshape.names import ARKIT_NAMES
from audio2blendshape.runtime.animator import Animator
from audio2blendshape.runtime.writers import Animation, WriterError, read_json_animation, read_npy_animation

PREFIXES = ("preset-", "track-", "emotion-", "articulation-", "expressiveness-", "rig-", "head-", "live-")
TIMEOUT_S = 5.0
ANIMATION = {"names": ["a", "b"], "fps": 30, "frames": [[0.1, 0.2], [0.3, 0.4]]}
WEIGHTS = np.zeros((10, 52), np.float32)


def _raises(read: Callable[[], object], error: type[Exception] = ValueError) -> str:
    with pytest.raises(error) as caught:
        read()
    return str(caught.value)


def _file(tmp: Path, name: str, content: str) -> Path:
    (tmp / name).write_text(content, encoding="utf-8")
    return tmp / name


def _preset(tmp: Path, content: str, name: str = "smirk.json") -> str:
    """What ``--preset FILE`` gets (through ``ExpressionControls.build``, as the CLI calls it)."""
    path = _file(tmp, name, content)
    return _raises(lambda: ExpressionControls.build(presets=[path]))


def _track(tmp: Path, name: str, content: str) -> str:
    """What ``--emotion-track FILE`` gets."""
    path = _file(tmp, name, content)
    return _raises(lambda: ExpressionControls.build(track=path))


def _head(head: object) -> str:
    return _raises(lambda: Animation(tuple(ARKIT_NAMES), 30.0, WEIGHTS, 1 / 3, head=head))


def _json_head(tmp: Path, head: object) -> str:
    path = _file(tmp, "a.json", json.dumps({**ANIMATION, "head": head}))
    return _raises(lambda: read_json_animation(path), WriterError)


def _npy_head(tmp: Path) -> str:
    np.save(tmp / "x.npy", WEIGHTS)
    np.save(tmp / "x.head.npy", np.zeros((5, 3), np.float32))  # a sidecar left from a shorter take
    here = Path.cwd()
    os.chdir(tmp)  # the message names both files: relative paths keep the row's text whole
    try:
        return _raises(lambda: read_npy_animation("x.npy", tuple(ARKIT_NAMES), 30.0), WriterError)
    finally:
        os.chdir(here)


def _other_rig_api() -> str:
    model = SimpleNamespace(kind="frame", names=("a", "b", "c"), num_shapes=3, source="x.safetensors")
    animator = Animator(model)
    controls = ExpressionControls.build(emotion="happy")
    return _raises(
        lambda: animator.express(np.zeros((4, 3), np.float32), np.zeros(1600), 16000, 30, 0, controls)
    )


def _websocket(command: str) -> str:
    """The ``error`` of the reply a ``stream --ws`` client gets for ``command`` (the Streamer hands emotion
    changes to its ExpressionLayer, the target here)."""
    commands = ExpressionCommands(ExpressionLayer(ExpressionControls(), 60.0))
    with (
        WebSocketServer("127.0.0.1:0", on_message=commands.handle_json) as server,
        connect(f"ws://127.0.0.1:{server.port}", proxy=None, open_timeout=TIMEOUT_S) as client,
    ):
        client.send(command)
        reply = json.loads(client.recv(timeout=TIMEOUT_S))
    assert reply["type"] == "error" and commands.refused == 1 and commands.applied == 0
    return str(reply["error"])


def _osc(caplog: pytest.LogCaptureFixture, arguments: list[object]) -> str:
    """The warning ``stream --osc-in`` logs for an ``/a2b/emotion`` message of ``arguments``."""
    commands = ExpressionCommands(ExpressionLayer(ExpressionControls(), 60.0))
    with (
        caplog.at_level(logging.WARNING, logger="audio2blendshape.live.control"),
        OscControl(commands, 0) as server,
    ):
        SimpleUDPClient("127.0.0.1", server.port).send_message(OSC_EMOTION, arguments)
        deadline = time.monotonic() + TIMEOUT_S
        while commands.refused == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert commands.refused == 1 and commands.applied == 0
    return "\n".join(record.getMessage() for record in caplog.records)


NOT_IN_01 = '[{"time": 0, "preset": "happy", "intensity": 2}]'
CASES: dict[str, Callable[[Path, pytest.LogCaptureFixture], str]] = {
    "preset-unknown": lambda t, c: _raises(lambda: ExpressionControls.build(emotion="smug=0.5")),
    "preset-not-json": lambda t, c: _preset(t, "{mouthSmileLeft"),
    "preset-not-object": lambda t, c: _preset(t, "[0.5]"),
    "preset-shape-name": lambda t, c: _preset(t, '{"mouthSmil": 0.5}'),
    "preset-range": lambda t, c: _preset(t, '{"mouthSmileLeft": 1.5}'),
    "preset-not-number": lambda t, c: _preset(t, '{"mouthSmileLeft": "high"}'),
    "preset-builtin-name": lambda t, c: _preset(t, '{"mouthSmileLeft": 0.5}', "Happy.json"),
    "emotion-spec": lambda t, c: _raises(lambda: ExpressionControls.build(emotion="happy=lots")),
    "track-not-json": lambda t, c: _track(t, "cues.json", '[{"time": 0,'),
    "track-not-list": lambda t, c: _track(t, "cues.json", '{"time": 0, "preset": "happy"}'),
    "track-no-cues": lambda t, c: _track(t, "cues.json", "[]"),
    "track-unknown-key": lambda t, c: _track(
        t, "cues.json", '[{"time": 0, "preset": "happy", "strength": 1}]'
    ),
    "track-missing-time": lambda t, c: _track(t, "cues.json", '[{"preset": "happy"}]'),
    "track-negative-time": lambda t, c: _track(t, "cues.json", '[{"time": -1, "preset": "happy"}]'),
    "track-intensity": lambda t, c: _track(t, "cues.json", NOT_IN_01),
    "track-unknown-preset": lambda t, c: _track(t, "cues.json", '[{"time": 1.5, "preset": "smug"}]'),
    "track-csv-header": lambda t, c: _track(t, "cues.csv", "t,emotion\n0,happy\n"),
    "track-csv-number": lambda t, c: _track(t, "cues.csv", "time,preset,intensity\nsoon,happy,0.5\n"),
    "articulation-range": lambda t, c: _raises(lambda: ExpressionControls(articulation=2.0)),
    "expressiveness-range": lambda t, c: _raises(lambda: ExpressionControls(expressiveness=3.0)),
    "head-motion-range": lambda t, c: _raises(lambda: ExpressionControls(head_motion=-1.0)),
    "rig-cli": lambda t, c: _raises(lambda: require_arkit(False, "x.safetensors", 3)),
    "rig-api": lambda t, c: _other_rig_api(),
    "head-shape": lambda t, c: _head(np.zeros((10, 2))),
    "head-nan": lambda t, c: _head(np.where(np.arange(30).reshape(10, 3) == 13, np.nan, 0.0)),
    "head-text": lambda t, c: _head(np.full((10, 3), "a")),
    "head-json-rows": lambda t, c: _json_head(t, [[0.0, 0.0, 0.0]]),
    "head-json-row": lambda t, c: _json_head(t, [[0.0, 0.0], [0.0, 0.0]]),
    "head-json-text": lambda t, c: _json_head(t, [["left", 0.0, 0.0], [0.0, 0.0, 0.0]]),
    "head-json-overflow": lambda t, c: _json_head(t, [[0.0, 1e39, 0.0], [0.0, 0.0, 0.0]]),
    "head-npy-sidecar": lambda t, c: _npy_head(t),
    "live-ws-not-json": lambda t, c: _websocket("happy"),
    "live-ws-type": lambda t, c: _websocket('{"type": "emotion", "emotion": "happy"}'),
    "live-ws-unknown-key": lambda t, c: _websocket('{"type": "expression", "emotion": "happy", "speed": 2}'),
    "live-ws-no-emotion": lambda t, c: _websocket('{"type": "expression", "intensity": 0.5}'),
    "live-ws-unknown-preset": lambda t, c: _websocket('{"type": "expression", "emotion": "smug"}'),
    "live-ws-intensity": lambda t, c: _websocket(
        '{"type": "expression", "emotion": "happy", "intensity": 2}'
    ),
    "live-ws-not-number": lambda t, c: _websocket(
        '{"type": "expression", "emotion": "sad", "ramp_s": "slow"}'
    ),
    "live-osc-no-name": lambda t, c: _osc(c, []),
    "live-osc-unknown-preset": lambda t, c: _osc(c, ["smug", 0.5]),
}


def documented_rows() -> list[tuple[str, str]]:
    """(case id, message) of the rows of docs/errors.md whose ids start with one of ``PREFIXES``."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "errors.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([a-z0-9-]+)` \|.*\| `([^`]+)` \|$", text, flags=re.MULTILINE)
    return [(case, message) for case, message in rows if case.startswith(PREFIXES)]


@pytest.mark.parametrize(("case", "message"), documented_rows())
def test_error_table_expression_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str, message: str
) -> None:
    assert message in CASES[case](tmp_path, caplog)


def test_error_table_lists_every_expression_case() -> None:
    assert sorted(case for case, _ in documented_rows()) == sorted(CASES)
