"""FrameModel's forward pass rearranged for inference: the same function, about half the work on CPU.

``FrameModel.forward`` (the training path) scores every window position separately: it unfolds the scores
into ``(B, S, H, K, W)``, adds the position bias and takes a softmax over ``W``, so every step's exponential
is computed once per window that contains it (``W`` = 15 times at the bundled model's window). In
onnxruntime that unfold's transpose and the softmax were over 40% of a call. Two identities remove them:

* ``exp(score[t] + bias[w])`` is ``exp(score[t]) * exp(bias[w])``: each step's exponential is computed once,
  and the window's sum over ``w`` with the fixed weights ``exp(bias[h, w])`` is a depthwise convolution
  along the steps, for the numerator (exponential times value) and for the denominator (the exponential).
  Steps outside the sequence weigh 0, which is the convolution's zero padding: the masked softmax exactly.
* The softmax is invariant to a shift of the scores; the shift used here is each query's maximum over the
  whole input instead of over each window. Differences of more than ``EXP_FLOOR`` below that maximum are
  clamped there, so a window whose every score lies that far below the input's maximum gets equal weights
  instead of underflowing to 0/0. On the bundled model the scores of real speech span far less (measured in
  ``tests/models/test_frame_inference.py``); below the floor the weights would be below 1e-34 anyway.

The layout (shapes first, then heads, features, steps) makes the decoder two batched MatMuls with no large
transpose. ``tests/models/test_frame_inference.py`` checks the outputs against ``FrameModel.forward``.
Exported as the ``full`` ONNX variant; training keeps ``FrameModel.forward`` (exact, and what the gradient
tests cover).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from audio2blendshape.models.frame import FrameModel
from audio2blendshape.models.simplified import PerShapeLinear

EXP_FLOOR = -80.0  # lowest score difference exponentiated: exp(-80) ~ 1.8e-35 is still a normal float32


class FactorizedFrameModel(nn.Module):
    """``forward(mel (B, T, n_mels)) -> (B, T // stack, K)``, equal to ``model(mel)`` to float rounding.

    Holds ``model`` (its parameters, not copies); eval-only: dropout is not applied.
    """

    def __init__(self, model: FrameModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        model, attention = self.model, self.model.attention
        memory = model.encode(mel)  # (B, S, d)
        batch, steps, _ = memory.shape
        shapes, width = model.blendshape_queries.shape
        heads, left, right = attention.n_heads, attention.left, attention.right
        head_width, span = width // heads, left + right + 1
        queries = attention.q_proj(model.blendshape_queries).view(shapes, heads, head_width)
        queries = queries.transpose(0, 1) * head_width**-0.5  # (H, K, dh)
        keys, values = attention.kv_proj(memory).view(batch, steps, 2, heads, head_width).unbind(2)
        scores = torch.matmul(queries[None], keys.permute(0, 2, 3, 1))  # (B, H, K, S)
        shifted = torch.clamp(scores - scores.amax(-1, keepdim=True), min=EXP_FLOOR)
        weights = F.pad(torch.exp(shifted).transpose(1, 2), (left, right))  # (B, K, H, S + span - 1)
        padded_values = F.pad(values.permute(0, 2, 3, 1), (left, right))  # (B, H, dh, S + span - 1)
        products = weights[:, :, :, None] * padded_values[:, None]  # (B, K, H, dh, S + span - 1)
        position = attention.position_bias.exp()  # (H, span): the window's fixed weights
        padded_steps = steps + span - 1
        numerator = _window_sum(
            products.reshape(batch, -1, padded_steps), position, (shapes, heads, head_width)
        )
        denominator = _window_sum(weights.reshape(batch, -1, padded_steps), position, (shapes, heads, 1))
        attended = numerator.view(batch, shapes, heads, head_width, steps) / denominator.view(
            batch, shapes, heads, 1, steps
        )
        return self._decode(attended.reshape(batch, shapes, width, steps)).transpose(1, 2)

    def _decode(self, attended: torch.Tensor) -> torch.Tensor:
        """The decoder on ``(B, K, d_att, S)`` -> ``(B, K, S)``: Linear, ReLU, per-shape Linear, Sigmoid."""
        hidden_layer, per_shape = self.model.decoder[0], self.model.decoder[3]
        assert isinstance(hidden_layer, nn.Linear) and isinstance(per_shape, PerShapeLinear)
        hidden = F.relu(
            torch.matmul(hidden_layer.weight, attended) + hidden_layer.bias[:, None]
        )  # (B, K, h, S)
        out = torch.matmul(per_shape.weight[:, None, :], hidden)[:, :, 0] + per_shape.bias[:, None]
        return torch.sigmoid(out)


def _window_sum(channels: torch.Tensor, position: torch.Tensor, layout: tuple[int, int, int]) -> torch.Tensor:
    """``out[c, s] = sum_w position[head(c), w] * channels[c, s + w]``: ``(B, C, S + span - 1) -> (B, C, S)``.

    ``layout`` (shapes, heads, per head) orders the channels, heads in the middle. A 2-D convolution of
    height 1, not a 1-D one: onnxruntime runs the 2-D depthwise form in its blocked layout, ~9x faster here.
    """
    shapes, heads, per_head = layout
    span = position.shape[1]
    kernel = position[None, :, None, :].expand(shapes, heads, per_head, span).reshape(-1, 1, 1, span)
    return F.conv2d(channels[:, :, None], kernel, groups=kernel.shape[0])[:, :, 0]
