"""Inspecting backpropagation: per-parameter gradient norms, gradient checks and the gradient flow.

After ``loss.backward()`` every parameter should hold a finite, non-zero gradient of a sensible size. The
seed prints warnings for missing, zero and large gradients; here the findings are returned as data (and
logged as warnings) so the training loop, the ``grads`` command and the tests can all act on them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

log = logging.getLogger(__name__)

# Typical gradient norms the seed quotes for its model, shown beside ours.
SEED_TYPICAL_NORMS: dict[str, tuple[float, float]] = {
    "blendshape_queries": (0.001, 0.01),
    "decoder.6.weight": (0.01, 0.1),
    "audio_encoder.0.weight": (0.0001, 0.001),
}

# Stages from the output back to the input, as the seed draws the flow; matched by parameter-name prefix.
FLOW_STAGES: tuple[tuple[str, str], ...] = (
    ("decoder", "decoder (B, K) <- (B, K, d)"),
    ("attention", "attention (B, K, d) <- (B, T, d)"),
    ("blendshape_queries", "queries (K, d)"),
    ("audio_encoder", "encoder (B, T, d) <- mel (B, T, 80)"),
)

FindingKind = Literal["missing", "zero", "large", "nonfinite"]


@dataclass(frozen=True)
class GradientFinding:
    name: str  # parameter name, as in named_parameters()
    kind: FindingKind  # what is wrong with its gradient
    norm: float | None  # the gradient's L2 norm, None when there is no gradient

    def message(self) -> str:
        text = {
            "missing": "has no gradient",
            "zero": "has a zero gradient",
            "large": f"has a large gradient (norm {self.norm:.4g})",
            "nonfinite": "has a NaN or infinite gradient",
        }[self.kind]
        return f"{self.name} {text}"


def gradient_norms(model: nn.Module) -> dict[str, float | None]:
    """L2 norm of every parameter's gradient (None where ``.grad`` is None), in registration order."""
    norms: dict[str, float | None] = {}
    for name, param in model.named_parameters():
        norms[name] = None if param.grad is None else float(param.grad.detach().norm())
    return norms


def check_gradients(
    model: nn.Module,
    threshold: float = 10.0,
    warn: bool = True,
    norms: dict[str, float | None] | None = None,
) -> list[GradientFinding]:
    """The seed's check: parameters with no, zero, non-finite or larger-than-``threshold`` gradients.

    ``norms`` are ``gradient_norms(model)`` when the caller already has them.
    """
    findings = []
    for name, norm in (norms if norms is not None else gradient_norms(model)).items():
        if not model.get_parameter(name).requires_grad:
            continue
        finding: GradientFinding | None = None
        if norm is None:
            finding = GradientFinding(name, "missing", None)
        elif not math.isfinite(norm):
            finding = GradientFinding(name, "nonfinite", norm)
        elif norm == 0.0:
            finding = GradientFinding(name, "zero", norm)
        elif norm > threshold:
            finding = GradientFinding(name, "large", norm)
        if finding is not None:
            findings.append(finding)
            if warn:
                log.warning(finding.message())
    return findings


def total_norm(norms: Iterable[float | None]) -> float:
    """The global L2 norm that ``clip_grad_norm_`` computes, from per-parameter norms."""
    return math.sqrt(sum(n * n for n in norms if n is not None))


def stage_of(name: str) -> str:
    return next((label for prefix, label in FLOW_STAGES if name.startswith(prefix)), "other")


def flow_order(norms: dict[str, float | None]) -> list[str]:
    """Parameter names from the output back to the input: the order backward visits them."""
    rank = {prefix: i for i, (prefix, _) in enumerate(FLOW_STAGES)}

    def key(item: tuple[int, str]) -> tuple[int, int]:
        index, name = item
        stage = next((rank[p] for p, _ in FLOW_STAGES if name.startswith(p)), len(rank))
        return stage, -index

    return [name for _, name in sorted(enumerate(norms), key=key)]


def format_gradient_table(norms: dict[str, float | None], shapes: dict[str, tuple[int, ...]]) -> str:
    """A text table of gradient norms from output to input, with the seed's typical ranges beside."""
    lines = [f"{'parameter':<28} {'shape':<12} {'grad norm':>11}  {'seed typical':<15} stage", "-" * 96]
    current = None
    for name in flow_order(norms):
        stage = stage_of(name)
        if stage != current:
            current = stage
        norm = norms[name]
        typical = SEED_TYPICAL_NORMS.get(name)
        seed_text = f"{typical[0]:g}-{typical[1]:g}" if typical else ""
        norm_text = "none" if norm is None else f"{norm:.6f}"
        shape = "x".join(map(str, shapes.get(name, ())))
        lines.append(f"{name:<28} {shape:<12} {norm_text:>11}  {seed_text:<15} {stage}")
    lines.append(
        f"{'(input) mel features':<28} {'B x T x 80':<12} {'none':>11}  {'':<15} features are not trained"
    )
    return "\n".join(lines)


def plot_gradient_flow(norms: dict[str, float | None], path: str | Path, title: str = "") -> Path:
    """Bar chart of gradient norms from output (left) to input (right), log scale, seed ranges shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = flow_order(norms)
    values = [max(norms[n] or 0.0, 1e-12) for n in names]
    stages = [stage_of(n) for n in names]
    palette = {label: f"C{i}" for i, (_, label) in enumerate(FLOW_STAGES)}
    fig, ax = plt.subplots(figsize=(max(8.0, 0.45 * len(names)), 5.0))
    ax.bar(range(len(names)), values, color=[palette.get(s, "grey") for s in stages])
    for i, name in enumerate(names):
        if name in SEED_TYPICAL_NORMS:
            low, high = SEED_TYPICAL_NORMS[name]
            ax.fill_between([i - 0.45, i + 0.45], low, high, color="black", alpha=0.15)
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)), names, rotation=70, ha="right", fontsize=8)
    ax.set_ylabel("gradient L2 norm")
    ax.set_title(title or "gradient flow: output (left) -> input (right); grey = seed's typical range")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in palette.values()]
    ax.legend(handles, list(palette), fontsize=7, loc="upper right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def finite_loss_or_raise(loss: torch.Tensor, step: int) -> None:
    """Stop a run whose loss became NaN/inf before it corrupts the weights and the checkpoint."""
    if not torch.isfinite(loss):
        raise FloatingPointError(f"step {step}: the loss is {float(loss)}; stopping before the update")
