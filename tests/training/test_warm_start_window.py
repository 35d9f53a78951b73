"""Starting a model with another attention window from a trained one: less look-ahead
(configs/stream_causal.toml) or more (configs/default_offline.toml)."""

from __future__ import annotations

import torch

from audio2blendshape.models.frame import FrameConfig, FrameModel
from audio2blendshape.training.warm_start import NEW_OFFSET_PENALTY, fit_attention_window

WIDE = FrameConfig(d_model=16, conv_layers=1, conv_kernel=3, d_attention=8, n_heads=2, window_left=3,
                   window_right=2, decoder_hidden=8, dropout=0.0)  # fmt: skip


def source_model(config: FrameConfig) -> FrameModel:
    torch.manual_seed(0)
    source = FrameModel(4, config)
    width = config.window_left + config.window_right + 1
    with torch.no_grad():
        source.attention.position_bias.copy_(torch.arange(2.0 * width).view(2, width))
    return source.eval()


def test_the_shared_offsets_keep_their_position_biases() -> None:
    source = source_model(WIDE)  # offsets -3..+2 per head: [0..5], [6..11]
    narrow = FrameModel(4, FrameConfig(**{**WIDE.__dict__, "window_left": 2, "window_right": 0}))
    state = source.state_dict()
    fit_attention_window(state, source, narrow)
    narrow.load_state_dict(state, strict=True)
    # Offsets -2, -1, 0 are columns 1..3 of the source's -3..+2.
    assert narrow.attention.position_bias.tolist() == [[1.0, 2.0, 3.0], [7.0, 8.0, 9.0]]
    torch.testing.assert_close(narrow.blendshape_queries, source.blendshape_queries)


def test_new_offsets_start_below_the_outermost_one_on_their_side() -> None:
    source = source_model(
        FrameConfig(**{**WIDE.__dict__, "window_left": 1, "window_right": 1})
    )  # [0,1,2],[3,4,5]
    wider = FrameModel(4, FrameConfig(**{**WIDE.__dict__, "window_left": 2, "window_right": 3}))
    state = source.state_dict()
    fit_attention_window(state, source, wider)
    wider.load_state_dict(state, strict=True)
    p = NEW_OFFSET_PENALTY
    assert wider.attention.position_bias.tolist() == [
        [0.0 - p, 0.0, 1.0, 2.0, 2.0 - p, 2.0 - p],
        [3.0 - p, 3.0, 4.0, 5.0, 5.0 - p, 5.0 - p],
    ]


def test_a_wider_window_starts_close_to_its_source() -> None:
    """The new offsets take little weight at first: the output moves, but not far."""
    source = FrameModel(4, WIDE).eval()
    wider = FrameModel(4, FrameConfig(**{**WIDE.__dict__, "window_right": 6})).eval()
    state = source.state_dict()
    fit_attention_window(state, source, wider)
    wider.load_state_dict(state, strict=True)
    mel = torch.randn(1, 60, WIDE.n_mels)
    with torch.no_grad():
        before, after = source(mel), wider(mel)
    difference = (after - before).abs()
    assert 0 < difference.max() < 0.1
