"""ONNX: export (full and fixed-window), onnxruntime equals torch, the torch-free deployment path, the CLI."""

from __future__ import annotations

import argparse
import itertools
import json
import socket
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

import audio2blendshape.audio.mel as streaming_features
import audio2blendshape.cli.stream as stream_cli
import audio2blendshape.models.features as audio
from audio2blendshape.models.frame import FrameConfig, FrameModel
from audio2blendshape.models.onnx_export import (
    OPSET,
    OnnxExportError,
    WindowFrameModel,
    export_checkpoint,
    export_onnx,
)
from audio2blendshape.models.simplified import SimplifiedModel
from audio2blendshape.names import ARKIT_NAMES
from audio2blendshape.runtime.animator import Animator
from audio2blendshape.runtime.backends import BackendError, load_pose_model, load_stream_model
from audio2blendshape.runtime.onnx_backend import (
    OnnxFrameModel,
    OnnxModelError,
    OnnxWindowModel,
    load_onnx_model,
)
from audio2blendshape.runtime.streamer import Streamer
from audio2blendshape.training.checkpoint import save_checkpoint
from audio2blendshape.training.config import Config

for _module in ("onnx", "onnxruntime", "onnxscript"):  # the [onnx] extra and the exporter's needs
    pytest.importorskip(_module)

REPO = Path(__file__).resolve().parents[2]
TINY = FrameConfig(d_model=16, conv_layers=2, conv_kernel=3, d_attention=8, n_heads=2, window_left=3,
                   window_right=2, decoder_hidden=8, dropout=0.0)  # fmt: skip
TOLERANCE = 1e-4


