"""The bundled model ships as ONNX beside its checkpoint: the files agree, and the CLI runs without torch.

The lean install (no ``train`` extra) is simulated by a subprocess in which importing any package of that
extra fails, as it would where it is not installed.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from audio2blendshape.audio.decode import load_audio
from audio2blendshape.cli.main import TRAIN_EXTRA
from audio2blendshape.runtime.animator import Animator
from audio2blendshape.runtime.backends import load_stream_model
from audio2blendshape.runtime.streamer import Streamer

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "examples" / "hello.wav"
STALE = 1e-5  # the bar: the shipped file is stale when outputs differ by more


@pytest.fixture(scope="module")
def hello() -> np.ndarray:
    return load_audio(HELLO)


def test_the_shipped_onnx_files_match_the_bundled_checkpoint(hello: np.ndarray) -> None:
    torch_poses = Animator.load(backend="torch").poses(hello)[1]
    onnx_poses = Animator.load().poses(hello)[1]
    assert torch_poses.shape == onnx_poses.shape == (len(hello) // 320, 52)
    assert np.abs(torch_poses - onnx_poses).max() <= STALE, "rebuild: audio2blendshape export-onnx --bundled"
    # The low-latency member: its streaming export, pushed 20 ms at a time, against its checkpoint offline.
    streamed = Streamer(load_stream_model(), idle=False)
    parts = [streamed.push(hello[i : i + 320]) for i in range(0, len(hello), 320)] + [streamed.flush()]
    offline = Animator(load_stream_model(backend="torch")).animate(hello, idle=False).weights
    assert np.abs(np.concatenate([p.weights for p in parts]) - offline).max() <= STALE


def test_the_low_latency_member_needs_no_look_ahead_and_the_offline_one_looks_further() -> None:
    streamer = Streamer(load_stream_model())
    assert streamer.model.lookahead_steps == 0
    assert Animator.load().model.lookahead_steps == 6  # type: ignore[attr-defined]  # the offline member: 120 ms
    for rate in (16_000, 44_100, 48_000):  # the bar: 60 ms stated, 10 ms chunks, before compute
        assert Streamer(load_stream_model(), sample_rate=rate).latency(0.01).total_s <= 0.060


def test_streamer_load_gives_the_bundled_low_latency_model_with_the_options_passed(hello: np.ndarray) -> None:
    loaded = Streamer.load(sample_rate=16_000, fps=30, idle=False)
    assert loaded.fps == 30 and loaded.model.lookahead_steps == 0 and not loaded.idle
    by_hand = Streamer(load_stream_model(), fps=30, idle=False)
    chunks = [hello[i : i + 160] for i in range(0, 16_000, 160)]
    pushed = [(loaded.push(chunk), by_hand.push(chunk)) for chunk in chunks]
    assert sum(len(a) for a, _ in pushed) > 0
    for a, b in pushed:
        assert np.array_equal(a.weights, b.weights)


BLOCKED = """
import importlib.abc, runpy, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in TRAIN_EXTRA:
            raise ImportError(f"No module named {name!r} (blocked by the test)", name=name)
sys.meta_path.insert(0, NoTorch())
sys.argv = ["audio2blendshape", *ARGS]
try:
    runpy.run_module("audio2blendshape", run_name="__main__")
finally:
    assert "torch" not in sys.modules, "torch was imported"
"""


def _cli_without_torch(*args: str) -> subprocess.CompletedProcess[str]:
    script = f"ARGS = {list(args)!r}\nTRAIN_EXTRA = {sorted(TRAIN_EXTRA)!r}\n" + textwrap.dedent(BLOCKED)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)


def test_animate_and_stream_the_bundled_clip_without_torch(tmp_path: Path) -> None:
    result = _cli_without_torch("animate", str(HELLO), "-o", str(tmp_path / "hello.csv"))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no library chatter on the terminal
    header, *rows = (tmp_path / "hello.csv").read_text().splitlines()
    assert header.startswith("Timecode,BlendshapeCount,EyeBlinkLeft") and len(rows) == 291
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(10)
        port = receiver.getsockname()[1]
        result = _cli_without_torch("stream", str(HELLO), "--livelink", f"127.0.0.1:{port}")
        assert result.returncode == 0, result.stderr
        assert "streamed 4.85 s of audio: 291 frames" in result.stdout
        assert len(receiver.recv(4096)) > 52 * 4  # a Live Link Face datagram arrived


def test_a_checkpoint_without_torch_names_the_command_to_run(tmp_path: Path) -> None:
    checkpoint = REPO / "src" / "audio2blendshape" / "assets" / "default.safetensors"
    result = _cli_without_torch(
        "animate", str(HELLO), "--checkpoint", str(checkpoint), "-o", str(tmp_path / "x.csv")
    )
    assert result.returncode == 2
    assert "needs PyTorch" in result.stderr and "export-onnx --checkpoint" in result.stderr
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize(
    "command",
    [["data", "synth", "--hours", "0.001", "--out"], ["export-onnx", "-o"], ["grads", "--plot"], ["train"]],
)
def test_training_commands_without_torch_say_which_extra_to_install(
    command: list[str], tmp_path: Path
) -> None:
    result = _cli_without_torch(*command, *([str(tmp_path / "out")] if command[-1].startswith("-") else []))
    assert result.returncode == 2, result.stderr
    assert "pip install 'audio2blendshape[train]'" in result.stderr and "Traceback" not in result.stderr
