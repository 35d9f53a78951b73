"""Inference with onnxruntime, without torch: the default path (the base ``pip install audio2blendshape``).

Two kinds of file come from ``onnx_export.py``, told apart by the ``variant`` metadata:

* ``full``: ``mel`` float32 ``(B, T, 80)`` -> ``weights`` float32 ``(B, T // stack, K)``, dynamic B and T;
  equal to ``FrameModel.forward``. ``OnnxFrameModel`` runs it for ``Animator`` (``--backend onnx``) and
  for the ``Streamer``, which cuts its windows itself.
* ``window``: a fixed window of ``W = context + n + lookahead`` steps, inputs ``mel_window`` ``(B,
  stack W, 80)`` and ``valid`` bool ``(B, W)`` (False where the window reaches before the stream's start or
  past its end; those mel rows are ignored), output ``weights`` ``(B, n, K)`` for window steps ``[context,
  context + n)``. For engines that want static shapes; the caller keeps the mel buffer. ``OnnxWindowModel``.

Metadata (``metadata_props``): format, variant, names (JSON), steps_per_second, stack, context_steps,
lookahead_steps, n_mels, sample_rate, hop_length, n_fft, opset, and for ``window`` window_steps, new_steps.
This module imports no torch (tests check it with torch blocked).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from audio2blendshape.audio.mel import log_mel_frames

FORMAT = "audio2blendshape/onnx-1"
VARIANTS = ("full", "window")


class OnnxModelError(ValueError):
    """An ONNX file that cannot be used here; the message names the file."""


def _session(path: Path, threads: int | None) -> Any:
    try:
        import onnxruntime
    except ImportError as error:  # a base dependency, but a broken or partial install can lack it
        raise OnnxModelError(
            f"{path}: the ONNX backend needs onnxruntime, a base dependency (pip install onnxruntime)"
        ) from error
    if not path.is_file():
        raise OnnxModelError(f"{path}: no such ONNX file")
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: constant-folding notes are not the user's business
    # Idle intra-op threads spin by default, taking the core that numpy's features and the writers need
    # between calls: on 2 cores, 100 short clips took 1.28 s with spinning and 0.82 s without (in process).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types for damaged files
        raise OnnxModelError(f"{path}: not a loadable ONNX model ({error})") from error


def read_metadata(session: Any, path: Path, variant: str) -> dict[str, str]:
    """The audio2blendshape metadata of a loaded model, checked to be ``variant``."""
    meta = dict(session.get_modelmeta().custom_metadata_map)
    if meta.get("format") != FORMAT:
        raise OnnxModelError(f"{path}: not an audio2blendshape ONNX export (format {meta.get('format')!r})")
    if meta.get("variant") != variant:
        raise OnnxModelError(
            f"{path}: a {meta.get('variant')!r} export, expected {variant!r} "
            f"({'export without' if variant == 'full' else 'export with'} --streaming)"
        )
    return meta


class OnnxFrameModel:
    """A ``full`` export: ``model(mel (B, T, 80)) -> (B, T // stack, K)`` with numpy arrays.

    Has the Streamer's model interface (names, stack, context_steps, lookahead_steps, log_mel_frames).
    ``threads``: onnxruntime intra-op threads (None: its default, all cores).
    """

    variant = "full"
    kind = "frame"  # runtime.backends.PoseModel: per-frame poses

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        self.session = _session(self.path, threads)
        meta = read_metadata(self.session, self.path, self.variant)
        try:
            self.names: tuple[str, ...] = tuple(json.loads(meta["names"]))
            self.stack = int(meta["stack"])
            self.context_steps = int(meta["context_steps"])
            self.lookahead_steps = int(meta["lookahead_steps"])
            self.steps_per_second = float(meta["steps_per_second"])
            self.n_mels = int(meta["n_mels"])
        except (KeyError, ValueError) as error:
            raise OnnxModelError(f"{self.path}: damaged metadata ({error!r})") from error
        self.metadata = meta
        self.num_shapes = len(self.names)
        self.source = str(self.path)  # for messages; load_pose_model may say more

    def step_times(self, steps: int) -> np.ndarray:
        """Time stamps in seconds of ``steps`` output steps: float64 ``(steps,)``, as FrameModel's."""
        fps = self.steps_per_second * self.stack  # mel frames per second
        return (np.arange(steps, dtype=np.float64) * self.stack + (self.stack - 1) / 2) / fps

    def _check(self, mel: np.ndarray) -> np.ndarray:
        mel = np.ascontiguousarray(mel, dtype=np.float32)
        if mel.ndim != 3 or mel.shape[2] != self.n_mels:
            raise OnnxModelError(f"{self.path}: expected mel (B, T, {self.n_mels}), got {mel.shape}")
        return mel

    def __call__(self, mel: np.ndarray) -> np.ndarray:
        mel = self._check(mel)
        batch, frames, _ = mel.shape
        if frames // self.stack == 0:  # onnxruntime rejects empty convolutions; torch returns no steps
            return np.zeros((batch, 0, len(self.names)), dtype=np.float32)
        (weights,) = self.session.run(["weights"], {"mel": mel})
        return np.asarray(weights, dtype=np.float32)

    def steps(self, mel: np.ndarray, start: int, count: int) -> np.ndarray:
        """The Streamer's call: steps ``[start, start + count)`` of window mel ``(stack W, 80)`` ->
        ``(count, K)``. The full graph computes every step of the window; the window variant only those."""
        return self(np.asarray(mel)[None])[0, start : start + count]

    @staticmethod
    def log_mel_frames(block: np.ndarray) -> np.ndarray:
        """numpy features (within 1e-4 of torch's): see ``streaming_features.log_mel_frames``."""
        return log_mel_frames(block)


class OnnxWindowModel(OnnxFrameModel):
    """A ``window`` export. ``step(mel_window, valid)`` is one call of the graph; ``__call__(mel)`` slides
    it over a whole sequence (every group of ``new_steps`` steps in one batch), equal to the full model."""

    variant = "window"

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        super().__init__(path, threads)
        try:
            self.window_steps = int(self.metadata["window_steps"])
            self.new_steps = int(self.metadata["new_steps"])
        except (KeyError, ValueError) as error:
            raise OnnxModelError(f"{self.path}: damaged metadata ({error!r})") from error

    def step(self, mel_window: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """``mel_window`` ``(B, stack W, 80)``, ``valid`` bool ``(B, W)`` -> weights ``(B, new_steps, K)``."""
        mel_window = self._check(mel_window)
        valid = np.ascontiguousarray(valid, dtype=bool)
        expected = (mel_window.shape[0], self.window_steps)
        if mel_window.shape[1] != self.stack * self.window_steps or valid.shape != expected:
            raise OnnxModelError(
                f"{self.path}: expected mel_window (B, {self.stack * self.window_steps}, {self.n_mels}) and "
                f"valid {expected}, got {mel_window.shape} and {valid.shape}"
            )
        (weights,) = self.session.run(["weights"], {"mel_window": mel_window, "valid": valid})
        return np.asarray(weights, dtype=np.float32)

    def steps(self, mel: np.ndarray, start: int, count: int) -> np.ndarray:
        mel = self._check(np.asarray(mel)[None])[0]
        total, n, stack = mel.shape[0] // self.stack, self.new_steps, self.stack
        if count <= 0:
            return np.zeros((0, len(self.names)), dtype=np.float32)
        # One window per group of n wanted steps, all groups in one batch; steps outside [0, total) invalid.
        first = np.arange(start, start + count, n) - self.context_steps  # first window step of each group
        window = first[:, None] + np.arange(self.window_steps)[None, :]  # (G, W)
        valid = (window >= 0) & (window < total)
        stepped = mel[: total * stack].reshape(total, stack * mel.shape[1])
        gathered = np.where(valid[:, :, None], stepped[np.clip(window, 0, total - 1)], np.float32(0.0))
        windows = gathered.reshape(len(first), self.window_steps * stack, mel.shape[1])
        return self.step(windows, valid).reshape(len(first) * n, -1)[:count]

    def __call__(self, mel: np.ndarray) -> np.ndarray:
        mel = self._check(mel)
        steps = mel.shape[1] // self.stack
        if steps == 0:
            return np.zeros((mel.shape[0], 0, len(self.names)), dtype=np.float32)
        return np.stack([self.steps(one, 0, steps) for one in mel])


def load_onnx_model(path: str | Path, threads: int | None = None) -> OnnxFrameModel:
    """An export of either variant, as its class (told by the ``variant`` metadata)."""
    model: OnnxFrameModel
    try:
        model = OnnxFrameModel(path, threads)
    except OnnxModelError as error:
        if "'window' export" not in str(error):
            raise
        model = OnnxWindowModel(path, threads)
    return model
