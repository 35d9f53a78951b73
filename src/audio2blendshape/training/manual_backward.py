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

from typing import Any

import torch
from torch import Tensor

from audio2blendshape.models.simplified import SimplifiedConfig
from audio2blendshape.training.losses import LossConfig
from audio2blendshape.training.manual_forward import (
    PARAMETER_NAMES,
    DropoutMasks,
    ForwardCache,
    manual_forward,
)


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
