"""A plain SimplifiedModel written the obvious way, for benchmarks and equivalence tests.

It uses ``nn.MultiheadAttention`` with the queries repeated for every item of the batch. Its parameter names
are those of ``SimplifiedModel``, so one state dict loads into both and they compute the same function.
"""

from __future__ import annotations

import torch
from torch import nn

from audio2blendshape.models.simplified import SimplifiedConfig, SimplifiedModel


class ReferenceSimplifiedModel(SimplifiedModel):
    """SimplifiedModel with ``nn.MultiheadAttention``; ``forward``: mel ``(B, T, 80)`` -> ``(B, K)``."""

    def __init__(self, num_shapes: int, config: SimplifiedConfig | None = None) -> None:
        super().__init__(num_shapes, config)
        for container in (self.audio_encoder, self.decoder):
            for index, module in enumerate(container):
                if isinstance(module, nn.Dropout):
                    container[index] = nn.Dropout(module.p)
        width, heads = self.config.d_model, self.config.n_heads
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)  # type: ignore[assignment]

    def attend(self, encoded: torch.Tensor) -> torch.Tensor:
        queries = self.blendshape_queries.unsqueeze(0).expand(encoded.shape[0], -1, -1)
        attended, _ = self.attention(queries, encoded, encoded, need_weights=False)
        return attended
