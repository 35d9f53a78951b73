"""SimplifiedModel, the design document's model: a window of log-mel frames -> one pose.

    mel (B, T, 80) -> audio_encoder -> encoded (B, T, 256)
    blendshape_queries (K, 256) attend over encoded -> attended (B, K, 256)
    decoder (per query) -> weights (B, K) in [0, 1]

Two points where the seed is ambiguous are settled here (see docs/model.md):

* The seed's output layer is "Linear (128 -> 52)", yet the decoder acts on ``(B, 52, 256)``, one vector per
  shape. ``decoder.6`` is therefore a *per-shape* linear layer: its weight has the seed's shape ``(52, 128)``
  (that of ``nn.Linear(128, 52)``) but row k reads only shape k's own attended vector, so ``(B, 52, 128) ->
  (B, 52)`` and every shape keeps its own read-out.
* Attention over a window is permutation-invariant: the seed's model sees the window as an unordered set of
  frames and cannot know which frame its target belongs to. The target of a window is its centre frame
  (``centre_target``) and, with ``positional=True``, fixed sinusoidal positions are added to the encoded
  frames so the queries can find the centre. ``positional=False`` is the seed's exact model. Positions are
  not parameters, so parameter names and shapes are the seed's either way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from audio2blendshape.audio.constants import N_MELS
from audio2blendshape.models.dropout import PackedDropout


@dataclass(frozen=True)
class SimplifiedConfig:
    n_mels: int = N_MELS  # input feature bins
    d_model: int = 256  # width of the encoder, the queries and the attention
    n_heads: int = 4  # attention heads; d_model must divide by it
    decoder_hidden: int = 128  # width fed to the per-shape output layer (the seed's "128 -> 52")
    dropout: float = 0.1  # dropout after every hidden ReLU, as in the seed
    positional: bool = True  # add sinusoidal positions to encoded frames; False = the seed's exact model
    position_scale: float = 4.0  # amplitude of those positions; at 1.0 they are too faint to find the centre


class QueryCrossAttention(nn.Module):
    """Multi-head attention of a fixed set of learned queries over a sequence.

    Parameter names and initialisation mirror ``nn.MultiheadAttention`` (``in_proj_weight``,
    ``in_proj_bias``, ``out_proj``), so state dicts move between the two. Because the queries are the same
    for every item of a batch, they are projected once per call rather than once per item.
    """

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.d_model = d_model
        self.n_heads = n_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, queries: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """queries ``(K, d)``, memory ``(B, T, d)`` -> attended ``(B, K, d)``."""
        d, heads = self.d_model, self.n_heads
        batch, frames, _ = memory.shape
        shapes = queries.shape[0]
        q = F.linear(queries, self.in_proj_weight[:d], self.in_proj_bias[:d])
        kv = F.linear(memory, self.in_proj_weight[d:], self.in_proj_bias[d:])
        k, v = kv.view(batch, frames, 2, heads, d // heads).permute(2, 0, 3, 1, 4)
        q = q.view(1, shapes, heads, d // heads).transpose(1, 2).expand(batch, -1, -1, -1)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, H, K, d/H)
        return self.out_proj(out.transpose(1, 2).reshape(batch, shapes, d))


class PerShapeLinear(nn.Module):
    """``(..., K, in) -> (..., K)``: shape k's output is ``weight[k] . x[..., k, :] + bias[k]``."""

    def __init__(self, in_features: int, num_shapes: int) -> None:
        super().__init__()
        # Same shapes and initialisation as nn.Linear(in_features, num_shapes).
        reference = nn.Linear(in_features, num_shapes)
        self.weight = nn.Parameter(reference.weight.detach().clone())
        self.bias = nn.Parameter(reference.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A product and a sum, not an einsum: onnxruntime runs Einsum several times slower on CPU.
        return (x * self.weight).sum(-1) + self.bias


def sinusoidal_positions(frames: int, width: int, device: torch.device | None = None) -> torch.Tensor:
    """Transformer positions ``(frames, width)`` centred on the window's middle frame."""
    position = torch.arange(frames, device=device, dtype=torch.float32) - frames // 2
    rates = torch.exp(
        torch.arange(0, width, 2, device=device, dtype=torch.float32) * (-math.log(1e4) / width)
    )
    angles = position[:, None] * rates[None, :]
    table = torch.zeros(frames, width, device=device)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles)
    return table


def centre_target(curves: torch.Tensor) -> torch.Tensor:
    """The pose a window model predicts: curves ``(B, T, K)`` -> centre frame ``(B, K)``."""
    return curves[:, curves.shape[1] // 2]


class BlendshapeModel(nn.Module):
    """What every model offers the training loop: ``forward(mel)`` and the matching ``target(curves)``."""

    num_shapes: int

    def target(self, curves: torch.Tensor) -> torch.Tensor:
        """Curves ``(B, T, K)`` at the feature rate -> the target of ``forward``'s output."""
        raise NotImplementedError

    def per_shape_parameters(self) -> set[str]:
        """Names of the parameters with one row per blendshape: the queries and per-shape output layers.

        Everything else (the audio encoder, attention projections, shared decoder layers) does not depend on
        the rig, which is what lets a model trained on one rig start another (``train.init_from``).
        """
        names = {"blendshape_queries"}
        for prefix, module in self.named_modules():
            if isinstance(module, PerShapeLinear):
                names |= {f"{prefix}.{name}" for name, _ in module.named_parameters()}
        return names


class SimplifiedModel(BlendshapeModel):
    """The seed's model. ``forward``: mel ``(B, T, n_mels)`` -> weights ``(B, K)`` in [0, 1]."""

    def __init__(self, num_shapes: int, config: SimplifiedConfig | None = None) -> None:
        super().__init__()
        config = config or SimplifiedConfig()
        self.config = config
        self.num_shapes = num_shapes
        d, p = config.d_model, config.dropout
        self.audio_encoder = nn.Sequential(
            nn.Linear(config.n_mels, d), nn.ReLU(), PackedDropout(p),
            nn.Linear(d, d), nn.ReLU(), PackedDropout(p),
        )  # fmt: skip
        # N(0, 1) like DETR's query embeddings: tiny queries give a uniform attention that learns slowly.
        self.blendshape_queries = nn.Parameter(torch.randn(num_shapes, d))
        self.attention = QueryCrossAttention(d, config.n_heads)
        self.decoder = nn.Sequential(
            nn.Linear(d, d), nn.ReLU(), PackedDropout(p),
            nn.Linear(d, config.decoder_hidden), nn.ReLU(), PackedDropout(p),
            PerShapeLinear(config.decoder_hidden, num_shapes), nn.Sigmoid(),
        )  # fmt: skip

    def encode(self, mel: torch.Tensor) -> torch.Tensor:
        """mel ``(B, T, n_mels)`` -> encoded frames ``(B, T, d)`` (positions added when configured)."""
        encoded = self.audio_encoder(mel)
        if self.config.positional:
            positions = sinusoidal_positions(mel.shape[1], self.config.d_model, mel.device)
            encoded = encoded + self.config.position_scale * positions
        return encoded

    def attend(self, encoded: torch.Tensor) -> torch.Tensor:
        """encoded ``(B, T, d)`` -> one vector per shape ``(B, K, d)``."""
        return self.attention(self.blendshape_queries, encoded)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.attend(self.encode(mel)))

    def target(self, curves: torch.Tensor) -> torch.Tensor:
        """Training target from a window's curves: ``(B, T, K)`` -> its centre frame ``(B, K)``."""
        return centre_target(curves)
