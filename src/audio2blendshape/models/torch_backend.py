"""PyTorch models behind the runtime's numpy interface: where inference meets torch.

The runtime (``Animator``, ``Streamer``) imports no torch. It runs an ONNX export with onnxruntime, or,
given a ``.safetensors`` checkpoint, loads this module by name (``runtime.backends``) and gets a
``TorchPoseModel``: numpy mel in, numpy poses out, the torch model on its device inside. Features are the
runtime's numpy log-mel, so the torch and ONNX backends see the same inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from audio2blendshape.audio.constants import WINDOW_FRAMES
from audio2blendshape.audio.mel import log_mel_frames
from audio2blendshape.models.checkpoint import LoadedModel, load_default_model, load_model
from audio2blendshape.models.frame import FrameModel
from audio2blendshape.models.onnx_export import window_forward
from audio2blendshape.models.simplified import SimplifiedModel


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> cuda when available, else cpu; anything else as given, checked to exist."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} was requested but CUDA is not available; use 'cpu'")
    return resolved


class TorchPoseModel:
    """A ``FrameModel`` (kind "frame") or ``SimplifiedModel`` (kind "window") with numpy in and out.

    frame: ``model(mel (B, T, 80)) -> (B, T // stack, K)``; ``steps`` is the Streamer's call.
    window: ``model(windows (B, 300, 80)) -> (B, K)``, the pose of each window's centre frame.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        names: Sequence[str],
        device: str | torch.device = "cpu",
        source: str = "",
    ) -> None:
        if not isinstance(module, (FrameModel, SimplifiedModel)):
            raise TypeError(
                f"unsupported model type {type(module).__name__}: a FrameModel or SimplifiedModel"
            )
        if len(names) != module.num_shapes:
            raise ValueError(f"{len(names)} names for a model with {module.num_shapes} outputs")
        self.device = resolve_device(device)
        self.module = module.to(self.device).eval()
        self.names = tuple(names)
        self.source = source
        self.num_shapes = module.num_shapes
        self.kind = "frame" if isinstance(module, FrameModel) else "window"
        self.window_frames = WINDOW_FRAMES
        if isinstance(module, FrameModel):
            self.stack = module.config.stack
            self.context_steps = module.context_steps
            self.lookahead_steps = module.lookahead_steps
            self.steps_per_second = module.steps_per_second

    def __call__(self, mel: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            batch = torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32)).to(self.device)
            return self.module(batch).float().cpu().numpy()

    def step_times(self, steps: int) -> np.ndarray:
        """Time stamps in seconds of ``steps`` output steps: float64 ``(steps,)``."""
        assert isinstance(self.module, FrameModel)
        return np.asarray(self.module.step_times(steps), dtype=np.float64)

    def steps(self, mel: np.ndarray, start: int, count: int) -> np.ndarray:
        """Steps ``[start, start + count)`` of one window: mel ``(stack W, 80)`` -> ``(count, K)``."""
        if not isinstance(self.module, FrameModel):
            raise TypeError(f"streaming needs a FrameModel, got a {type(self.module).__name__}")
        with torch.inference_mode():
            window = torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32))[None].to(self.device)
            valid = torch.ones(1, window.shape[1] // self.stack, device=self.device)
            return window_forward(self.module, window, valid, start, count)[0].float().cpu().numpy()

    @staticmethod
    def log_mel_frames(block: np.ndarray) -> np.ndarray:
        """The runtime's numpy features (``audio.mel.log_mel_frames``)."""
        return log_mel_frames(block)


def _loaded(path: str | Path | None, device: str | torch.device) -> tuple[LoadedModel, str]:
    if path is None:
        return load_default_model(), "default checkpoint"
    return load_model(path), str(path)


def load(
    path: str | Path | None = None, device: str | torch.device = "cpu", threads: int | None = None
) -> TorchPoseModel:
    """The checkpoint at ``path`` (None: the bundled default) on ``device``; ``threads`` torch CPU threads."""
    if threads is not None:
        torch.set_num_threads(threads)
    loaded, source = _loaded(path, device)
    return TorchPoseModel(loaded.model, loaded.names, device, source)


def wrap(module: torch.nn.Module, names: Sequence[str], device: str | torch.device = "cpu") -> TorchPoseModel:
    """An in-memory model (a training run's, a test's) as a pose model."""
    return TorchPoseModel(module, names, device, source=f"in-memory {type(module).__name__}")


__all__ = ["TorchPoseModel", "load", "resolve_device", "wrap"]
