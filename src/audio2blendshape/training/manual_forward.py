"""SimplifiedModel's forward pass written out by hand, keeping what the manual backward pass needs.

``manual_forward(params, mel (B, T, n_mels), config, masks) -> (weights (B, K), ForwardCache)`` computes what
``SimplifiedModel.forward`` computes, from plain tensors keyed by ``named_parameters()`` names, and keeps
every intermediate the seed's step 6 differentiates (``manual_backward.py``). Dropout is made deterministic by
passing its keep masks explicitly (``draw_masks``); ``masks=None`` is eval mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from audio2blendshape.models.simplified import SimplifiedConfig, sinusoidal_positions

# SimplifiedModel.named_parameters() order (a module's own parameters come before its children's, so the
# queries lead); ManualSimplifiedFunction takes its tensors in this order.
PARAMETER_NAMES: tuple[str, ...] = (
    "blendshape_queries",
    "audio_encoder.0.weight",
    "audio_encoder.0.bias",
    "audio_encoder.3.weight",
    "audio_encoder.3.bias",
    "attention.in_proj_weight",
    "attention.in_proj_bias",
    "attention.out_proj.weight",
    "attention.out_proj.bias",
    "decoder.0.weight",
    "decoder.0.bias",
    "decoder.3.weight",
    "decoder.3.bias",
    "decoder.6.weight",
    "decoder.6.bias",
)


@dataclass(frozen=True)
class DropoutMasks:
    """Keep masks of the model's four ``nn.Dropout`` layers, already scaled by ``1 / (1 - p)``.

    An entry is 0 where dropout zeroes the activation and ``1 / (1 - p)`` elsewhere, so applying dropout is
    ``x * mask`` and its backward is ``grad * mask``: the same mask, which is why it must be recorded.
    """

    encoder1: Tensor  # (B, T, d): audio_encoder.2
    encoder2: Tensor  # (B, T, d): audio_encoder.5
    decoder1: Tensor  # (B, K, d): decoder.2
    decoder2: Tensor  # (B, K, decoder_hidden): decoder.5

    def by_module(self) -> dict[str, Tensor]:
        """The masks keyed by the ``nn.Dropout`` module names in ``SimplifiedModel.named_modules()``."""
        return {
            "audio_encoder.2": self.encoder1,
            "audio_encoder.5": self.encoder2,
            "decoder.2": self.decoder1,
            "decoder.5": self.decoder2,
        }


def draw_masks(
    batch: int,
    frames: int,
    num_shapes: int,
    config: SimplifiedConfig,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> DropoutMasks:
    """Draw train-mode dropout masks for a ``(batch, frames, n_mels)`` input, reproducibly from ``generator``.

    Drawn on the CPU (where ``generator`` lives); move them with the inputs if needed.
    """
    keep = 1.0 - config.dropout

    def draw(*shape: int) -> Tensor:
        if keep <= 0.0:  # p = 1: nn.Dropout zeroes everything; avoid dividing by zero
            return torch.zeros(shape, dtype=dtype)
        return torch.bernoulli(torch.full(shape, keep, dtype=dtype), generator=generator) / keep

    d, hidden = config.d_model, config.decoder_hidden
    return DropoutMasks(
        encoder1=draw(batch, frames, d),
        encoder2=draw(batch, frames, d),
        decoder1=draw(batch, num_shapes, d),
        decoder2=draw(batch, num_shapes, hidden),
    )


def model_parameters(model: nn.Module) -> dict[str, Tensor]:
    """Detached parameter tensors of a SimplifiedModel, keyed by name (the input ``manual_forward`` takes)."""
    return {name: value.detach() for name, value in model.named_parameters()}


@dataclass
class EncoderCache:
    """What the encoder's backward needs. Pre-activations decide the ReLU masks."""

    mel: Tensor  # (B, T, n_mels)
    pre1: Tensor  # (B, T, d): audio_encoder.0 output, before ReLU
    act1: Tensor  # (B, T, d): after ReLU and dropout, the input of audio_encoder.3
    pre2: Tensor  # (B, T, d): audio_encoder.3 output, before ReLU
    mask1: Tensor | None  # (B, T, d) or None in eval mode
    mask2: Tensor | None


@dataclass
class AttentionCache:
    """What the attention's backward needs, per head: ``H`` heads of width ``dh = d / H``."""

    queries: Tensor  # (K, d): blendshape_queries, the input of the q projection
    encoded: Tensor  # (B, T, d): encoder output (+ positions), the input of the k and v projections
    q: Tensor  # (H, K, dh): projected queries, shared by the batch
    k: Tensor  # (B, H, T, dh)
    v: Tensor  # (B, H, T, dh)
    probs: Tensor  # (B, H, K, T): softmax over frames
    heads: Tensor  # (B, K, d): heads concatenated, the input of out_proj
    scale: float  # 1 / sqrt(dh), SDPA's default


@dataclass
class DecoderCache:
    """What the decoder's backward needs."""

    attended: Tensor  # (B, K, d): attention output, the input of decoder.0
    pre1: Tensor  # (B, K, d): decoder.0 output, before ReLU
    act1: Tensor  # (B, K, d): after ReLU and dropout, the input of decoder.3
    pre2: Tensor  # (B, K, hidden): decoder.3 output, before ReLU
    act2: Tensor  # (B, K, hidden): after ReLU and dropout, the input of decoder.6
    weights: Tensor  # (B, K): sigmoid output; sigmoid' = s (1 - s) needs only this
    mask1: Tensor | None
    mask2: Tensor | None


