"""Export a FrameModel to one self-describing ONNX file (opset ``OPSET``), full or fixed-window.

``full``: ``mel`` ``(B, T, 80)`` -> ``weights`` ``(B, T // stack, K)``, batch and time dynamic; the graph is
``FactorizedFrameModel`` (``frame_inference.py``: ``FrameModel.forward``'s function rearranged for speed) as
``torch.export`` traces it, so boundaries behave as in torch (convolutions start from zeros, attention
masks outside the sequence) and any window the caller cuts gives torch's answer.

``window`` (``--streaming``): the choice made for streaming is a fixed window whose caller keeps the mel
buffer, not a graph with recurrent state inputs: the model is small, recomputing ``context + n + lookahead``
steps per call is cheap, and it has no state to get wrong across calls. Inputs ``mel_window`` ``(B, stack W,
80)`` and ``valid`` bool ``(B, W)``; output ``weights`` ``(B, n, K)`` for window steps ``[context, context
+ n)``. Invalid steps (before the stream's start, after its end) are zeroed before every convolution block,
as the zero padding of a whole-sequence pass, and masked in the attention, so each output equals the full
model's on the whole stream.

Metadata: see ``onnx_backend``. The dynamo exporter (``torch.onnx.export(dynamo=True)``, onnxscript) is
used; the TorchScript exporter cannot express the attention's unfold with a dynamic time axis.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from audio2blendshape.audio.constants import FRAMES_PER_SECOND, HOP_LENGTH, N_FFT, SAMPLE_RATE
from audio2blendshape.models.frame import FrameModel
from audio2blendshape.models.frame_inference import FactorizedFrameModel
from audio2blendshape.runtime.backends import (
    BUNDLED_CHECKPOINT,
    BUNDLED_ONNX,
    BUNDLED_STREAM_CHECKPOINT,
    BUNDLED_STREAM_ONNX,
)
from audio2blendshape.runtime.onnx_backend import FORMAT

OPSET = 18  # ai.onnx opset: onnxruntime >= 1.14, Unity Sentis and Unreal NNE all run it


class OnnxExportError(ValueError):
    """A model or request that cannot be exported; the message says why."""


def window_forward(
    model: FrameModel, mel: torch.Tensor, valid: torch.Tensor, start: int, count: int
) -> torch.Tensor:
    """Outputs of window steps ``[start, start + count)``: mel ``(B, stack W, n_mels)``, valid ``(B, W)`` ->
    ``(B, count, K)``.

    Equal to ``model(mel)[:, start : start + count]`` when every step is valid; invalid steps are zeroed
    before every convolution block (the zeros a whole-sequence pass pads with) and masked in the attention,
    so a window reaching before a stream's start or past its end gives the whole stream's outputs. Only the
    wanted steps go through the attention and decoder: the context steps are needed as memory, not as output.
    """
    stack = model.config.stack
    batch, frames, bins = mel.shape
    steps = frames // stack
    mask = valid.to(mel.dtype)[:, :, None]  # (B, W, 1)
    x = model.input_layer(mel[:, : steps * stack].reshape(batch, steps, stack * bins)) * mask
    for block in model.conv_blocks:
        x = block(x) * mask
    attended = model.attention(model.blendshape_queries, x, mask[:, :, 0], start, count)
    return model.decoder(attended)


class WindowFrameModel(nn.Module):
    """The ``window`` export: ``(mel_window (B, stack W, 80), valid (B, W)) -> (B, n, K)``, W = context + n +
    lookahead, outputs for window steps ``[context, context + n)`` (see ``window_forward``)."""

    def __init__(self, model: FrameModel, new_steps: int) -> None:
        super().__init__()
        if new_steps < 1:
            raise OnnxExportError(f"new_steps must be at least 1, got {new_steps}")
        self.model = model
        self.new_steps = new_steps
        self.window_steps = model.context_steps + new_steps + model.lookahead_steps

    def forward(self, mel_window: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return window_forward(self.model, mel_window, valid, self.model.context_steps, self.new_steps)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter's chatter (optional torchvision ops, deprecations); errors still raise."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def metadata(model: FrameModel, names: Sequence[str], variant: str, source: str) -> dict[str, str]:
    """The ``metadata_props`` of an export (all strings)."""
    return {
        "format": FORMAT,
        "variant": variant,
        "names": json.dumps(list(names)),
        "steps_per_second": repr(float(model.steps_per_second)),
        "stack": str(model.config.stack),
        "context_steps": str(model.context_steps),
        "lookahead_steps": str(model.lookahead_steps),
        "n_mels": str(model.config.n_mels),
        "sample_rate": str(SAMPLE_RATE),
        "hop_length": str(HOP_LENGTH),
        "n_fft": str(N_FFT),
        "mel_frames_per_second": str(FRAMES_PER_SECOND),
        "opset": str(OPSET),
        "source": source,
    }


def _trace(
    module: nn.Module,
    example: tuple[torch.Tensor, ...],
    dims: dict[str, dict[int, object]],
    inputs: list[str],
) -> object:
    """torch.export then the ONNX translation; returns the exporter's ONNXProgram."""
    with _quiet(), torch.no_grad():
        exported = torch.export.export(module, example, dynamic_shapes=dims, strict=False)
        return torch.onnx.export(
            exported, dynamo=True, opset_version=OPSET, input_names=inputs, output_names=["weights"],
            verbose=False, optimize=True,
        )  # fmt: skip


