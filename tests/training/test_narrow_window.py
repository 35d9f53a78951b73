"""Starting a model with less attention look-ahead from a trained one (configs/stream_causal.toml)."""

from __future__ import annotations

import torch

from audio2blendshape.models.frame import FrameConfig, FrameModel
from audio2blendshape.training.loop import _narrow_attention_window

WIDE = FrameConfig(d_model=16, conv_layers=1, conv_kernel=3, d_attention=8, n_heads=2, window_left=3,
                   window_right=2, decoder_hidden=8, dropout=0.0)  # fmt: skip


def test_the_shared_offsets_keep_their_position_biases() -> None:
    torch.manual_seed(0)
    source = FrameModel(4, WIDE)
    with torch.no_grad():
        source.attention.position_bias.copy_(torch.arange(12.0).view(2, 6))  # offsets -3..+2 per head
    narrow = FrameModel(4, FrameConfig(**{**WIDE.__dict__, "window_left": 2, "window_right": 0}))
    state = source.state_dict()
    _narrow_attention_window(state, source, narrow)
    narrow.load_state_dict(state, strict=True)
    # Offsets -2, -1, 0 are columns 1..3 of the source's -3..+2.
    assert narrow.attention.position_bias.tolist() == [[1.0, 2.0, 3.0], [7.0, 8.0, 9.0]]
    torch.testing.assert_close(narrow.blendshape_queries, source.blendshape_queries)


def test_a_wider_window_is_left_for_load_state_dict_to_refuse() -> None:
    source = FrameModel(4, FrameConfig(**{**WIDE.__dict__, "window_right": 0}))
    wider = FrameModel(4, WIDE)
    state = source.state_dict()
    _narrow_attention_window(state, source, wider)
    assert state["attention.position_bias"].shape == (2, 4)  # untouched: the mismatch is reported later
