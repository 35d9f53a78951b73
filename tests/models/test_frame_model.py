import pytest
import torch

from audio2blendshape.models.frame import FrameConfig, FrameModel

TINY = FrameConfig(d_model=16, conv_layers=2, conv_kernel=3, d_attention=8, n_heads=2, window_left=3,
                   window_right=2, decoder_hidden=8, dropout=0.0)  # fmt: skip


def _model(num_shapes: int = 5, config: FrameConfig = TINY) -> FrameModel:
    torch.manual_seed(0)
    return FrameModel(num_shapes, config).eval()


def test_shapes_and_declared_receptive_field():
    model = _model()
    assert model(torch.randn(3, 41, 80)).shape == (3, 20, 5)  # 100 frames/s in, 50 steps/s out
    assert model.context_steps == 2 * 2 + 3 and model.lookahead_steps == 2
    assert model.steps_per_second == 50
    torch.testing.assert_close(model.step_times(3), torch.tensor([0.005, 0.025, 0.045], dtype=torch.float64))
    assert FrameModel(52)(torch.randn(1, 400, 80)).shape == (1, 200, 52)


@torch.no_grad()
def test_output_depends_only_on_the_declared_window():
    model = _model()
    mel = torch.randn(1, 80, 80)
    base = model(mel)
    step = 20
    for frame, expected_change in ((2 * (step + 2) + 1, True), (2 * (step + 3), False),
                                   (2 * (step - model.context_steps), True),
                                   (2 * (step - model.context_steps) - 1, False)):  # fmt: skip
        changed = mel.clone()
        changed[0, frame] += 5.0
        moved = (model(changed)[0, step] - base[0, step]).abs().max() > 1e-6
        assert moved == expected_change, frame


@torch.no_grad()
def test_chunks_with_context_equal_one_pass():
    model = _model(52, FrameConfig(dropout=0.0))
    mel = torch.randn(1, 900, 80)
    full = model(mel)
    steps, parts = full.shape[1], []
    for start in range(0, steps, 61):
        stop = min(steps, start + 61)
        low, high = max(0, start - model.context_steps), min(steps, stop + model.lookahead_steps)
        parts.append(model(mel[:, 2 * low : 2 * high])[:, start - low : stop - low])
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-6, rtol=0)


def test_target_pools_frame_pairs_and_training_backpropagates():
    model = _model()
    curves = torch.arange(2 * 6 * 5, dtype=torch.float32).view(2, 6, 5)
    torch.testing.assert_close(model.target(curves), (curves[:, 0::2] + curves[:, 1::2]) / 2)
    model.train()
    out = model(torch.randn(2, 12, 80))
    (out - model.target(torch.rand(2, 12, 5))).pow(2).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_bad_config():
    with pytest.raises(ValueError, match="divisible"):
        FrameModel(3, FrameConfig(d_attention=10, n_heads=4))
