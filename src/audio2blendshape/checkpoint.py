"""Self-describing checkpoints: one safetensors file whose metadata carries the JSON config.

Loading never executes code from the file (safetensors holds only tensors and strings), rebuilds the model
from the stored config and names, and loads the weights strictly. Saving writes a temporary file beside the
target and renames it into place, so a run killed mid-save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import importlib.resources
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .config import Config, ConfigError, config_from_dict, config_to_dict
from .frame_model import FrameModel
from .model import BlendshapeModel, SimplifiedModel

FORMAT = "audio2blendshape/checkpoint-1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file."""


@dataclass
class Checkpoint:
    model: BlendshapeModel  # rebuilt from the stored config, weights loaded strictly, in eval mode
    config: Config  # the run's whole configuration
    names: tuple[str, ...]  # the K output curve names, in column order
    step: int  # optimizer steps taken when it was saved
    optimizer_state: dict[str, Any] | None  # AdamW state_dict, when saved for resuming
    extra: dict[str, Any] = field(default_factory=dict)  # run bookkeeping (best validation loss, ...)


def build_model(config: Config, num_shapes: int) -> BlendshapeModel:
    """The model ``config.model.kind`` names, with ``num_shapes`` outputs."""
    if config.model.kind == "frame":
        return FrameModel(num_shapes, config.frame)
    return SimplifiedModel(num_shapes, config.simplified)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DistributedDataParallel (or the model itself)."""
    inner = getattr(model, "module", model)
    assert isinstance(inner, nn.Module)
    return inner


def _optimizer_tensors(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], list[Any]]:
    tensors = {}
    for index, slots in state["state"].items():
        for key, value in slots.items():
            tensors[f"optimizer.{index}.{key}"] = value.detach().cpu().contiguous()
    return tensors, state["param_groups"]


def _optimizer_state(tensors: dict[str, torch.Tensor], groups: list[Any]) -> dict[str, Any]:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        _, index, slot = key.split(".", 2)
        state.setdefault(int(index), {})[slot] = value
    return {"state": dict(sorted(state.items())), "param_groups": groups}


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    config: Config,
    names: tuple[str, ...],
    step: int,
    optimizer: torch.optim.Optimizer | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write weights (+ optimizer state) and the config to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in unwrap(model).state_dict().items()}
    groups: list[Any] = []
    if optimizer is not None:
        optimizer_tensors, groups = _optimizer_tensors(optimizer.state_dict())
        tensors.update(optimizer_tensors)
    metadata = {
        "format": FORMAT,
        "config": json.dumps(config_to_dict(config)),
        "names": json.dumps(list(names)),
        "step": str(step),
        "optimizer_groups": json.dumps(groups),
        "extra": json.dumps(extra or {}),
    }
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, str(temporary), metadata=metadata)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        from safetensors import safe_open

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


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Rebuild the model a checkpoint describes and load its weights strictly."""
    path = Path(path)
    tensors, metadata = _read(path)
    try:
        config = config_from_dict(json.loads(metadata["config"]), f"{path} [config]")
        names = tuple(json.loads(metadata["names"]))
        step = int(metadata["step"])
        groups = json.loads(metadata.get("optimizer_groups", "[]"))
        extra = json.loads(metadata.get("extra", "{}"))
    except (KeyError, ValueError, ConfigError) as error:
        raise CheckpointError(f"{path}: damaged metadata ({error})") from error
    model = build_model(config, len(names))
    weights = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: weights do not fit the stored config ({error})") from error
    optimizer_tensors = {k: v for k, v in tensors.items() if k.startswith("optimizer.")}
    optimizer_state = _optimizer_state(optimizer_tensors, groups) if groups else None
    return Checkpoint(model.to(device).eval(), config, names, step, optimizer_state, extra)


DEFAULT_CHECKPOINT = "assets/default.safetensors"  # the bundled model, inside the package


def load_default_checkpoint(device: str | torch.device = "cpu") -> Checkpoint:
    """The model bundled with the package (what ``animate`` uses without ``--checkpoint``)."""
    resource = importlib.resources.files("audio2blendshape").joinpath(DEFAULT_CHECKPOINT)
    with importlib.resources.as_file(resource) as file:
        return load_checkpoint(file, device)


def release_checkpoint(source: str | Path, target: str | Path) -> Path:
    """Copy a training checkpoint without its optimizer state: the small file that ships."""
    loaded = load_checkpoint(source)
    extra = {**loaded.extra, "released_from_step": loaded.step}
    return save_checkpoint(target, loaded.model, loaded.config, loaded.names, loaded.step, extra=extra)