def _label_axes(proto: object, axes: dict[str, list[str]]) -> None:
    """Readable names for the inputs' and outputs' symbolic axes (the exporter writes s0, s26 // 2, ...)."""
    graph = proto.graph  # type: ignore[attr-defined]
    for value in [*graph.input, *graph.output]:
        for dim, label in zip(value.type.tensor_type.shape.dim, axes.get(value.name, []), strict=False):
            if dim.dim_param:
                dim.dim_param = label


@dataclass
class _Spec:
    """What to trace: the module, example inputs, dynamic axes, and the public input/axis names."""

    module: nn.Module
    example: tuple[torch.Tensor, ...]
    dims: dict[str, dict[int, object]]
    inputs: list[str]
    axes: dict[str, list[str]]
    props: dict[str, str]


def _spec(model: FrameModel, streaming: bool, new_steps: int) -> _Spec:
    dynamic = torch.export.Dim.DYNAMIC
    bins = model.config.n_mels
    if not streaming:  # dummy batch of 2: torch.export specialises axes of size 1
        return _Spec(FactorizedFrameModel(model), (torch.zeros(2, 64, bins),),
                     {"mel": {0: dynamic, 1: dynamic}}, ["mel"],
                     {"mel": ["batch", "frames"], "weights": ["batch", "steps"]}, {})  # fmt: skip
    window = WindowFrameModel(model, new_steps).eval()
    width = window.window_steps
    example = (torch.zeros(2, model.config.stack * width, bins), torch.ones(2, width, dtype=torch.bool))
    dims: dict[str, dict[int, object]] = {"mel_window": {0: dynamic}, "valid": {0: dynamic}}
    return _Spec(window, example, dims, ["mel_window", "valid"],
                 {"mel_window": ["batch"], "valid": ["batch"], "weights": ["batch"]},
                 {"window_steps": str(width), "new_steps": str(new_steps)})  # fmt: skip


def export_onnx(
    model: FrameModel,
    names: Sequence[str],
    path: str | Path,
    streaming: bool = False,
    new_steps: int = 1,
    source: str = "",
) -> Path:
    """Write ``model`` as ONNX to ``path`` (atomically); ``streaming`` writes the fixed-window variant."""
    import onnx

    if not isinstance(model, FrameModel):
        raise OnnxExportError(f"only FrameModel exports to ONNX, got {type(model).__name__}")
    if len(names) != model.num_shapes:
        raise OnnxExportError(f"{len(names)} names for a model with {model.num_shapes} outputs")
    spec = _spec(model.eval(), streaming, new_steps)
    proto = _trace(spec.module, spec.example, spec.dims, spec.inputs).model_proto  # type: ignore[attr-defined]
    _label_axes(proto, spec.axes)
    props = metadata(model, names, "window" if streaming else "full", source) | spec.props
    onnx.helper.set_model_props(proto, props)
    onnx.checker.check_model(proto)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        onnx.save(proto, str(temporary))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def export_checkpoint(
    checkpoint: str | Path | None, path: str | Path, streaming: bool = False, new_steps: int = 1
) -> Path:
    """Export the checkpoint at ``checkpoint`` (None: the bundled default) to ``path``."""
    from audio2blendshape.models.checkpoint import load_default_model, load_model

    loaded = load_model(checkpoint) if checkpoint is not None else load_default_model()
    source = str(checkpoint) if checkpoint is not None else "default checkpoint"
    if not isinstance(loaded.model, FrameModel):
        raise OnnxExportError(
            f"{source}: a {type(loaded.model).__name__}; only FrameModel checkpoints export"
        )
    return export_onnx(loaded.model, loaded.names, path, streaming, new_steps, source)


# File in assets/ -> (the checkpoint beside it that it exports, streaming variant).
BUNDLED = {BUNDLED_ONNX: (BUNDLED_CHECKPOINT, False), BUNDLED_STREAM_ONNX: (BUNDLED_STREAM_CHECKPOINT, True)}


def export_bundled(assets: str | Path) -> list[Path]:
    """Rebuild the bundled models' ONNX files in ``assets`` from the bundled checkpoints beside them.

    The runtime runs these files (no torch); ``tests/runtime/test_bundled_onnx.py`` fails when they no longer
    match the checkpoint.
    """
    return [
        export_checkpoint(Path(assets) / checkpoint, Path(assets) / name, streaming=streaming, new_steps=1)
        for name, (checkpoint, streaming) in BUNDLED.items()
    ]
