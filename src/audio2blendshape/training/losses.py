"""The training loss: 1.0 * MSE + 0.1 * L1 + 0.5 * perceptual (the seed's weights), as a dict of terms.

"Perceptual" is left undefined by the seed. Here it is an importance-weighted squared error: errors on the
shapes viewers read lip-sync from (jaw opening, lip closure and press, rounding, mouth corners) count up to
four times as much as the rest. Importance comes from the shape names, so it works for any rig; the weights
are normalised to mean 1, so with uniform importance the term equals the MSE.

For per-frame outputs ``(B, T, K)`` a ``velocity`` term compares frame-to-frame changes, which is what makes
motion look smooth or jittery; it is off (weight 0) for window outputs ``(B, K)``, which have no time axis.

All terms are means over every element, so their gradients are divided by ``B * K`` (``B * T * K``), not by
the batch size alone as the seed's formulas state.

``openness`` (off by default) is the error of the lip gap, jawOpen - mouthClose: the one number viewers
read lip-sync from (closed on m/b/p, open on vowels), which per-shape errors weigh only indirectly.

``closure`` (off by default) adds, where the labels' lips touch (gap at most ``LIPS_CLOSED_MAX_GAP``), the
squared amount by which the predicted gap is wider than the label's. Squared error alone predicts the mean of
what the audio allows, so an m the model is 70% sure of comes out half-open and reads as no closure; with
this term a closure the model is fairly sure of comes out closed. Narrower-than-label gaps are not weighted
more: lips that touch a little early or late look right, lips that never touch look wrong.

``parting`` (off by default) is the closure term's counterweight: where the labels' lips are apart, the
squared amount by which the predicted gap is narrower than the label's gap or ``PARTED_GAP``, whichever is
smaller. A large closure weight alone makes closing the cheap answer to every doubt, and lips then touch on t,
d, n and k too; with both, an uncertain frame closes when a closure is the likelier answer, not whenever one
is possible. Gaps narrower than the label's but wider than ``PARTED_GAP`` cost nothing extra: a vowel a little
less open than labelled still reads as open.

``viseme`` (off by default) is the cross-entropy of a training-only viseme probe on the model's encoder
(``models.viseme_probe``) against the viseme sounding at each step; steps whose viseme is unknown (corpora
without phoneme timing, ``UNKNOWN_VISEME``) are left out. It is a term of this loss, not of the model, so
models stay pure and the shipped model is unchanged in shape.

``saturation`` (off by default, so the seed's loss is unchanged) guards the Sigmoid output: a shape that is
rarely active (mouthClose, mouthPress) gets pushed towards 0 by most frames, its logit sinks to -12 and
below, where the sigmoid's slope is ~1e-5 and the frames that need the shape can no longer pull it back —
the model then never closes the lips. The term is a squared hinge on logits below ``LOGIT_FLOOR``
(sigmoid(-6) = 0.0025), computed from the predictions themselves, so models stay pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from audio2blendshape.data.visemes import LIPS_CLOSED_MAX_GAP

# (name fragment, importance), first match wins; matched case-insensitively against every rig's names.
IMPORTANCE_RULES: tuple[tuple[str, float], ...] = (
    ("jawopen", 4.0),
    ("mouthclose", 4.0),
    ("press", 3.0),
    ("funnel", 2.5),
    ("pucker", 2.5),
    ("roll", 2.0),
    ("smile", 2.0),
    ("stretch", 2.0),
    ("lipcorner", 2.0),
    ("frown", 1.5),
    ("jaw", 1.5),
    ("mouth", 1.5),
    ("lip", 1.5),
)


PARTED_GAP = 2 * LIPS_CLOSED_MAX_GAP  # parting term: predicted gaps below this (or the label's) are penalised
LOGIT_FLOOR = -6.0  # logits below this (weights < 0.0025) are penalised by the saturation term


@dataclass(frozen=True)
class LossConfig:
    mse: float = 1.0  # weight of the mean squared error
    l1: float = 0.1  # weight of the mean absolute error (applied once; the seed applies 0.1 twice)
    perceptual: float = 0.5  # weight of the importance-weighted squared error
    velocity: float = 0.0  # weight of the frame-to-frame change error; per-frame outputs only
    saturation: float = 0.0  # weight of the hinge keeping logits above LOGIT_FLOOR (0: the seed's loss)
    openness: float = 0.0  # weight of the lip-gap error (jawOpen - mouthClose); rigs with both shapes only
    closure: float = 0.0  # weight of gaps left open where the labels' lips touch; rigs with both shapes only
    parting: float = 0.0  # weight of lips closing where the labels hold them apart; rigs with both shapes
    viseme: float = 0.0  # weight of the viseme probe's cross-entropy (frame models; needs phoneme timing)


def shape_importance(names: Sequence[str]) -> torch.Tensor:
    """Importance ``(K,)`` of each named shape, normalised to mean 1."""
    weights = []
    for name in names:
        key = name.lower().replace("_", "")
        weights.append(next((w for fragment, w in IMPORTANCE_RULES if fragment in key), 1.0))
    importance = torch.tensor(weights, dtype=torch.float32)
    return importance / importance.mean()


class BlendshapeLoss:
    """``loss(pred, target)`` -> dict of named scalar terms plus ``total``, their weighted sum.

    ``pred`` and ``target`` are ``(B, K)`` or ``(B, T, K)`` weights; with the viseme term, the probe's
    ``viseme_logits (B, T, V)`` and the ``visemes (B, T)`` ids they are scored against.
    """

    def __init__(self, names: Sequence[str], config: LossConfig | None = None) -> None:
        self.config = config or LossConfig()
        self.importance = shape_importance(names)
        rig = {n.lower(): i for i, n in enumerate(names)}
        self.lip_gap = (rig.get("jawopen"), rig.get("mouthclose"))
        if self.uses_lip_gap and None in self.lip_gap:
            raise ValueError("the lip-gap terms (openness, closure, parting) need jawOpen and mouthClose")

    @property
    def uses_lip_gap(self) -> bool:
        return bool(self.config.openness or self.config.closure or self.config.parting)

    def weights(self) -> dict[str, float]:
        c = self.config
        return {"mse": c.mse, "l1": c.l1, "perceptual": c.perceptual, "velocity": c.velocity,
                "saturation": c.saturation, "openness": c.openness, "closure": c.closure,
                "parting": c.parting, "viseme": c.viseme}  # fmt: skip

    def __call__(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        viseme_logits: torch.Tensor | None = None,
        visemes: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        if pred.shape != target.shape:
            raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")
        error = pred - target
        importance = self.importance.to(pred.device, pred.dtype)
        terms = {
            "mse": error.pow(2).mean(),
            "l1": error.abs().mean(),
            "perceptual": (error.pow(2) * importance).mean(),
        }
        if pred.ndim == 3:
            velocity_error = error[:, 1:] - error[:, :-1]
            terms["velocity"] = (velocity_error.pow(2) * importance).mean()
        elif self.config.velocity:
            raise ValueError("the velocity term needs per-frame outputs (B, T, K)")
        if self.config.saturation:
            terms["saturation"] = saturation_penalty(pred)
        if self.uses_lip_gap:
            terms.update(self._lip_gap_terms(pred, target))
        if self.config.viseme:
            if viseme_logits is None or visemes is None:
                raise ValueError("the viseme term needs the probe's logits and the visemes")
            terms["viseme"] = viseme_cross_entropy(viseme_logits, visemes)
        weights = self.weights()
        total = torch.stack([weights[name] * value for name, value in terms.items()]).sum()
        terms["total"] = total
        return terms

    def _lip_gap_terms(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        jaw, close = self.lip_gap
        pred_gap = pred[..., jaw] - pred[..., close]
        target_gap = target[..., jaw] - target[..., close]
        closed = target_gap <= LIPS_CLOSED_MAX_GAP
        terms: dict[str, torch.Tensor] = {}
        if self.config.openness:
            terms["openness"] = (pred_gap - target_gap).pow(2).mean()
        if self.config.closure:
            terms["closure"] = (torch.relu(pred_gap - target_gap).pow(2) * closed).mean()
        if self.config.parting:
            floor = target_gap.clamp(max=PARTED_GAP)
            terms["parting"] = (torch.relu(floor - pred_gap).pow(2) * ~closed).mean()
        return terms


def viseme_cross_entropy(logits: torch.Tensor, visemes: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``logits (B, T, V)`` against ids ``visemes (B, T)`` over the known steps
    (ids >= 0); 0 (still attached to the graph) when none is known."""
    flat, ids = logits.reshape(-1, logits.shape[-1]), visemes.reshape(-1)
    known = ids >= 0
    if not bool(known.any()):
        return flat.sum() * 0.0
    return torch.nn.functional.cross_entropy(flat[known], ids[known])


def saturation_penalty(weights: torch.Tensor) -> torch.Tensor:
    """Mean squared hinge on the logits of ``weights`` (any shape) below ``LOGIT_FLOOR``.

    The logit is recovered as log(p) - log(1 - p); only the low side matters, so p is clamped to
    [1e-30, 0.5], which keeps the gradient finite and exactly zero where the hinge is inactive.
    """
    p = weights.clamp(1e-30, 0.5)
    logits = torch.log(p) - torch.log1p(-p)
    return torch.relu(LOGIT_FLOOR - logits).pow(2).mean()
