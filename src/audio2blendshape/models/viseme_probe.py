"""A training-only viseme classifier on FrameModel's encoder: the auxiliary task that asks the encoder to
tell the mouth's visemes apart (m, b, p from n, d, t above all) in voices it has never heard.

The blendshape curves are a smoothed, blended function of the viseme sequence, so squared error on them
gives the encoder only a weak, averaged signal about which viseme sounds now; a cross-entropy on the viseme
itself is a sharper one. The probe is a single Linear layer, so what it needs must be linearly readable
from the encoded step. It is not part of the model that ships: checkpoints keep it only for resuming.

    encoded (B, S, d) -> logits (B, S, V), V visemes (the training loop passes data.visemes.VISEMES' count)
"""

from __future__ import annotations

import torch
from torch import nn

from audio2blendshape.models.frame import FrameModel


class VisemeProbe(nn.Module):
    """``forward(encoded (B, S, d))`` -> viseme logits ``(B, S, V)``."""

    def __init__(self, d_model: int, num_visemes: int) -> None:
        super().__init__()
        self.classify = nn.Linear(d_model, num_visemes)

    def forward(self, encoded: torch.Tensor) -> torch.Tensor:
        return self.classify(encoded)


class ProbedFrameModel(nn.Module):
    """A FrameModel with its probe, as one module for the training step (DistributedDataParallel must see
    one forward): ``forward(mel (B, T, n_mels))`` -> ``(weights (B, S, K), viseme logits (B, S, V))``."""

    def __init__(self, model: FrameModel, probe: VisemeProbe) -> None:
        super().__init__()
        self.model, self.probe = model, probe

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        encoded = self.model.encode(mel)
        return self.model.decode(encoded), self.probe(encoded)


def step_visemes(visemes: torch.Tensor, stack: int) -> torch.Tensor:
    """Per-frame viseme ids ``(B, T)`` -> one per model step ``(B, T // stack)``: the step's first frame."""
    steps = visemes.shape[1] // stack
    return visemes[:, : steps * stack : stack]
