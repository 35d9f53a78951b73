import pytest
import torch

from audio2blendshape.training.feature_augment import augment_features, tilt_bins, warp_bins


def peaked(bin_index: int, bins: int = 80) -> torch.Tensor:
    mel = torch.zeros(1, 3, bins)
    mel[..., bin_index] = 1.0
    return mel


def test_warp_factor_one_is_identity_and_a_stretch_moves_formants_up():
    mel = torch.randn(2, 5, 80)
    assert torch.allclose(warp_bins(mel, torch.ones(2)), mel, atol=1e-6)
    stretched = warp_bins(peaked(40), torch.tensor([1.1]))
    assert int(stretched[0, 0].argmax()) == 44  # output bin i reads input bin i / 1.1
    squeezed = warp_bins(peaked(40), torch.tensor([0.9]))
    assert int(squeezed[0, 0].argmax()) == 36


def test_warp_holds_the_edges_and_keeps_values_in_range():
    mel = torch.rand(4, 7, 80)
    out = warp_bins(mel, torch.tensor([0.8, 0.9, 1.1, 1.2]))
    assert out.shape == mel.shape and out.min() >= mel.min() and out.max() <= mel.max()
    assert torch.equal(out[0, :, 0], mel[0, :, 0])  # the lowest bin reads itself
    # factor 0.8: output bins from 64 up would read past the top bin, so they hold its value
    assert torch.allclose(out[0, :, 64:], mel[0, :, -1:].expand(-1, 16))


def test_tilt_adds_a_line_from_bottom_to_top():
    mel = torch.zeros(2, 3, 80)
    out = tilt_bins(mel, torch.tensor([0.5, -0.2]))
    assert torch.allclose(out[0, :, -1] - out[0, :, 0], torch.full((3,), 0.5))
    assert torch.allclose(out[1, :, -1] - out[1, :, 0], torch.full((3,), -0.2))
    assert torch.allclose(out.mean(-1), torch.zeros(2, 3), atol=1e-6)  # level unchanged on average


def test_augment_is_reproducible_per_seed_and_off_by_default():
    mel = torch.randn(8, 10, 80)
    assert augment_features(mel, 0.0, 0.0, seed=1) is mel
    first, again = augment_features(mel, 0.1, 0.25, seed=7), augment_features(mel, 0.1, 0.25, seed=7)
    other = augment_features(mel, 0.1, 0.25, seed=8)
    assert torch.equal(first, again) and not torch.allclose(first, other)
    assert not torch.allclose(first[0], augment_features(mel, 0.1, 0.25, seed=7)[1])  # per-window draws
    with pytest.raises(ValueError, match="warp"):
        augment_features(mel, 0.6, 0.0, seed=1)