def tiny_model() -> FrameModel:
    torch.manual_seed(0)
    return FrameModel(len(ARKIT_NAMES), TINY).eval()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    stream_cli.register(parser.add_subparsers(dest="command", required=True))
    return parser


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny checkpoint, its full export (through the CLI) and a window export with 3 new steps per call."""
    folder = tmp_path_factory.mktemp("onnx")
    config = replace(Config(), model=replace(Config().model, kind="frame"), frame=TINY)
    checkpoint = save_checkpoint(folder / "tiny.safetensors", tiny_model(), config, ARKIT_NAMES, 1)
    full = folder / "full.onnx"
    args = _parser().parse_args(["export-onnx", "--checkpoint", str(checkpoint), "-o", str(full)])
    assert args.func(args) == 0
    window = export_onnx(tiny_model(), ARKIT_NAMES, folder / "window.onnx", streaming=True, new_steps=3)
    return {"checkpoint": checkpoint, "full": full, "window": window}


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    hello, _ = soundfile.read(REPO / "examples" / "hello.wav", dtype="float32")
    return hello[4_000:40_123]


def test_full_export_is_self_describing_and_equals_torch(exports: dict[str, Path]) -> None:
    import onnx

    proto = onnx.load(str(exports["full"]))
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [OPSET]
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["names"]) == list(ARKIT_NAMES) and props["variant"] == "full"
    assert (props["steps_per_second"], props["context_steps"], props["lookahead_steps"]) == ("50.0", "7", "2")
    loaded = OnnxFrameModel(exports["full"], threads=1)
    shapes = [(v.name, v.shape) for v in (*loaded.session.get_inputs(), *loaded.session.get_outputs())]
    assert shapes == [("mel", ["batch", "frames", 80]), ("weights", ["batch", "steps", 52])]
    model = tiny_model()
    for batch, frames in ((1, 2), (3, 57), (2, 401)):
        mel = np.random.default_rng(frames).normal(size=(batch, frames, 80)).astype(np.float32)
        with torch.inference_mode():
            expected = model(torch.from_numpy(mel)).numpy()
        got = loaded(mel)
        assert got.shape == expected.shape == (batch, frames // 2, 52)
        assert np.abs(got - expected).max() <= TOLERANCE
    assert loaded(np.zeros((2, 1, 80), np.float32)).shape == (2, 0, 52)  # torch gives no steps either
    np.testing.assert_array_equal(loaded.step_times(4), model.step_times(4).numpy())
    with pytest.raises(OnnxModelError, match=r"expected mel \(B, T, 80\)"):
        loaded(np.zeros((10, 80), np.float32))


def test_window_model_equals_the_full_model_everywhere(exports: dict[str, Path]) -> None:
    model = tiny_model()
    mel = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 47, 80)).astype(np.float32))
    with torch.inference_mode():
        expected = model(mel)
        window = WindowFrameModel(model, 3)  # torch: steps 0..2 with the stream's start inside the window
        valid = torch.arange(window.window_steps) >= model.context_steps
        padded = torch.cat([torch.zeros(2, 2 * model.context_steps, 80), mel[:, : 2 * (3 + 2)]], 1)
        torch.testing.assert_close(window(padded, valid.expand(2, -1)), expected[:, :3], atol=1e-6, rtol=0)
    loaded = OnnxWindowModel(exports["window"])
    assert (loaded.window_steps, loaded.new_steps) == (model.context_steps + 3 + 2, 3)
    got = loaded(mel.numpy())  # slides the fixed window over start, middle and the end
    assert got.shape == expected.shape and np.abs(got - expected.numpy()).max() <= TOLERANCE
    with pytest.raises(OnnxModelError, match="expected 'full'"):
        OnnxFrameModel(exports["window"])
    with pytest.raises(OnnxModelError, match="expected 'window'"):
        OnnxWindowModel(exports["full"])


@pytest.mark.parametrize("variant", ["full", "window"])
def test_onnx_streamer_equals_torch_animate(
    exports: dict[str, Path], speech: np.ndarray, variant: str
) -> None:
    offline = Animator(tiny_model(), ARKIT_NAMES).animate(speech, fps=60, seed=2).weights
    model = load_onnx_model(exports[variant], threads=1)
    assert type(model) is (OnnxFrameModel if variant == "full" else OnnxWindowModel)
    streamer = Streamer(model, fps=60, seed=2)
    sizes = np.random.default_rng(4).integers(160, 1_600, size=len(speech) // 160)  # 10..100 ms
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    parts = [streamer.push(speech[a:b]) for a, b in itertools.pairwise(bounds)]
    streamed = np.concatenate([p.weights for p in [*parts, streamer.flush()]])
    assert streamed.shape == offline.shape and np.abs(streamed - offline).max() <= TOLERANCE


def test_numpy_log_mel_twin_equals_audio_py(speech: np.ndarray) -> None:
    np.testing.assert_array_equal(streaming_features.mel_filters(), audio.mel_filters().numpy())
    np.testing.assert_allclose(streaming_features.hann_window(), torch.hann_window(400).numpy(), atol=1e-6)
    quiet = np.concatenate([speech, np.zeros(1_000, np.float32), speech[:3_000] * 1e-4])
    expected = audio.log_mel_from_waveform(torch.from_numpy(quiet)).numpy()
    assert np.abs(streaming_features.log_mel(quiet) - expected).max() <= TOLERANCE
    with pytest.raises(ValueError, match="shorter than one 10 ms frame"):
        streaming_features.log_mel(np.zeros(100, np.float32))


def test_onnx_path_runs_without_torch(exports: dict[str, Path], speech: np.ndarray, tmp_path: Path) -> None:
    np.save(tmp_path / "speech.npy", speech)
    script = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any `import torch` now raises ImportError
        import numpy as np
        from audio2blendshape.runtime.onnx_backend import OnnxFrameModel
        from audio2blendshape.runtime.streamer import Streamer
        streamer = Streamer(OnnxFrameModel({str(exports["full"])!r}), sample_rate=16000, fps=60, seed=2)
        audio = np.load({str(tmp_path / "speech.npy")!r})
        frames = [streamer.push(audio[i : i + 320]) for i in range(0, len(audio), 320)] + [streamer.flush()]
        np.save({str(tmp_path / "out.npy")!r}, np.concatenate([f.weights for f in frames]))
        loaded = [m for m, module in sys.modules.items() if module is not None]
        assert not any(m == "torch" or m.startswith("torch.") for m in loaded), "torch was imported"
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    offline = Animator(tiny_model(), ARKIT_NAMES).animate(speech, fps=60, seed=2).weights
    assert np.abs(np.load(tmp_path / "out.npy") - offline).max() <= TOLERANCE


def test_bad_files_and_the_onnx_stream_backend(exports: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(OnnxModelError, match="no such ONNX file"):
        OnnxFrameModel(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(OnnxModelError, match="not a loadable ONNX model"):
        OnnxFrameModel(tmp_path / "junk.onnx")
    with pytest.raises(BackendError, match="runs with --backend onnx"):
        load_stream_model(str(exports["full"]), "torch")
    checkpoint = exports["checkpoint"]
    for load in (load_stream_model, load_pose_model):  # never an implicit export: the error names the command
        with pytest.raises(BackendError, match=f"export-onnx --checkpoint {checkpoint}"):
            load(checkpoint, "onnx")
    config = replace(Config(), model=replace(Config().model, kind="simplified"))
    torch.manual_seed(0)
    simplified = save_checkpoint(tmp_path / "s.safetensors", SimplifiedModel(52), config, ARKIT_NAMES, 1)
    with pytest.raises(OnnxExportError, match="only FrameModel checkpoints export"):
        export_checkpoint(simplified, tmp_path / "s.onnx")


def test_stream_command_with_the_onnx_backend(
    exports: dict[str, Path], speech: np.ndarray, tmp_path: Path
) -> None:
    clip = tmp_path / "clip.wav"
    soundfile.write(clip, speech[:8_000], 16_000)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(2.0)
    with receiver:
        port = receiver.getsockname()[1]
        command = ["stream", str(clip), "--backend", "onnx", "--livelink", f"127.0.0.1:{port}"]
        args = _parser().parse_args([*command, "--checkpoint", str(exports["window"]), "--no-idle"])
        assert args.func(args) == 0
        assert (
            len([receiver.recv(65_536) for _ in range(30)]) == 30
        )  # floor(0.5 s * 60 fps) Live Link packets


@pytest.mark.parametrize("threads", [None, 2])
def test_idle_inference_threads_do_not_spin(exports: dict[str, Path], threads: int | None) -> None:
    """Spinning threads took the core numpy's features need (bench_cli: 1.5x slower on 2 cores)."""
    options = OnnxFrameModel(exports["full"], threads=threads).session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.intra_op_num_threads == (threads or 0)
