"""Averaging the weights of two checkpoints of one model (a "model soup"): ``(1 - w) * first + w * second``.

A model fine-tuned from another stays in its basin, so the average of the two interpolates between what
each does: the bundled default is the fine-tuned offline model averaged with the model it started from, to
keep most of the real-speech gains and give back none of the generated voices' figures (docs/evaluate.md).
The second may attend over a narrower window than the first (the bundled stage 3 against the offline model
with more look-ahead): its position biases are fitted to the first's window the way ``init_from`` does.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from audio2blendshape.training.checkpoint import load_named_checkpoint, save_checkpoint
from audio2blendshape.training.warm_start import fit_attention_window


def average_checkpoints(first: str | Path, second: str | Path, weight: float, out: str | Path) -> Path:
    """Write ``(1 - weight) * first + weight * second`` to ``out`` (atomically), with ``first``'s config and
    names. ``default`` names the bundled model. A ValueError naming the files when they do not fit."""
    if not (math.isfinite(weight) and 0.0 <= weight <= 1.0):
        raise ValueError(f"the weight of {second} must be within 0..1, got {weight}")
    a, b = load_named_checkpoint(first), load_named_checkpoint(second)
    if a.names != b.names:
        raise ValueError(f"{first} and {second} predict different curves: they cannot be averaged")
    state, other = a.model.state_dict(), b.model.state_dict()
    fit_attention_window(other, b.model, a.model)
    mismatched = sorted(k for k in state if k not in other or other[k].shape != state[k].shape)
    if mismatched or set(other) - set(state):
        detail = ", ".join(mismatched or sorted(set(other) - set(state)))
        raise ValueError(f"{first} and {second} are different models ({detail}): they cannot be averaged")
    with torch.no_grad():
        a.model.load_state_dict({k: (1.0 - weight) * v + weight * other[k] for k, v in state.items()})
    recipe = f"(1 - {weight:g}) x {first} + {weight:g} x {second}"
    return save_checkpoint(out, a.model, a.config, a.names, a.step, extra={**a.extra, "average": recipe})
