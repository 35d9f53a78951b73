"""Where the runtime's models come from: an ONNX export (onnxruntime) or a checkpoint (PyTorch).

The runtime imports no torch. This module is its one door to it: a ``.safetensors`` checkpoint (or an
in-memory ``nn.Module``) is run by ``models.torch_backend``, which is loaded by name here, only then, so
importing, animating and streaming with an ``.onnx`` file works where PyTorch is not installed; without
torch, a checkpoint gets an error saying what to install or which command to run. The architecture test
holds the runtime to this: no static import of torch, ``models`` or ``training`` anywhere under ``runtime/``.

Both backends give a *pose model*: numpy in, numpy out, with the attributes below (``PoseModel``).
"""

from __future__ import annotations

import importlib
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from audio2blendshape.runtime.onnx_backend import OnnxFrameModel, OnnxWindowModel, load_onnx_model

BACKENDS = ("torch", "onnx")
TORCH_BACKEND = "audio2blendshape.models.torch_backend"


class BackendError(ValueError):
    """A model that cannot be run with what is installed; the message says what to do."""


class PoseModel(Protocol):
    """What ``Animator`` runs. ``kind`` "frame": per-frame poses; "window": the seed's window -> one pose."""

    names: tuple[str, ...]  # the K output names
    num_shapes: int  # K
    kind: str  # "frame" or "window"
    source: str  # where it came from, for messages

    def __call__(self, mel: np.ndarray) -> np.ndarray:
        """frame: mel ``(B, T, 80)`` -> ``(B, T // stack, K)``; window: ``(B, 300, 80)`` -> ``(B, K)``."""
        ...


def torch_backend(what: str) -> ModuleType:
    """``models.torch_backend``, or a BackendError naming ``what`` needed it and what to do instead."""
    try:
        return importlib.import_module(TORCH_BACKEND)
    except ImportError as error:
        if error.name not in ("torch", "safetensors") and not str(error).startswith("No module named 'torch"):
            raise
        raise BackendError(
            f"{what}: running a .safetensors checkpoint needs PyTorch, which is not installed; "
            "without it, export the checkpoint once where PyTorch is installed "
            "(audio2blendshape export-onnx --checkpoint CKPT -o model.onnx) and pass the .onnx file"
        ) from error


def is_onnx(path: str | Path | None) -> bool:
    return path is not None and Path(path).suffix.lower() == ".onnx"


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: {' or '.join(BACKENDS)}")


def load_pose_model(
    path: str | Path | None = None, backend: str = "torch", device: str = "cpu", threads: int | None = None
) -> PoseModel:
    """Animator's model: an ``.onnx`` file, or a checkpoint (None: the bundled one) run by ``backend``.

    ``backend="onnx"`` with a checkpoint exports it to a temporary file first (needs torch).
    """
    _check_backend(backend)
    if is_onnx(path):
        model = OnnxFrameModel(str(path), threads)
        model.source = str(path)
        return model
    what = str(path) if path is not None else "the default checkpoint"
    torch_side = torch_backend(what)
    if backend == "torch":
        loaded: PoseModel = torch_side.load(path, device, threads)
        return loaded
    with tempfile.TemporaryDirectory() as folder:  # onnxruntime holds the model once loaded
        exported = OnnxFrameModel(torch_side.export_temporarily(path, folder, streaming=False), threads)
    exported.source = f"{path or 'default checkpoint'} (onnx)"
    return exported


def load_stream_model(path: str | Path | None = None, backend: str = "torch", threads: int | None = 1) -> Any:
    """The Streamer's model: torch from a checkpoint, or onnxruntime from an .onnx file (either variant) or a
    checkpoint exported on the fly to the window variant (a temporary file, dropped once loaded)."""
    _check_backend(backend)
    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be at least 1, got {threads}")
    if backend == "torch":
        if is_onnx(path):
            raise ValueError(f"{path}: an ONNX file needs --backend onnx")
        model = torch_backend(str(path or "the default checkpoint")).load(path, "cpu", threads)
        if model.kind != "frame":
            raise TypeError(f"streaming needs a FrameModel, got a {type(model.module).__name__} (kind=frame)")
        return model
    if is_onnx(path):
        return load_onnx_model(str(path), threads)
    torch_side = torch_backend(str(path or "the default checkpoint"))
    with tempfile.TemporaryDirectory() as folder:  # the window variant: only the new steps per push
        return OnnxWindowModel(torch_side.export_temporarily(path, folder, streaming=True), threads)


def wrap_module(module: Any, names: Sequence[str], device: str = "cpu") -> PoseModel:
    """An in-memory torch model (a training run's, a test's) as a pose model."""
    wrapped: PoseModel = torch_backend(f"an in-memory {type(module).__name__}").wrap(module, names, device)
    return wrapped
