"""Training checkpoints: the model, optimizer state and the whole run config, written atomically.

The file format and the strict model rebuild are ``models.checkpoint``'s; this module adds what a training
run needs on top: the typed ``Config``, AdamW state for resuming, and atomic saving (a temporary file beside
the target, fsynced and renamed into place, so a run killed mid-save leaves the previous checkpoint intact).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from audio2blendshape.models import checkpoint as model_files
from audio2blendshape.models.checkpoint import FORMAT, CheckpointError
from audio2blendshape.models.simplified import BlendshapeModel
from audio2blendshape.training.config import Config, config_from_dict, config_to_dict

__all__ = ["Checkpoint", "CheckpointError", "build_model", "load_checkpoint", "save_checkpoint"]


@dataclass
class Checkpoint:
    model: BlendshapeModel  # rebuilt from the stored config, weights loaded strictly, in eval mode
    config: Config  # the run's whole configuration
    names: tuple[str, ...]  # the K output curve names, in column order
    step: int  # optimizer steps taken when it was saved
    optimizer_state: dict[str, Any] | None  # AdamW state_dict, when saved for resuming
    extra: dict[str, Any] = field(default_factory=dict)  # run bookkeeping (best validation loss, ...)
    probe_state: dict[str, torch.Tensor] = field(default_factory=dict)  # the viseme probe's, for resuming


def build_model(config: Config, num_shapes: int) -> BlendshapeModel:
    """The model ``config.model.kind`` names, with ``num_shapes`` outputs."""
    return model_files.build_model(config.model.kind, num_shapes, config.simplified, config.frame)


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
        parts = key.split(".", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            raise ValueError(f"tensor {key!r} is not named optimizer.<index>.<slot>")
        state.setdefault(int(parts[1]), {})[parts[2]] = value
    return {"state": dict(sorted(state.items())), "param_groups": groups}


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    config: Config,
    names: tuple[str, ...],
    step: int,
    optimizer: torch.optim.Optimizer | None = None,
    extra: dict[str, Any] | None = None,
    probe: nn.Module | None = None,
) -> Path:
    """Write weights (+ optimizer state, + the training-only viseme probe) and the config to ``path``
    atomically. The probe's tensors are named ``probe.*``: model loaders read only ``model.*``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in unwrap(model).state_dict().items()}
    if probe is not None:
        tensors.update({f"probe.{k}": v.detach().cpu().contiguous() for k, v in probe.state_dict().items()})
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


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Rebuild the model a checkpoint describes, load its weights strictly, with the typed config."""
    path = Path(path)
    tensors, metadata = model_files.read_checkpoint(path)
    try:
        stored = model_files.metadata_json(metadata, "config", dict)
        config = config_from_dict(stored, f"{path} [config]")
        names, step, extra = model_files.common_metadata(metadata)
        groups = model_files.metadata_json(metadata, "optimizer_groups", list, "[]")
        optimizer_tensors = {k: v for k, v in tensors.items() if k.startswith("optimizer.")}
        optimizer_state = _optimizer_state(optimizer_tensors, groups) if groups else None
    except (KeyError, ValueError, TypeError) as error:  # ConfigError is a ValueError
        raise CheckpointError(f"{path}: damaged metadata ({error})") from error
    model = model_files.build_checked(lambda: build_model(config, len(names)), tensors, path)
    model_files.load_weights(model, tensors, path)
    probe_state = {k.removeprefix("probe."): v for k, v in tensors.items() if k.startswith("probe.")}
    return Checkpoint(model.to(device).eval(), config, names, step, optimizer_state, extra, probe_state)


def load_default_checkpoint(device: str | torch.device = "cpu") -> Checkpoint:
    """The model bundled with the package, with its training config."""
    with model_files.default_checkpoint_file() as file:
        return load_checkpoint(file, device)


def load_named_checkpoint(path: str | Path) -> Checkpoint:
    """A checkpoint file, or (``default``) the bundled model: how ``init_from`` and ``average`` name one."""
    return load_default_checkpoint() if str(path) == "default" else load_checkpoint(path)


def release_checkpoint(source: str | Path, target: str | Path) -> Path:
    """Copy a training checkpoint without its optimizer state: the small file that ships."""
    loaded = load_checkpoint(source)
    extra = {**loaded.extra, "released_from_step": loaded.step}
    return save_checkpoint(target, loaded.model, loaded.config, loaded.names, loaded.step, extra=extra)
