"""SimplifiedModel's backward pass written out by hand, step by step, following the seed's step 6.

The seed explains backpropagation in words and a few formulas (section 2.1-2.4); this module turns them into
code that runs without autograd, so each formula can be checked against autograd and against finite
differences (tests/test_manual_backward.py, docs/backprop.md). Nothing in training uses it: training calls
``loss.backward()``. Where the seed's formulas are wrong (the loss gradient divides by ``B`` instead of
``B * K``, the L1 weight 0.1 is applied twice, ``dW = dz @ input.T`` does not fit row-major batches), the code
here is right and docs/backprop.md says what changed.

    params, mel (B, T, n_mels), masks -> manual_forward -> weights (B, K), cache
    loss_gradient(pred, target, importance, LossConfig) -> dtotal/dpred (B, K)
    manual_backward(cache, grad_output (B, K)) -> {parameter name: gradient, "mel": dloss/dmel}

Parameters are keyed by ``SimplifiedModel.named_parameters()`` names. Dropout is made deterministic by passing
its keep masks explicitly (``draw_masks``); ``masks=None`` is eval mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from audio2blendshape.models.simplified import SimplifiedConfig, sinusoidal_positions
from audio2blendshape.training.losses import LossConfig

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


def loss_gradient(pred: Tensor, target: Tensor, importance: Tensor, weights: LossConfig) -> Tensor:
    """``d total / d pred`` of ``BlendshapeLoss`` for ``(B, K)`` predictions; importance ``(K,)``.

    Every term is a mean over all ``n = B * K`` elements, so each gradient divides by ``n`` (the seed divides
    by ``B``), and each term's weight is applied once (the seed applies the L1 weight 0.1 twice):

        mse:        2 (p - t) / n
        l1:         sign(p - t) / n          (sign(0) = 0, as autograd's abs)
        perceptual: 2 w_k (p - t) / n
    """
    if weights.velocity or weights.saturation or weights.openness:
        raise ValueError("the hand-written backward covers the seed's loss: mse, l1 and perceptual only")
    error = pred - target
    n = error.numel()
    importance = importance.to(error.device, error.dtype)
    grad_mse = 2.0 * error / n
    grad_l1 = torch.sign(error) / n
    grad_perceptual = 2.0 * importance * error / n
    return weights.mse * grad_mse + weights.l1 * grad_l1 + weights.perceptual * grad_perceptual


def _linear_backward(x: Tensor, weight: Tensor, grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Backward of ``y = x @ W.T + b``: x ``(..., in)``, W ``(out, in)``, grad = dL/dy ``(..., out)``.

    Returns ``(dx (..., in), dW (out, in), db (out,))``. With rows as samples, ``dW = grad.T @ x`` summed over
    every leading (batch, time, shape) index and ``dx = grad @ W``; the seed's ``dz @ input.T`` and
    ``W.T @ dz`` are the column-vector forms of the same thing.
    """
    grad2 = grad.reshape(-1, grad.shape[-1])
    x2 = x.reshape(-1, x.shape[-1])
    return grad @ weight, grad2.T @ x2, grad2.sum(0)


def _relu_dropout_backward(grad: Tensor, pre: Tensor, mask: Tensor | None) -> Tensor:
    """Through dropout (the same mask, zero where dropped) then ReLU (passes only where ``pre > 0``)."""
    if mask is not None:
        grad = grad * mask
    # At pre == 0 the gradient is 0, as torch's ReLU backward (it tests the output > 0).
    return grad * (pre > 0).to(grad.dtype)


def decoder_backward(cache: ForwardCache, grad_output: Tensor) -> tuple[dict[str, Tensor], Tensor]:
    """grad_output = dL/dweights ``(B, K)`` -> decoder gradients and dL/dattended ``(B, K, d)``."""
    c, p = cache.decoder, cache.params
    s = c.weights
    grad_logits = grad_output * s * (1.0 - s)  # sigmoid' = s (1 - s), at most 0.25 (at s = 0.5)
    # Per-shape linear: W[k] sees only x[:, k], so dW[k] = sum_b g[b, k] x[b, k] and dx[b, k] = g[b, k] W[k].
    grads = {
        "decoder.6.weight": (grad_logits.unsqueeze(-1) * c.act2).sum(0),
        "decoder.6.bias": grad_logits.sum(0),
    }
    grad_act2 = grad_logits.unsqueeze(-1) * p["decoder.6.weight"]  # (B, K, hidden)
    grad_pre2 = _relu_dropout_backward(grad_act2, c.pre2, c.mask2)
    grad_act1, grads["decoder.3.weight"], grads["decoder.3.bias"] = _linear_backward(
        c.act1, p["decoder.3.weight"], grad_pre2
    )
    grad_pre1 = _relu_dropout_backward(grad_act1, c.pre1, c.mask1)
    grad_attended, grads["decoder.0.weight"], grads["decoder.0.bias"] = _linear_backward(
        c.attended, p["decoder.0.weight"], grad_pre1
    )
    return grads, grad_attended


def _softmax_backward(probs: Tensor, grad_probs: Tensor) -> Tensor:
    """Softmax Jacobian-vector product over the last axis: dS = P * (dP - sum(dP * P)).

    Each probability depends on every score of its row (dP_i/dS_j = P_i (delta_ij - P_j)), so the row's
    weighted mean of dP is subtracted before scaling by P.
    """
    return probs * (grad_probs - (grad_probs * probs).sum(-1, keepdim=True))


def attention_backward(cache: ForwardCache, grad_attended: Tensor) -> tuple[dict[str, Tensor], Tensor]:
    """dL/dattended ``(B, K, d)`` -> attention and query gradients, and dL/dencoded ``(B, T, d)``."""
    c, p = cache.attention, cache.params
    batch, shapes, d = grad_attended.shape
    heads, dh = c.q.shape[0], c.q.shape[-1]
    grads: dict[str, Tensor] = {}
    grad_concat, grads["attention.out_proj.weight"], grads["attention.out_proj.bias"] = _linear_backward(
        c.heads, p["attention.out_proj.weight"], grad_attended
    )
    grad_out = grad_concat.view(batch, shapes, heads, dh).transpose(1, 2)  # (B, H, K, dh): undo the concat
    # out = P @ V per head.
    grad_probs = grad_out @ c.v.transpose(-1, -2)  # (B, H, K, T)
    grad_v = c.probs.transpose(-1, -2) @ grad_out  # (B, H, T, dh)
    grad_scores = _softmax_backward(c.probs, grad_probs) * c.scale
    # scores = q @ k.T: q is shared by the batch, so its gradient is summed over the batch.
    grad_q = (grad_scores @ c.k).sum(0)  # (H, K, dh)
    grad_k = grad_scores.transpose(-1, -2) @ c.q  # (B, H, T, dh)
    # Heads back to width d (head-major, as the forward split them), then through the three projections.
    grad_q = grad_q.transpose(0, 1).reshape(shapes, d)
    grad_k = grad_k.transpose(1, 2).reshape(batch, -1, d)
    grad_v = grad_v.transpose(1, 2).reshape(batch, -1, d)
    w = p["attention.in_proj_weight"]
    grad_queries, dw_q, db_q = _linear_backward(c.queries, w[:d], grad_q)
    grad_enc_k, dw_k, db_k = _linear_backward(c.encoded, w[d : 2 * d], grad_k)
    grad_enc_v, dw_v, db_v = _linear_backward(c.encoded, w[2 * d :], grad_v)
    grads["attention.in_proj_weight"] = torch.cat([dw_q, dw_k, dw_v])
    grads["attention.in_proj_bias"] = torch.cat([db_q, db_k, db_v])
    # Every head's share reaches the inputs through its slice of in_proj: the matmuls above sum the heads.
    grads["blendshape_queries"] = grad_queries
    return grads, grad_enc_k + grad_enc_v


def encoder_backward(cache: ForwardCache, grad_encoded: Tensor) -> dict[str, Tensor]:
    """dL/dencoded ``(B, T, d)`` -> encoder gradients and ``"mel"``: dL/dmel ``(B, T, n_mels)``.

    The positional table is a constant added to the encoder output, so it passes the gradient unchanged.
    """
    c, p = cache.encoder, cache.params
    grads: dict[str, Tensor] = {}
    grad_pre2 = _relu_dropout_backward(grad_encoded, c.pre2, c.mask2)
    grad_act1, grads["audio_encoder.3.weight"], grads["audio_encoder.3.bias"] = _linear_backward(
        c.act1, p["audio_encoder.3.weight"], grad_pre2
    )
    grad_pre1 = _relu_dropout_backward(grad_act1, c.pre1, c.mask1)
    grads["mel"], grads["audio_encoder.0.weight"], grads["audio_encoder.0.bias"] = _linear_backward(
        c.mel, p["audio_encoder.0.weight"], grad_pre1
    )
    return grads


def manual_backward(cache: ForwardCache, grad_output: Tensor) -> dict[str, Tensor]:
    """grad_output = dL/dweights ``(B, K)`` -> gradient of every parameter (by name) and of ``"mel"``.

    The steps run in the seed's order: decoder (2.2), attention (2.3), encoder (2.4). The mel gradient is
    not needed by training (features are not trainable) but completes the seed's flow diagram.
    """
    with torch.no_grad():
        grads, grad_attended = decoder_backward(cache, grad_output)
        attention_grads, grad_encoded = attention_backward(cache, grad_attended)
        grads.update(attention_grads)
        grads.update(encoder_backward(cache, grad_encoded))
    return grads


class ManualSimplifiedFunction(torch.autograd.Function):
    """``manual_forward`` as an autograd node whose backward is ``manual_backward``.

    Lets ``torch.autograd.gradcheck`` compare the hand-written backward with finite differences.
    ``apply(config, masks, mel, *params)`` with params in ``PARAMETER_NAMES`` order -> weights ``(B, K)``.
    """

    @staticmethod
    def forward(
        ctx: Any, config: SimplifiedConfig, masks: DropoutMasks | None, mel: Tensor, *values: Tensor
    ) -> Tensor:
        params = dict(zip(PARAMETER_NAMES, values, strict=True))
        weights, cache = manual_forward(params, mel, config, masks)
        # The cache is kept on ctx rather than through save_for_backward: this node is a checking tool that
        # is never part of a long-lived graph, and the cache is a tree of tensors, not a flat tuple.
        ctx.cache = cache
        return weights

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        grads = manual_backward(ctx.cache, grad_output)
        return (None, None, grads["mel"], *(grads[name] for name in PARAMETER_NAMES))


def manual_simplified(
    params: dict[str, Tensor], mel: Tensor, config: SimplifiedConfig, masks: DropoutMasks | None = None
) -> Tensor:
    """Weights ``(B, K)`` through ``ManualSimplifiedFunction``: autograd runs the hand-written backward."""
    values = [params[name] for name in PARAMETER_NAMES]
    result: Tensor = ManualSimplifiedFunction.apply(config, masks, mel, *values)
    return result
