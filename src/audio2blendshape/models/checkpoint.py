"""Self-describing checkpoints, the reading side: a model rebuilt from one safetensors file.

A checkpoint is one safetensors file whose metadata carries the run's JSON config and the output names.
Loading never executes code from the file (safetensors holds only tensors and strings): the model is rebuilt
from the config's model sections (``model.kind`` and its ``[simplified]`` or ``[frame]`` table, read as
strictly as the TOML they came from) and its weights are loaded strictly. ``training.checkpoint`` writes
these files and reads them back whole (optimizer state, the full run config).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from audio2blendshape.models.frame import FrameConfig, FrameModel
from audio2blendshape.models.simplified import BlendshapeModel, SimplifiedConfig, SimplifiedModel
from audio2blendshape.runtime.backends import BUNDLED_CHECKPOINT, bundled_file
from audio2blendshape.typed_config import ConfigError, build_dataclass

FORMAT = "audio2blendshape/checkpoint-1"
MODEL_KINDS = ("simplified", "frame")


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file."""


def build_model(
    kind: str, num_shapes: int, simplified: SimplifiedConfig | None = None, frame: FrameConfig | None = None
) -> BlendshapeModel:
    """The model ``kind`` names ("simplified" or "frame") with ``num_shapes`` outputs."""
    if kind == "frame":
        return FrameModel(num_shapes, frame or FrameConfig())
    if kind == "simplified":
        return SimplifiedModel(num_shapes, simplified or SimplifiedConfig())
    raise ValueError(f"unknown model kind {kind!r}: one of {', '.join(MODEL_KINDS)}")


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and the string metadata of an audio2blendshape checkpoint file."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not a safetensors checkpoint ({error})") from error
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not an audio2blendshape checkpoint (format {metadata.get('format')!r})"
        )
    return tensors, metadata


def load_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """The ``model.*`` tensors into ``model``, strictly."""
    weights = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: weights do not fit the stored config ({error})") from error


def metadata_json(metadata: dict[str, str], key: str, kind: type, default: str | None = None) -> Any:
    """The JSON value stored under ``key``, which must be a ``kind``; ValueError/TypeError otherwise."""
    text = metadata[key] if default is None else metadata.get(key, default)
    try:
        value = json.loads(text)
    except RecursionError:  # json recurses once per nested bracket
        raise ValueError(f"{key!r} nests too deeply") from None
    if not isinstance(value, kind):
        raise TypeError(f"{key!r} holds {type(value).__name__}, not {kind.__name__}")
    return value


def common_metadata(metadata: dict[str, str]) -> tuple[tuple[str, ...], int, dict[str, Any]]:
    """The output names, the step and the run bookkeeping every checkpoint stores."""
    names = metadata_json(metadata, "names", list)
    if not names or not all(isinstance(name, str) for name in names):
        raise TypeError("'names' is not a list of curve names")
    return tuple(names), int(metadata["step"]), metadata_json(metadata, "extra", dict, "{}")


def build_checked(
    build: Callable[[], BlendshapeModel], tensors: dict[str, torch.Tensor], path: Path
) -> BlendshapeModel:
    """``build()``'s model, built for real only once its bodiless copy has the stored tensors' shapes.

    The stored config is untrusted: sizes in it could ask for terabytes, and negative or zero ones fail
    inside torch. On the meta device the copy costs no memory, and the file's own tensors bound the real one.
    """
    try:
        with torch.device("meta"):
            skeleton = build()
    except (ValueError, TypeError, AttributeError, ArithmeticError, RuntimeError, AssertionError) as error:
        raise CheckpointError(
            f"{path}: damaged metadata (the stored config builds no model: {error})"
        ) from error
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    stored = {k.removeprefix("model."): tuple(v.shape) for k, v in tensors.items() if k.startswith("model.")}
    if expected != stored:
        key = min(set(expected) ^ set(stored) or {k for k in expected if expected[k] != stored[k]})
        raise CheckpointError(
            f"{path}: weights do not fit the stored config ({key!r}: the config makes "
            f"{expected.get(key, 'nothing')}, the file holds {stored.get(key, 'nothing')})"
        )
    return build()


@dataclass
class LoadedModel:
    model: BlendshapeModel  # rebuilt from the stored config, weights loaded strictly, in eval mode
    names: tuple[str, ...]  # the K output curve names, in column order
    config: dict[str, Any]  # the run's whole configuration, as stored (plain JSON values)
    step: int  # optimizer steps taken when it was saved
    extra: dict[str, Any] = field(default_factory=dict)  # run bookkeeping (best validation loss, ...)


def _model_from_config(config: dict[str, Any], num_shapes: int, where: str) -> BlendshapeModel:
    kind = config.get("model", {}).get("kind", "simplified")
    if kind not in MODEL_KINDS:
        raise ConfigError(f"{where}.model.kind: expected one of {', '.join(MODEL_KINDS)}, got {kind!r}")
    if kind == "frame":
        frame = build_dataclass(FrameConfig, config.get("frame", {}), f"{where}.frame")
        return build_model(kind, num_shapes, frame=frame)
    simplified = build_dataclass(SimplifiedConfig, config.get("simplified", {}), f"{where}.simplified")
    return build_model(kind, num_shapes, simplified=simplified)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """The model a checkpoint describes, weights loaded strictly, in eval mode on ``device``."""
    path = Path(path)
    tensors, metadata = read_checkpoint(path)
    try:
        config = metadata_json(metadata, "config", dict)
        names, step, extra = common_metadata(metadata)
    except (KeyError, ValueError, TypeError) as error:
        raise CheckpointError(f"{path}: damaged metadata ({error})") from error
    model = build_checked(lambda: _model_from_config(config, len(names), f"{path} [config]"), tensors, path)
    load_weights(model, tensors, path)
    return LoadedModel(model.to(device).eval(), names, config, step, extra)


def default_checkpoint_file() -> contextlib.AbstractContextManager[Path]:
    """The bundled checkpoint as a file path (extracted for the ``with`` block if the package is zipped)."""
    return bundled_file(BUNDLED_CHECKPOINT)


def load_default_model(device: str | torch.device = "cpu") -> LoadedModel:
    """The model bundled with the package (what ``animate`` uses without ``--checkpoint``)."""
    with default_checkpoint_file() as file:
        return load_model(file, device)
