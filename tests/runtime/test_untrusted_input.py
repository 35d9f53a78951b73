"""Untrusted input: the readers users feed, fuzzed with hypothesis (audio: tests/audio), and docs/errors.md.

Each reader's documented error is its only way out, nothing hangs, and nothing half-written is left where
outputs go. ``test_error_table`` builds every bad input the table lists and checks the message it gets.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import socket
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from conftest import deadline
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save_file
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

import audio2blendshape.cli.animate as animate_cli
from audio2blendshape.live.websocket import WebSocketServer
from audio2blendshape.models.checkpoint import CheckpointError, load_model
from audio2blendshape.names import ARKIT_NAMES
from audio2blendshape.runtime.livelink_csv import LiveLinkCsvError, read_livelink_csv
from audio2blendshape.runtime.row_format import timecode
from audio2blendshape.runtime.writers import LIVE_LINK_HEADER, WriterError, read_json_animation
from audio2blendshape.training.checkpoint import build_model, load_checkpoint, save_checkpoint
from audio2blendshape.training.config import load_config
from audio2blendshape.typed_config import ConfigError

REPO = Path(__file__).resolve().parents[2]
TINY = ["model.kind=frame", "frame.d_model=16", "frame.conv_layers=1", "frame.conv_kernel=3",
        "frame.n_heads=1", "frame.d_attention=8", "frame.window_left=2",
        "frame.decoder_hidden=4"]  # fmt: skip
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
COUNTS: Counter[str] = Counter()  # examples run per reader
ints = st.integers


def _only(error: type[Exception], read: Callable[[], object], name: str) -> object | None:
    """What ``read()`` returns, or None when it raised ``error`` naming ``name``; anything else fails."""
    with deadline(10):
        try:
            return read()
        except error as caught:
            assert name in str(caught)
            return None


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    config = load_config(None, TINY)
    path = tmp_path_factory.mktemp("tiny") / "tiny.safetensors"
    return save_checkpoint(path, build_model(config, len(ARKIT_NAMES)), config, ARKIT_NAMES, 1)


# --- Live Link CSV ---

ROWS = [LIVE_LINK_HEADER.split(",")] + [[timecode(i, 60), "61", *["0.5"] * 61] for i in range(5)]
STAMPS = st.builds("{}:{:02d}:{:02d}:{}".format, ints(0, 10**6), ints(0, 59), ints(0, 59), ints(0, 10**6))
CELLS = st.one_of(st.text(max_size=12), st.floats().map(str), STAMPS, st.sampled_from(
    ["nan", "-inf", "1e309", "-1", "2", "00:00:01:99", "99999:59:59:99999.9", "0:0:0:0.", "1" * 40]),
)  # fmt: skip
EDITS = st.lists(st.tuples(ints(0, 5), ints(0, 62) | st.just(0), CELLS), max_size=5)  # column 0: timecodes
STEPS = st.none() | st.lists(ints(1, 10**9), min_size=5, max_size=5)  # frames between rows: any gap
RATES = st.none() | st.floats(-1, 1e6)


@FUZZ
@given(edits=EDITS, steps=STEPS, cut=ints(0, 4000), fps=RATES, junk=st.binary(max_size=99))
def test_livelink_csv(tmp_path: Path, edits: list[tuple[int, int, str]], steps: list[int] | None, cut: int,
                      fps: float | None, junk: bytes) -> None:  # fmt: skip
    grid = [list(row) for row in ROWS]
    for row, frame in enumerate(np.cumsum(steps or []), start=1):
        grid[row][0] = timecode(int(frame), 60)
    for row, column, value in edits:
        grid[row][column] = value
    text = "\n".join(",".join(row) for row in grid).encode("utf-8", "surrogatepass")
    path = tmp_path / "take.csv"
    path.write_bytes(text[: cut or None] + junk if cut % 3 else text)
    take = _only(LiveLinkCsvError, lambda: read_livelink_csv(path, fps), "take.csv")
    if take is not None:
        assert take.curves.shape[1] == 52 and take.curves.min() >= 0.0 and take.curves.max() <= 1.0
        assert take.curves.shape[0] <= 5 * 2 * 1000  # rows x MAX_GAP_S x MAX_FPS: bounded by the input
    COUNTS["Live Link CSV"] += 1


# --- TOML configs and --set overrides ---
KEYS = ["train.lr", "train.max_steps", "model.kind", "frame.stack", "frame.n_heads", "frame.d_attention",
        "simplified.d_model", "simplified.n_heads", "data.window_frames", "data.feature_warp", "loss.mse",
        "frame.dropout", "train.grad_clip", "train", "x.y", "train.lr.x", ""]  # fmt: skip
VALUES = st.one_of(ints(-(2**70), 2**70).map(str), st.floats().map(repr), st.text(max_size=8).map(json.dumps),
                   st.sampled_from(["true", "inf", "nan", "[1, 2]", "{a = 1}", "'x'", "1979-05-27",
                                    "[" * 2000, "1" * 5000]))  # fmt: skip


@FUZZ
@given(
    pairs=st.lists(st.tuples(st.sampled_from(KEYS), VALUES), max_size=4),
    tail=st.binary(max_size=100),
    base=st.none() | VALUES | st.sampled_from(['"run.toml"', '"."', '"../run.toml"', '"other.toml"']),
)
def test_toml_config_and_overrides(
    tmp_path: Path, pairs: list[tuple[str, str]], tail: bytes, base: str | None
) -> None:
    path = tmp_path / "run.toml"
    (tmp_path / "other.toml").write_text('base = "run.toml"\n[train]\nlr = 0.5\n')
    lines = [] if base is None else [f"base = {base}"]
    lines += [f"[{key.split('.')[0]}]\n{key.split('.', 1)[-1] or 'k'} = {value}" for key, value in pairs]
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass") + b"\n" + tail)
    _only(ConfigError, lambda: load_config(path), "run.toml")
    _only(ConfigError, lambda: load_config(None, [f"{key}={value}" for key, value in pairs]), "")
    COUNTS["TOML config + --set"] += 1


# --- checkpoints: random bytes, damaged files, valid files with damaged JSON metadata ---

JSON = st.recursive(
    st.none() | st.booleans() | st.floats() | ints(-(2**70), 2**70) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
CONFIG_FIELDS = [("model", "kind"), ("frame", "d_model"), ("frame", "n_heads"), ("frame", "stack"),
                 ("frame", "conv_kernel"), ("frame", "window_left"), ("frame", "unknown"),
                 ("simplified", "d_model"), ("train", "lr")]  # fmt: skip


def _stored(tiny: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    with safe_open(str(tiny), "pt") as handle:
        return handle.metadata(), {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 (no dict)


def _load_both(path: Path) -> None:
    for load in (load_model, load_checkpoint):
        _only(CheckpointError, lambda: load(path), path.name)  # noqa: B023 (called at once)


@FUZZ
@given(raw=st.binary(max_size=600), edits=st.lists(st.tuples(ints(0, 600), ints(0, 255)), max_size=6),
       cut=st.floats(0, 1), start_from_real=st.booleans())  # fmt: skip
def test_checkpoint_bytes(tiny: Path, tmp_path: Path, raw: bytes, edits: list[tuple[int, int]], cut: float,
                          start_from_real: bool) -> None:  # fmt: skip
    data = bytearray(tiny.read_bytes() if start_from_real else raw)
    for offset, value in edits:  # a real file's first 600 bytes are its JSON header
        if offset < len(data):
            data[offset] = value
    path = tmp_path / "x.safetensors"
    path.write_bytes(bytes(data[: round(cut * len(data))] if start_from_real else data))
    _load_both(path)
    COUNTS["checkpoint bytes"] += 1


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")  # sizes of 0 in a fuzzed config
@FUZZ
@given(key=st.sampled_from(["config", "names", "step", "extra", "format", "optimizer_groups"]),
       text=st.one_of(JSON.map(json.dumps), st.text(max_size=20), st.just("[" * 5000)),
       field=st.sampled_from(CONFIG_FIELDS), value=st.one_of(JSON, st.sampled_from([0, -1, 10**7, "frame"])),
       in_config=st.booleans())  # fmt: skip
def test_checkpoint_metadata(tiny: Path, tmp_path: Path, key: str, text: str, field: tuple[str, str],
                             value: object, in_config: bool) -> None:  # fmt: skip
    metadata, tensors = _stored(tiny)
    if in_config:
        config = json.loads(metadata["config"])
        config[field[0]][field[1]] = value
        metadata["config"] = json.dumps(config)
    else:
        metadata[key] = text
    path = tmp_path / "x.safetensors"
    save_file(tensors, str(path), metadata=metadata)
    _load_both(path)
    COUNTS["checkpoint metadata"] += 1


# --- JSON animations ---
ODD = st.sampled_from([0, False, -1.5, float("nan"), float("inf"), [[1e39, 0]], [[[0.5, 0.5]]], [["0.5", 0]]])


CHANGES = st.dictionaries(st.sampled_from(["names", "fps", "duration", "frames"]), JSON | ODD)


@FUZZ
@given(document=JSON, changes=CHANGES)
def test_json_animation(tmp_path: Path, document: object, changes: dict[str, object]) -> None:
    path = tmp_path / "a.json"
    valid = {"names": ["a", "b"], "fps": 30, "duration": 0.1, "frames": [[0.1, 0.2], [0.3, 0.4]]}
    for candidate in (document, {**valid, **changes}):
        path.write_text(json.dumps(candidate))
        animation = _only(WriterError, lambda: read_json_animation(path), "a.json")
        if animation is not None:
            assert np.isfinite(animation.weights).all()  # type: ignore[attr-defined]
    COUNTS["JSON animation"] += 1


# --- WebSocket clients: whatever they send, the server keeps serving everyone ---


@pytest.fixture(scope="module")
def server() -> Iterator[WebSocketServer]:
    with WebSocketServer("127.0.0.1:0") as running:
        yield running


def _still_serves(server: WebSocketServer) -> None:
    with connect(f"ws://127.0.0.1:{server.port}", proxy=None, open_timeout=5) as client:
        until = time.monotonic() + 5
        while server.client_count < 1 and time.monotonic() < until:
            time.sleep(0.002)
        server.send(0.0, np.zeros(2, np.float32), ("a", "b"))
        assert json.loads(client.recv(timeout=5))["values"] == [0.0, 0.0]


MESSAGES = st.one_of(st.text(max_size=100), st.binary(max_size=100), ints(0, 200_000).map(lambda n: b"x" * n))


@settings(max_examples=60, deadline=None)
@given(sent=st.lists(MESSAGES, max_size=4), raw=st.one_of(st.none(), st.binary(max_size=300)))
def test_websocket_clients(server: WebSocketServer, sent: list[str | bytes], raw: bytes | None) -> None:
    if raw is not None:  # not WebSocket at all: a port scanner, a stray HTTP client
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)
            with contextlib.suppress(OSError):
                sock.recv(1024)
    else:
        with contextlib.suppress(ConnectionClosed), connect(f"ws://127.0.0.1:{server.port}") as client:
            for message in sent:
                client.send(message)
    _still_serves(server)
    COUNTS["WebSocket client messages"] += 1


# --- animate: failed inputs leave nothing behind, successful ones leave complete files ---

SPEECH = REPO / "examples" / "hello.wav"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(ints(0, 100), ints(0, 255)), max_size=4), cut=st.floats(0, 0.3),
       suffix=st.sampled_from([".wav", ".mp3", ".flac"]),
       fmt=st.sampled_from(["csv", "json", "npy"]))  # fmt: skip
def test_animate_leaves_no_half_written_output(tiny: Path, tmp_path: Path, edits: list[tuple[int, int]],
                                               cut: float, suffix: str, fmt: str) -> None:  # fmt: skip
    data = bytearray(SPEECH.read_bytes()[: max(1, round(cut * SPEECH.stat().st_size))])
    for offset, value in edits:
        data[offset % len(data)] = value
    run = Path(tempfile.mkdtemp(dir=tmp_path))  # tmp_path is shared by the examples
    inputs, out = run / "in", run / "out"
    inputs.mkdir()
    (inputs / f"bad{suffix}").write_bytes(bytes(data))
    soundfile.write(inputs / "good.wav", np.sin(np.arange(8000) / 9).astype(np.float32) * 0.3, 16_000)
    parser = argparse.ArgumentParser()
    animate_cli.register(parser.add_subparsers(dest="command", required=True))
    argv = ["animate", str(inputs), "-o", str(out), "--format", fmt, "--checkpoint", str(tiny)]
    args = parser.parse_args(argv)
    with deadline(30), contextlib.redirect_stdout(None), contextlib.redirect_stderr(None):
        status = args.func(args)
    written = sorted(p.name for p in out.iterdir())
    assert written in ([f"bad.{fmt}", f"good.{fmt}"], [f"good.{fmt}"])  # a failed input leaves nothing
    assert status == (0 if len(written) == 2 else 2)
    for name in written:
        if fmt == "npy":
            assert np.load(out / name).shape[1] == 52
        elif fmt == "json":
            read_json_animation(out / name)
        else:
            read_livelink_csv(out / name, fps=60.0)  # one frame (a few ms of audio) carries no rate
    COUNTS["animate output folder"] += 1


# --- docs/errors.md: every bad input of its table, built here, gets the message the table shows ---


def _raises(error: type[Exception], read: Callable[[], object]) -> str:
    with pytest.raises(error) as caught:
        read()
    return str(caught.value)


def _file(tmp: Path, name: str, content: bytes | str) -> Path:
    (tmp / name).write_bytes(content.encode() if isinstance(content, str) else content)
    return tmp / name


def _take(stamps: tuple[str, ...] = ("00:00:00:00.000", "00:00:00:01.000"), value: str = "0.5",
          header: str = LIVE_LINK_HEADER, cells: int = 61) -> str:  # fmt: skip
    rows = [f"{stamp},61,{','.join([value] + ['0.5'] * (cells - 1))}" for stamp in stamps]
    return "\n".join([header, *rows])


def _csv(tmp: Path, text: str | bytes) -> str:
    return _raises(LiveLinkCsvError, lambda: read_livelink_csv(_file(tmp, "take.csv", text)))


def _toml(tmp: Path, text: str | bytes) -> str:
    return _raises(ConfigError, lambda: load_config(_file(tmp, "run.toml", text)))


def _checkpoint(tmp: Path, tiny: Path, raw: str = "", **changes: str) -> str:
    metadata, tensors = _stored(tiny)
    save_file(tensors, str(tmp / "x.safetensors"), metadata={**metadata, **changes})
    if raw:
        _file(tmp, "x.safetensors", raw)
    return _raises(CheckpointError, lambda: load_model(tmp / "x.safetensors"))


def _animation(tmp: Path, document: object) -> str:
    text = document if isinstance(document, str) else json.dumps(document)
    return _raises(WriterError, lambda: read_json_animation(_file(tmp, "a.json", text)))


def _big_message(tmp: Path, tiny: Path) -> str:
    with WebSocketServer("127.0.0.1:0") as server, connect(f"ws://127.0.0.1:{server.port}") as client:
        client.send(b"x" * 100_000)
        return _raises(ConnectionClosed, lambda: client.recv(timeout=5))


ANIMATION = {"names": ["a", "b"], "fps": 30, "frames": [[0.1, 0.2]]}
WIDE = (": 16,", ": 9999999,")  # the tiny model's frame.d_model, made huge
CASES: dict[str, Callable[[Path, Path], str]] = {
    "csv-empty": lambda t, c: _csv(t, ""),
    "csv-not-utf8": lambda t, c: _csv(t, b"\xff\xfe\x00T"),
    "csv-no-timecode": lambda t, c: _csv(t, _take(header=LIVE_LINK_HEADER.replace("Timecode", "Time"))),
    "csv-misspelt": lambda t, c: _csv(t, _take(header=LIVE_LINK_HEADER.replace("JawOpen", "JawOpn"))),
    "csv-twice": lambda t, c: _csv(t, _take(header=LIVE_LINK_HEADER.replace("JawLeft", "JawOpen"))),
    "csv-short-row": lambda t, c: _csv(t, _take(cells=3)),
    "csv-not-number": lambda t, c: _csv(t, _take(value="abc")),
    "csv-nan": lambda t, c: _csv(t, _take(value="nan")),
    "csv-range": lambda t, c: _csv(t, _take(value="1.5")),
    "csv-timecode": lambda t, c: _csv(t, _take(("00:00:00:00.000", "1:2:3"))),
    "csv-backwards": lambda t, c: _csv(t, _take(("00:00:00:05.000", "00:00:00:01.000"))),
    "csv-gap": lambda t, c: _csv(t, _take(("00:00:00:00.000", "02:00:00:00.000"))),
    "csv-frame-rate": lambda t, c: _csv(t, _take(("00:00:00:00.000", "00:00:00:99999.000"))),
    "toml-syntax": lambda t, c: _toml(t, "[train\n"),
    "toml-not-utf8": lambda t, c: _toml(t, b"\xff\xfe[train]\n"),
    "toml-unknown-key": lambda t, c: _toml(t, "[train]\nlearning_rate = 0.1\n"),
    "toml-type": lambda t, c: _toml(t, '[train]\nmax_steps = "many"\n'),
    "toml-heads-zero": lambda t, c: _toml(t, "[frame]\nn_heads = 0\n"),
    "toml-nesting": lambda t, c: _toml(t, "[train]\nlr = " + "[" * 5000 + "\n"),
    "toml-base-missing": lambda t, c: _toml(t, 'base = "stage7.toml"\n[train]\nlr = 1e-4\n'),
    "toml-base-cycle": lambda t, c: _toml(t, 'base = "run.toml"\n'),
    "set-no-equals": lambda t, c: _raises(ConfigError, lambda: load_config(None, ["train.lr"])),
    "set-nan": lambda t, c: _raises(ConfigError, lambda: load_config(None, ["train.lr=nan"])),
    "set-not-a-table": lambda t, c: _raises(ConfigError, lambda: load_config(None, ["train=3"])),
    "checkpoint-random": lambda t, c: _checkpoint(t, c, raw="{"),
    "checkpoint-foreign": lambda t, c: _checkpoint(t, c, format="other"),
    "checkpoint-config-null": lambda t, c: _checkpoint(t, c, config="null"),
    "checkpoint-names": lambda t, c: _checkpoint(t, c, names='"abc"'),
    "checkpoint-step": lambda t, c: _checkpoint(t, c, step="many"),
    "checkpoint-wide": lambda t, c: _checkpoint(t, c, config=_stored(c)[0]["config"].replace(*WIDE)),
    "json-not-json": lambda t, c: _animation(t, "{names"),
    "json-no-names": lambda t, c: _animation(t, {"fps": 30, "frames": []}),
    "json-fps": lambda t, c: _animation(t, {**ANIMATION, "fps": 0}),
    "json-ragged": lambda t, c: _animation(t, {**ANIMATION, "frames": [[0.1, 0.2], [0.3]]}),
    "json-text": lambda t, c: _animation(t, {**ANIMATION, "frames": [["0.1", "0.2"]]}),
    "json-overflow": lambda t, c: _animation(t, {**ANIMATION, "frames": [[0.1, 1e39]]}),
    "websocket-big-message": _big_message,
}


def documented_rows() -> list[tuple[str, str]]:
    """(case id, message) of each row of docs/errors.md's table: ``| `id` | input | reader | `message` |``."""
    text = (REPO / "docs" / "errors.md").read_text(encoding="utf-8")
    return re.findall(r"^\| `([a-z0-9-]+)` \|.*\| `([^`]+)` \|$", text, flags=re.MULTILINE)


@pytest.mark.parametrize(("case", "message"), [row for row in documented_rows() if row[0] in CASES])
def test_error_table(tiny: Path, tmp_path: Path, case: str, message: str) -> None:
    assert message in CASES[case](tmp_path, tiny)


def test_error_table_lists_every_case() -> None:
    documented = [case for case, _ in documented_rows()]
    # audio-* rows are checked by tests/audio/test_audio.py, beside the audio fuzzing, and the expression,
    # head and live-command rows by tests/expression/test_error_rows.py (its PREFIXES)
    elsewhere = ("audio-", "preset-", "track-", "emotion-", "articulation-", "expressiveness-", "rig-",
                 "head-", "live-")  # fmt: skip
    assert sorted(c for c in documented if not c.startswith(elsewhere)) == sorted(CASES)
    assert len(documented) >= 30


def test_every_reader_was_fuzzed() -> None:
    print(f"\nfuzzing examples per reader: {COUNTS}")
    assert not COUNTS or min(COUNTS.values()) >= 20
