"""FactorizedFrameModel (the ONNX export's arrangement) computes FrameModel.forward's function."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from audio2blendshape.audio.decode import load_audio
from audio2blendshape.audio.mel import log_mel
from audio2blendshape.models.checkpoint import load_default_model
from audio2blendshape.models.frame import FrameConfig, FrameModel
from audio2blendshape.models.frame_inference import EXP_FLOOR, FactorizedFrameModel

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello.wav"
TINY = FrameConfig(d_model=16, conv_layers=2, conv_kernel=3, d_attention=8, n_heads=2, window_left=3,
                   window_right=2, decoder_hidden=8, dropout=0.0)  # fmt: skip


def _tiny(config: FrameConfig = TINY, shapes: int = 5) -> FrameModel:
    torch.manual_seed(0)
    model = FrameModel(shapes, config).eval()
    with torch.no_grad():  # a learned-looking position bias, not the zeros of a fresh model
        model.attention.position_bias.copy_(torch.randn_like(model.attention.position_bias))
    return model


@torch.no_grad()
@pytest.mark.parametrize(
    "config",
    [TINY, replace(TINY, n_heads=4, window_left=0, window_right=4), replace(TINY, n_heads=1, window_right=0)],
)
@pytest.mark.parametrize("frames", [2, 9, 64])
def test_equals_the_training_forward(config: FrameConfig, frames: int) -> None:
    model = _tiny(config)
    mel = torch.randn(2, frames, 80)
    torch.testing.assert_close(FactorizedFrameModel(model)(mel), model(mel), atol=1e-6, rtol=1e-5)


@torch.no_grad()
def test_equals_the_bundled_model_on_speech_and_scores_stay_far_from_the_floor() -> None:
    model = load_default_model().model.eval()
    assert isinstance(model, FrameModel)
    mel = torch.from_numpy(log_mel(load_audio(HELLO)))[None]
    assert (FactorizedFrameModel(model)(mel) - model(mel)).abs().max() <= 1e-5
    # The clamp only matters when a window's best score is EXP_FLOOR below the input's best; on speech
    # the gap is a few units (about 4 at worst over 119 real recordings of realspeech, measured once).
    attention = model.attention
    memory = model.encode(mel)
    shapes, width = model.blendshape_queries.shape
    heads, span = attention.n_heads, attention.left + attention.right + 1
    queries = attention.q_proj(model.blendshape_queries).view(shapes, heads, -1).transpose(0, 1)
    keys = attention.kv_proj(memory).view(1, -1, 2, heads, width // heads)[:, :, 0]
    scores = torch.matmul(queries[None], keys.permute(0, 2, 3, 1))[0] * (width // heads) ** -0.5
    window_best = F.max_pool1d(F.pad(scores, (attention.left, attention.right), value=-1e9), span, 1)
    assert (window_best - scores.amax(-1, keepdim=True)).min() > EXP_FLOOR / 8


@torch.no_grad()
def test_scores_beyond_the_floor_give_finite_weights() -> None:
    model = _tiny()
    with torch.no_grad():
        model.blendshape_queries.mul_(1e4)  # scores spanning thousands: far past exp's float32 range
    mel = torch.cat([torch.full((1, 40, 80), -1.5), torch.randn(1, 40, 80) * 3], 1)
    out = FactorizedFrameModel(model)(mel)
    assert torch.isfinite(out).all() and ((out >= 0) & (out <= 1)).all()
