"""The gradient report: one batch through forward and backward, everything the seed's step 6 inspects.

Forward (counting the activations saved for backward), the loss terms, ``loss.backward()``, per-parameter
gradient norms from output to input beside the seed's typical values, ``check_gradients`` findings, the
total norm before and after clipping, memory accounting and a gradient-flow plot.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from audio2blendshape.models.simplified import BlendshapeModel
from audio2blendshape.training.diagnostics import (
    GradientFinding,
    check_gradients,
    format_gradient_table,
    gradient_norms,
    plot_gradient_flow,
)
from audio2blendshape.training.losses import BlendshapeLoss
from audio2blendshape.training.memory import MemoryReport, memory_report, saved_activation_bytes


@dataclass
class GradientReport:
    losses: dict[str, float]  # the loss terms and their weighted total
    norms: dict[str, float | None]  # per-parameter gradient norms after backward, before clipping
    findings: list[GradientFinding]  # check_gradients output
    total_norm_before: float  # global norm that clip_grad_norm_ saw
    total_norm_after: float  # global norm after clipping
    memory: MemoryReport
    mel_requires_grad: bool  # features are data, not parameters: always False
    plot: Path | None
    shapes: dict[str, tuple[int, ...]]

    def format(self) -> str:
        losses = "  ".join(f"{k}={v:.5f}" for k, v in self.losses.items())
        findings = "\n".join(f"  WARNING: {f.message()}" for f in self.findings) or "  none"
        return "\n".join([
            f"loss terms: {losses}",
            "",
            "per-parameter gradient norms (output -> input):",
            format_gradient_table(self.norms, self.shapes),
            "",
            f"total gradient norm: {self.total_norm_before:.6f} before clipping, "
            f"{self.total_norm_after:.6f} after",
            "check_gradients findings:",
            findings,
            "",
            "memory:",
            self.memory.format(),
            "",
            f"gradient-flow plot: {self.plot}" if self.plot else "gradient-flow plot: not written",
        ])  # fmt: skip


def gradient_report(
    model: BlendshapeModel,
    mel: torch.Tensor,
    curves: torch.Tensor,
    loss_fn: BlendshapeLoss,
    max_norm: float = 1.0,
    warn_norm: float = 10.0,
    plot_path: str | Path | None = None,
) -> GradientReport:
    """Run one training step's forward/backward/clip on ``mel (B, T, 80)``, ``curves (B, T, K)``.

    The model's gradients are left clipped, as an optimizer step would see them.
    """
    model.train()
    model.zero_grad(set_to_none=True)
    pred, activation_bytes = saved_activation_bytes(lambda: model(mel))
    terms = loss_fn(pred, model.target(curves))
    terms["total"].backward()
    norms = gradient_norms(model)
    findings = check_gradients(model, warn_norm, norms=norms)
    before = float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm))
    after = math.sqrt(sum(float(p.grad.norm()) ** 2 for p in model.parameters() if p.grad is not None))
    memory = memory_report(model, activation_bytes=activation_bytes)
    # AdamW's state is not built yet; it is exactly two float32 buffers per parameter.
    memory = dataclasses.replace(memory, optimizer_bytes=2 * memory.parameter_bytes)
    plot = plot_gradient_flow(norms, plot_path) if plot_path else None
    return GradientReport(
        losses={k: float(v.detach()) for k, v in terms.items()},
        norms=norms,
        findings=findings,
        total_norm_before=before,
        total_norm_after=after,
        memory=memory,
        mel_requires_grad=mel.requires_grad,
        plot=plot,
        shapes={n: tuple(p.shape) for n, p in model.named_parameters()},
    )


def report_text(
    checkpoint: Path | None, batch: int, frames: int, seed: int, plot: Path, max_norm: float
) -> str:
    import torch

    from audio2blendshape.data.toy_speech import synthetic_windows
    from audio2blendshape.names import ARKIT_NAMES
    from audio2blendshape.training.checkpoint import build_model, load_checkpoint
    from audio2blendshape.training.config import Config
    from audio2blendshape.training.gradient_report import gradient_report
    from audio2blendshape.training.losses import BlendshapeLoss

    torch.manual_seed(seed)
    if checkpoint is not None:
        loaded = load_checkpoint(checkpoint)
        model, config, names = loaded.model, loaded.config, loaded.names
        source = f"checkpoint {checkpoint} (step {loaded.step})"
    else:
        config, names = Config(), ARKIT_NAMES
        model, source = build_model(config, len(names)), "a freshly initialised SimplifiedModel"
    data = synthetic_windows(batch, seed + 10_000, frames)
    curves = data.curves
    if tuple(n.lower() for n in names) != tuple(n.lower() for n in ARKIT_NAMES):
        # Generated speech is labelled for ARKit; another rig's columns get seeded random targets.
        curves = torch.rand(batch, frames, len(names), generator=torch.Generator().manual_seed(seed))
    report = gradient_report(model, data.mel, curves, BlendshapeLoss(names, config.loss), max_norm=max_norm,
                             warn_norm=config.train.grad_warn_norm, plot_path=plot)  # fmt: skip
    header = (
        f"gradient report: {source}; batch mel {tuple(data.mel.shape)} -> weights ({batch}, {len(names)})"
    )
    return header + "\n\n" + report.format()
