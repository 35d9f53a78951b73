"""Where the runtime's models come from: an ONNX export (onnxruntime) or a checkpoint (PyTorch).

The runtime imports no torch. This module is its one door to it: a ``.safetensors`` checkpoint (or an
in-memory ``nn.Module``) is run by ``models.torch_backend``, which is loaded by name here, only then, so
importing, animating and streaming with an ``.onnx`` file works where PyTorch is not installed; without
torch, a checkpoint gets an error saying what to install or which command to run. The architecture test
holds the runtime to this: no static import of torch, ``models`` or ``training`` anywhere under ``runtime/``.

Both backends give a *pose model*: numpy in, numpy out, with the attributes below (``PoseModel``).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.resources
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from audio2blendshape.runtime.onnx_backend import OnnxFrameModel, OnnxWindowModel, load_onnx_model

BACKENDS = ("auto", "onnx", "torch")
BUNDLED_CHECKPOINT = "default.safetensors"  # the bundled offline model, in the package's assets/
BUNDLED_ONNX = "default.onnx"  # its export, full variant: Animator
# The bundled low-latency model (no look-ahead past the STFT window) and its window-variant export: Streamer.
BUNDLED_STREAM_CHECKPOINT = "default.stream.safetensors"
BUNDLED_STREAM_ONNX = "default.stream.onnx"
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


@contextlib.contextmanager
def bundled_file(name: str) -> Iterator[Path]:
    """A file of the package's ``assets/`` as a path (extracted for the block if the package is zipped)."""
    resource = importlib.resources.files("audio2blendshape").joinpath("assets", name)
    with importlib.resources.as_file(resource) as file:
        yield file


def resolve_backend(path: str | Path | None, backend: str) -> str:
    """``auto``: onnxruntime for the bundled model and ``.onnx`` files, torch for ``.safetensors``.

    Nothing is ever exported implicitly: ``onnx`` with a checkpoint, or ``torch`` with an ``.onnx`` file, is
    an error that says which command to run.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: {', '.join(BACKENDS)}")
    chosen = backend if backend != "auto" else ("onnx" if path is None or is_onnx(path) else "torch")
    if chosen == "onnx" and path is not None and not is_onnx(path):
        raise BackendError(
            f"{path}: the onnx backend runs .onnx files; export this checkpoint once with "
            f"'audio2blendshape export-onnx --checkpoint {path} -o model.onnx' (add --streaming for stream) "
            "and pass model.onnx, or use --backend torch"
        )
    if chosen == "torch" and is_onnx(path):
        raise BackendError(f"{path}: an ONNX file runs with --backend onnx (or auto), not torch")
    return chosen


def _bundled_onnx(
    name: str, variant: type[OnnxFrameModel], threads: int | None, source: str
) -> OnnxFrameModel:
    """One of the bundled model's ONNX files as ``variant`` (onnxruntime holds it once loaded)."""
    with bundled_file(name) as file:
        model = variant(file, threads)
    model.source = source
    return model


def _check_threads(threads: int | None) -> None:
    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be at least 1, got {threads}")


def load_pose_model(
    path: str | Path | None = None, backend: str = "auto", device: str = "cpu", threads: int | None = None
) -> PoseModel:
    """Animator's model: an ``.onnx`` file or a ``.safetensors`` checkpoint (None: the bundled model).

    ``backend`` (see ``resolve_backend``): the bundled model runs from its shipped ONNX file unless
    ``backend="torch"`` asks for its checkpoint.
    """
    _check_threads(threads)
    if resolve_backend(path, backend) == "onnx":
        if path is not None:
            return OnnxFrameModel(str(path), threads)
        return _bundled_onnx(BUNDLED_ONNX, OnnxFrameModel, threads, "default model")
    loaded: PoseModel = torch_backend(str(path or "the default checkpoint")).load(path, device, threads)
    return loaded


def load_stream_model(path: str | Path | None = None, backend: str = "auto", threads: int | None = 1) -> Any:
    """The Streamer's model: an ``.onnx`` file of either variant, a checkpoint through torch, or (None) the
    bundled low-latency model: its streaming export (the window variant: only the new steps are computed per
    push), or its checkpoint with ``backend="torch"``."""
    _check_threads(threads)
    if resolve_backend(path, backend) == "onnx":
        if path is not None:
            return load_onnx_model(str(path), threads)
        return _bundled_onnx(BUNDLED_STREAM_ONNX, OnnxWindowModel, threads, "default low-latency model")
    if path is None:
        with bundled_file(BUNDLED_STREAM_CHECKPOINT) as checkpoint:
            return load_stream_model(checkpoint, "torch", threads)
    model = torch_backend(str(path)).load(path, "cpu", threads)
    if model.kind != "frame":
        raise TypeError(f"streaming needs a FrameModel, got a {type(model.module).__name__} (kind=frame)")
    return model


def wrap_module(module: Any, names: Sequence[str], device: str = "cpu") -> PoseModel:
    """An in-memory torch model (a training run's, a test's) as a pose model."""
    wrapped: PoseModel = torch_backend(f"an in-memory {type(module).__name__}").wrap(module, names, device)
    return wrapped