@dataclass
class ForwardCache:
    """Everything ``manual_backward`` needs from one ``manual_forward`` call."""

    params: dict[str, Tensor]
    encoder: EncoderCache
    attention: AttentionCache
    decoder: DecoderCache


def _linear(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """Row-major ``nn.Linear``: x ``(..., in)``, weight ``(out, in)`` -> ``(..., out)``."""
    return x @ weight.T + bias


def _relu_dropout(pre: Tensor, mask: Tensor | None) -> Tensor:
    """ReLU then dropout (a recorded mask; None = eval mode, identity)."""
    act = torch.relu(pre)
    return act if mask is None else act * mask


def _encoder_forward(
    params: dict[str, Tensor], mel: Tensor, config: SimplifiedConfig, masks: DropoutMasks | None
) -> EncoderCache:
    """mel ``(B, T, n_mels)`` -> cache; the encoder output is recomputed by the caller from ``pre2``."""
    mask1 = None if masks is None else masks.encoder1
    mask2 = None if masks is None else masks.encoder2
    pre1 = _linear(mel, params["audio_encoder.0.weight"], params["audio_encoder.0.bias"])
    act1 = _relu_dropout(pre1, mask1)
    pre2 = _linear(act1, params["audio_encoder.3.weight"], params["audio_encoder.3.bias"])
    return EncoderCache(mel=mel, pre1=pre1, act1=act1, pre2=pre2, mask1=mask1, mask2=mask2)


def _attention_forward(
    params: dict[str, Tensor], encoded: Tensor, config: SimplifiedConfig
) -> tuple[Tensor, AttentionCache]:
    """encoded ``(B, T, d)`` -> attended ``(B, K, d)``, written as SDPA computes it (no attention dropout)."""
    batch, frames, d = encoded.shape
    heads = config.n_heads
    dh = d // heads
    queries = params["blendshape_queries"]
    w, b = params["attention.in_proj_weight"], params["attention.in_proj_bias"]
    # Queries are the same for every item, so they are projected once: (K, d) -> (H, K, dh).
    q = _linear(queries, w[:d], b[:d]).view(-1, heads, dh).transpose(0, 1)
    k = _linear(encoded, w[d : 2 * d], b[d : 2 * d]).view(batch, frames, heads, dh).transpose(1, 2)
    v = _linear(encoded, w[2 * d :], b[2 * d :]).view(batch, frames, heads, dh).transpose(1, 2)
    scale = 1.0 / math.sqrt(dh)
    scores = (q @ k.transpose(-1, -2)) * scale  # (H, K, dh) @ (B, H, dh, T) broadcasts to (B, H, K, T)
    probs = torch.softmax(scores, dim=-1)
    concat = (probs @ v).transpose(1, 2).reshape(batch, -1, d)  # (B, H, K, dh) -> (B, K, d), head-major
    attended = _linear(concat, params["attention.out_proj.weight"], params["attention.out_proj.bias"])
    cache = AttentionCache(
        queries=queries, encoded=encoded, q=q, k=k, v=v, probs=probs, heads=concat, scale=scale
    )
    return attended, cache


def _decoder_forward(params: dict[str, Tensor], attended: Tensor, masks: DropoutMasks | None) -> DecoderCache:
    """attended ``(B, K, d)`` -> cache holding the weights ``(B, K)``."""
    mask1 = None if masks is None else masks.decoder1
    mask2 = None if masks is None else masks.decoder2
    pre1 = _linear(attended, params["decoder.0.weight"], params["decoder.0.bias"])
    act1 = _relu_dropout(pre1, mask1)
    pre2 = _linear(act1, params["decoder.3.weight"], params["decoder.3.bias"])
    act2 = _relu_dropout(pre2, mask2)
    # Per-shape read-out: shape k reads only its own vector, out[b, k] = W[k] . x[b, k] + bias[k].
    logits = (act2 * params["decoder.6.weight"]).sum(-1) + params["decoder.6.bias"]
    weights = torch.sigmoid(logits)
    return DecoderCache(
        attended=attended,
        pre1=pre1,
        act1=act1,
        pre2=pre2,
        act2=act2,
        weights=weights,
        mask1=mask1,
        mask2=mask2,
    )


def manual_forward(
    params: dict[str, Tensor], mel: Tensor, config: SimplifiedConfig, masks: DropoutMasks | None = None
) -> tuple[Tensor, ForwardCache]:
    """SimplifiedModel's forward with plain tensor ops: mel ``(B, T, n_mels)`` -> weights ``(B, K)``, cache.

    ``masks=None`` is eval mode and equals ``model.eval()(mel)``; with masks it equals train mode with the
    model's dropout replaced by those masks.
    """
    enc = _encoder_forward(params, mel, config, masks)
    encoded = _relu_dropout(enc.pre2, enc.mask2)
    if config.positional:
        # The table is built the model's way (float32) and cast, so both add exactly the same numbers.
        positions = sinusoidal_positions(mel.shape[1], config.d_model, mel.device).to(encoded.dtype)
        encoded = encoded + config.position_scale * positions
    attended, att = _attention_forward(params, encoded, config)
    dec = _decoder_forward(params, attended, masks)
    return dec.weights, ForwardCache(params=params, encoder=enc, attention=att, decoder=dec)
