"""FrameModel: a pose for every frame, with the seed's idea kept — one learned query per blendshape
attending to the audio — but over a short local window around each output step, so it runs on audio of
any length and streams with a bounded look-ahead.

    mel (B, T, 80) at 100 frames/s
      stack 2 frames -> (B, S, 160), S = T // 2: the model runs at 50 steps/s
      frame encoder: Linear 160->d, ReLU, Dropout, then causal residual conv blocks   -> (B, S, d)
      local cross-attention: for each step s, the K queries attend over steps
        [s - window_left, s + window_right], with a learned bias per head and offset -> (B, S, K, d_att)
      decoder per shape: Linear d_att->hidden, ReLU, Dropout, per-shape Linear, Sigmoid -> (B, S, K)

Receptive field: ``context_steps`` steps of past (causal convolutions, then the attention's left window)
and ``window_right`` steps of future. At the defaults the look-ahead is 2 steps (40 ms) of features; with
the stacking and the STFT's half window an output needs audio up to 57.5 ms after its own time stamp.
Boundaries are handled the way a stream sees them: convolutions start from zeros and the attention masks
positions before the start and after the end, so a chunked or streamed run gives the same output.

Step ``s`` covers mel frames ``2s`` and ``2s + 1``; its time stamp is ``(2s + 0.5) / 100`` s.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from audio2blendshape.audio.constants import FRAMES_PER_SECOND, N_MELS
from audio2blendshape.models.dropout import PackedDropout
from audio2blendshape.models.simplified import BlendshapeModel, PerShapeLinear


@dataclass(frozen=True)
class FrameConfig:
    n_mels: int = N_MELS  # input feature bins
    stack: int = 2  # mel frames per model step: 100 frames/s in, 50 steps/s inside
    d_model: int = 128  # width of the frame encoder
    conv_layers: int = 3  # causal residual convolution blocks after the input layer
    conv_kernel: int = 5  # taps of each causal convolution (past and present steps only)
    d_attention: int = 32  # width of each blendshape query and of its attended vector
    n_heads: int = 2  # attention heads; d_attention must divide by it
    window_left: int = 8  # past steps each query attends over (160 ms at 50 steps/s)
    window_right: int = 2  # future steps each query attends over: the model's look-ahead (40 ms)
    decoder_hidden: int = 32  # hidden width of the per-shape decoder
    dropout: float = 0.1  # dropout after hidden ReLUs


class CausalConvBlock(nn.Module):
    """Residual ``x + Linear(ReLU(depthwise causal conv(x)))``: ``(B, S, d) -> (B, S, d)``."""

    def __init__(self, width: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.kernel = kernel
        self.depthwise = nn.Conv1d(width, width, kernel, groups=width)
        self.pointwise = nn.Linear(width, width)
        self.dropout = PackedDropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x.transpose(1, 2), (self.kernel - 1, 0))  # zeros before the start, as a stream begins
        mixed = F.relu(self.depthwise(padded)).transpose(1, 2)
        return x + self.dropout(self.pointwise(mixed))


MASKED = -1e9  # score of positions outside the sequence; finite so exported graphs never meet inf - inf


class LocalQueryAttention(nn.Module):
    """K learned queries attend, at every step, over a window of steps around it.

    ``forward(queries (K, d_att), memory (B, S, d))`` -> ``(B, S, K, d_att)``; with ``valid (B, S)`` only the
    marked steps exist (a stream's window that reaches past its start or end), and ``start``/``count`` pick
    the output steps (a window's context steps are memory, not output).
    """

    def __init__(self, d_model: int, d_attention: int, n_heads: int, left: int, right: int) -> None:
        super().__init__()
        if d_attention % n_heads:
            raise ValueError(f"d_attention {d_attention} is not divisible by n_heads {n_heads}")
        self.n_heads, self.left, self.right = n_heads, left, right
        self.q_proj = nn.Linear(d_attention, d_attention)
        self.kv_proj = nn.Linear(d_model, 2 * d_attention)
        self.position_bias = nn.Parameter(torch.zeros(n_heads, left + right + 1))

    def forward(
        self,
        queries: torch.Tensor,
        memory: torch.Tensor,
        valid: torch.Tensor | None = None,
        start: int = 0,
        count: int | None = None,
    ) -> torch.Tensor:
        batch, steps, _ = memory.shape
        count = steps - start if count is None else count
        shapes, width = queries.shape
        heads, head_width, span = self.n_heads, width // self.n_heads, self.left + self.right + 1
        q = self.q_proj(queries).view(shapes, heads, head_width) * head_width**-0.5
        kv = self.kv_proj(memory).view(batch, steps, 2, heads, head_width)
        keys, values = kv.unbind(2)  # (B, S, H, dh) each
        # A query's score against a step does not depend on the window it is seen from: computed once per
        # step (a MatMul), not once per window position (W times the work, as an Einsum).
        scores = torch.matmul(keys.unsqueeze(-2), q.permute(1, 2, 0)).squeeze(-2)  # (B, S, H, K)
        if valid is not None:
            scores = scores.masked_fill(valid[:, :, None, None] < 0.5, MASKED)
        # Once padded, step s's window is [s, s + span): outputs [start, start + count) need this reach.
        reach = slice(start, start + count + span - 1)
        pad = (0, 0, 0, 0, self.left, self.right)  # the step axis, outside the sequence
        windows = F.pad(scores, pad, value=MASKED)[:, reach].unfold(1, span, 1)  # (B, count, H, K, W)
        weights = (windows + self.position_bias[:, None, :]).softmax(-1)
        seen = F.pad(values, pad)[:, reach].unfold(1, span, 1)  # (B, count, H, dh, W)
        attended = torch.matmul(weights, seen.transpose(-1, -2))  # (B, count, H, K, dh)
        return attended.transpose(2, 3).reshape(batch, count, shapes, width)


class FrameModel(BlendshapeModel):
    """Per-frame model. ``forward``: mel ``(B, T, n_mels)`` -> weights ``(B, T // stack, K)`` in [0, 1]."""

    def __init__(self, num_shapes: int, config: FrameConfig | None = None) -> None:
        super().__init__()
        config = config or FrameConfig()
        self.config = config
        self.num_shapes = num_shapes
        c = config
        self.input_layer = nn.Sequential(nn.Linear(c.n_mels * c.stack, c.d_model), nn.ReLU(),
                                         PackedDropout(c.dropout))  # fmt: skip
        self.conv_blocks = nn.Sequential(*(CausalConvBlock(c.d_model, c.conv_kernel, c.dropout)
                                           for _ in range(c.conv_layers)))  # fmt: skip
        self.blendshape_queries = nn.Parameter(torch.randn(num_shapes, c.d_attention))
        self.attention = LocalQueryAttention(
            c.d_model, c.d_attention, c.n_heads, c.window_left, c.window_right
        )
        self.decoder = nn.Sequential(
            nn.Linear(c.d_attention, c.decoder_hidden), nn.ReLU(), PackedDropout(c.dropout),
            PerShapeLinear(c.decoder_hidden, num_shapes), nn.Sigmoid(),
        )  # fmt: skip

    @property
    def stack(self) -> int:
        """Mel frames per model step."""
        return self.config.stack

    @property
    def steps_per_second(self) -> float:
        return FRAMES_PER_SECOND / self.config.stack

    @property
    def context_steps(self) -> int:
        """Past steps an output depends on (convolutions, then the attention's left window)."""
        return self.config.conv_layers * (self.config.conv_kernel - 1) + self.config.window_left

    @property
    def lookahead_steps(self) -> int:
        """Future steps an output depends on."""
        return self.config.window_right

    def step_times(self, steps: int) -> torch.Tensor:
        """Time stamps in seconds of ``steps`` output steps: ``(steps,)``."""
        stack = self.config.stack
        return (torch.arange(steps, dtype=torch.float64) * stack + (stack - 1) / 2) / FRAMES_PER_SECOND

    def encode(self, mel: torch.Tensor) -> torch.Tensor:
        """mel ``(B, T, n_mels)`` -> encoded steps ``(B, T // stack, d)``; trailing odd frames are dropped."""
        batch, frames, bins = mel.shape
        steps = frames // self.config.stack
        stacked = mel[:, : steps * self.config.stack].reshape(batch, steps, bins * self.config.stack)
        return self.conv_blocks(self.input_layer(stacked))

    def decode(self, encoded: torch.Tensor) -> torch.Tensor:
        """Encoded steps ``(B, S, d)`` -> weights ``(B, S, K)``."""
        return self.decoder(self.attention(self.blendshape_queries, encoded))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(mel))

    def target(self, curves: torch.Tensor) -> torch.Tensor:
        """Training target from curves at the feature rate: ``(B, T, K)`` -> ``(B, T // stack, K)``."""
        batch, frames, shapes = curves.shape
        steps = frames // self.config.stack
        return curves[:, : steps * self.config.stack].reshape(batch, steps, self.config.stack, shapes).mean(2)
