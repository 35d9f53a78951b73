"""Starting a run from another run's weights (``train.init_from``) and its output biases from the data
(``train.output_bias_from_data``).

The source may have another rig (per-shape rows are matched by name), another attention window (a
low-latency model with less look-ahead than the bundled one, or an offline model with more) or fewer conv
blocks (a grown model, which starts computing its source's function).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Container, Iterable
from pathlib import Path

import torch
from torch import nn

from audio2blendshape.data.windows import WindowDataset, collate
from audio2blendshape.models.frame import FrameModel
from audio2blendshape.models.simplified import BlendshapeModel, PerShapeLinear
from audio2blendshape.training.checkpoint import load_named_checkpoint
from audio2blendshape.training.losses import LOGIT_FLOOR

log = logging.getLogger(__name__)

# Log-odds below the source's outermost offset at which offsets the source never had start: e^-2, about an
# eighth of that offset's weight.
NEW_OFFSET_PENALTY = 2.0


def initialise_from(path: Path, model: BlendshapeModel, names: tuple[str, ...]) -> list[int]:
    """Start from another run's weights (fine-tuning), optimizer state fresh.

    The source may have another rig: per-shape rows (queries, per-shape output layers) are copied for the
    names both rigs share (case-insensitive) and start fresh for the others, so a model trained on ARKit can
    start a 116-shape rig with its audio encoder. Everything else must fit this config's model exactly.
    ``default`` names the bundled model. Returns the rows copied by name.
    """
    source = load_named_checkpoint(path)
    mismatch = architecture_mismatch(source.model, model)
    if mismatch:
        raise ValueError(f"{path}: its weights do not fit this config's model: {mismatch}")
    state = source.model.state_dict()
    fresh = model.state_dict()
    source_rows = {name.lower(): row for row, name in enumerate(source.names)}
    rows = [row for row, name in enumerate(names) if name.lower() in source_rows]  # shapes both rigs have
    from_rows = [source_rows[names[row].lower()] for row in rows]
    for key in model.per_shape_parameters():
        if key not in state or state[key].shape[1:] != fresh[key].shape[1:]:
            continue  # a mismatch architecture_mismatch does not name: load_state_dict reports it
        merged = fresh[key].clone()
        merged[rows] = state[key][from_rows]
        state[key] = merged
    fit_attention_window(state, source.model, model)
    grow_conv_blocks(state, fresh)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(f"{path}: its weights do not fit this config's model ({error})") from error
    if len(rows) < len(names):
        log.info("init_from %s: %d of %d shapes by name, the rest start fresh", path, len(rows), len(names))
    return rows


# FrameConfig fields a source may differ in: the attention window is fitted, dropout has no weights, and
# conv_layers may grow (checked apart).
ADAPTED_FIELDS = ("window_left", "window_right", "dropout", "conv_layers")


def architecture_mismatch(source: nn.Module, model: nn.Module) -> str:
    """What in this config's model keeps the source's weights out, in config words; "" when nothing does."""
    if type(source) is not type(model):
        return (
            f"it is a {type(source).__name__} and this config builds a {type(model).__name__} "
            "(set [model] kind to match)"
        )
    if not isinstance(source, FrameModel) or not isinstance(model, FrameModel):
        return ""
    there, here = dataclasses.asdict(source.config), dataclasses.asdict(model.config)
    differ = [key for key in here if key not in ADAPTED_FIELDS and there[key] != here[key]]
    if here["conv_layers"] < there["conv_layers"]:
        differ.append("conv_layers")  # more blocks than the source start as identity; fewer lose weights
    if not differ:
        return ""
    listed = "; ".join(f"{key} = {there[key]} there, {here[key]} here" for key in differ)
    sets = " ".join(f"--set frame.{key}={there[key]}" for key in differ)
    return f"[frame] {listed}. Set them in [frame] as the source has them to start from it ({sets})"


GROWN_BLOCK = re.compile(r"conv_blocks\.\d+\.")


def _grown(names: Iterable[str], source: Container[str]) -> list[str]:
    """The conv-block tensors among ``names`` that ``source`` lacks."""
    return [name for name in names if name not in source and GROWN_BLOCK.match(name)]


def grow_conv_blocks(state: dict[str, torch.Tensor], fresh: dict[str, torch.Tensor]) -> None:
    """Let a FrameModel start from one with fewer residual conv blocks: each block the source lacks starts
    with its output layer at zero, so it adds nothing and the grown model computes its source's function at
    step 0; its depthwise layer keeps its random start, so the output layer gets a gradient."""
    for key in _grown(fresh, state):
        zero = key.endswith(("pointwise.weight", "pointwise.bias"))
        state[key] = torch.zeros_like(fresh[key]) if zero else fresh[key].clone()


def grown_parameter_names(path: Path, model: nn.Module) -> list[str]:
    """Names of ``model``'s parameters that the checkpoint at ``path`` (``train.init_from``) does not have:
    the blocks ``grow_conv_blocks`` added. The optimizer gives them their own learning rate."""
    source = load_named_checkpoint(path).model.state_dict()
    return _grown((name for name, _ in model.named_parameters()), source)


def fit_attention_window(state: dict[str, torch.Tensor], source: nn.Module, model: nn.Module) -> None:
    """Let a FrameModel start from one that attends over another window: the offsets both windows share keep
    their position biases. Offsets the source never had (an offline model with more look-ahead than the
    bundled one) start at the bias of the source's outermost offset on that side minus ``NEW_OFFSET_PENALTY``:
    at the start they take little weight, so the model begins close to its source, but enough for a gradient.
    """
    key = "attention.position_bias"
    if not (isinstance(source, FrameModel) and isinstance(model, FrameModel)) or key not in state:
        return
    have, want = source.config, model.config
    if (have.window_left, have.window_right) == (want.window_left, want.window_right):
        return
    bias = state[key]  # (heads, have.window_left + have.window_right + 1), offsets -left..+right
    heads = bias.shape[0]
    fitted = torch.empty(heads, want.window_left + want.window_right + 1, dtype=bias.dtype)
    for column, offset in enumerate(range(-want.window_left, want.window_right + 1)):
        if -have.window_left <= offset <= have.window_right:
            fitted[:, column] = bias[:, offset + have.window_left]
        else:
            edge = 0 if offset < 0 else bias.shape[1] - 1
            fitted[:, column] = bias[:, edge] - NEW_OFFSET_PENALTY
    state[key] = fitted


@torch.no_grad()
def start_output_bias(model: nn.Module, train_set: WindowDataset, keep: list[int]) -> None:
    """Start each shape's output bias at the logit of its mean over the training windows (rows in ``keep``,
    copied by ``init_from``, stay). From sigmoid(0) = 0.5, curves that sit near 0 (a face rig's usually do)
    cost hundreds of steps at Adam's ~lr per step just to bring the biases down."""
    output = [module for module in model.modules() if isinstance(module, PerShapeLinear)][-1]
    total, frames = torch.zeros(len(train_set.names), dtype=torch.float64), 0
    for first in range(0, len(train_set), 64):
        curves = collate(train_set, torch.arange(first, min(first + 64, len(train_set)))).curves
        total, frames = total + curves.double().sum((0, 1)), frames + curves.shape[0] * curves.shape[1]
    logits = torch.logit(total / frames, eps=1e-6).clamp(LOGIT_FLOOR + 1.0, -LOGIT_FLOOR - 1.0)
    fresh = sorted(set(range(len(logits))) - set(keep))
    output.bias[fresh] = logits[fresh].to(output.bias)
