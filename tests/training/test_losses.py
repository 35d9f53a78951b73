import pytest
import torch

from audio2blendshape.names import ARKIT, ARKIT_NAMES
from audio2blendshape.training.losses import PARTED_GAP, BlendshapeLoss, LossConfig, shape_importance


def test_total_is_the_weighted_sum_of_named_terms():
    pred, target = torch.rand(16, 52), torch.rand(16, 52)
    terms = BlendshapeLoss(ARKIT_NAMES)(pred, target)
    assert set(terms) == {"mse", "l1", "perceptual", "total"}
    torch.testing.assert_close(terms["mse"], ((pred - target) ** 2).mean())
    torch.testing.assert_close(terms["l1"], (pred - target).abs().mean())
    expected = 1.0 * terms["mse"] + 0.1 * terms["l1"] + 0.5 * terms["perceptual"]
    torch.testing.assert_close(terms["total"], expected)


def test_perceptual_weights_lip_sync_shapes_more():
    importance = shape_importance(ARKIT_NAMES)
    assert importance.mean().item() == pytest.approx(1.0)
    assert importance[ARKIT.index("jawOpen")] > importance[ARKIT.index("mouthSmileLeft")]
    assert importance[ARKIT.index("mouthSmileLeft")] > importance[ARKIT.index("eyeBlinkLeft")]
    loss = BlendshapeLoss(ARKIT_NAMES)
    target = torch.zeros(1, 52)
    jaw_error, blink_error = target.clone(), target.clone()
    jaw_error[0, ARKIT.index("jawOpen")] = 0.5
    blink_error[0, ARKIT.index("eyeBlinkLeft")] = 0.5
    assert loss(jaw_error, target)["mse"] == loss(blink_error, target)["mse"]
    assert loss(jaw_error, target)["perceptual"] > 3 * loss(blink_error, target)["perceptual"]


def test_uniform_importance_makes_perceptual_equal_mse():
    names = ("a", "b", "c")
    pred, target = torch.rand(4, 3), torch.rand(4, 3)
    terms = BlendshapeLoss(names)(pred, target)
    torch.testing.assert_close(terms["perceptual"], terms["mse"])


def test_velocity_term_for_per_frame_outputs():
    loss = BlendshapeLoss(ARKIT_NAMES, LossConfig(velocity=2.0))
    target = torch.rand(2, 10, 52)
    offset = loss(target + 0.1, target)
    assert offset["velocity"] == pytest.approx(0.0, abs=1e-10)  # a constant offset moves nothing
    jitter = target.clone()
    jitter[:, ::2] += 0.1
    assert loss(jitter, target)["velocity"] > 0.01
    with pytest.raises(ValueError, match="per-frame"):
        loss(torch.rand(2, 52), torch.rand(2, 52))
    with pytest.raises(ValueError, match="differ"):
        loss(torch.rand(2, 52), torch.rand(2, 51))


def test_saturation_guard_pulls_sunken_logits_back_and_is_off_by_default():
    logits = torch.tensor([[-12.0, -6.0, -2.0, 3.0]], requires_grad=True)
    names = ("a", "b", "c", "d")
    assert "saturation" not in BlendshapeLoss(names)(torch.sigmoid(logits), torch.zeros(1, 4))
    terms = BlendshapeLoss(names, LossConfig(saturation=1.0))(torch.sigmoid(logits), torch.zeros(1, 4))
    assert terms["saturation"].item() == pytest.approx(36.0 / 4)
    terms["saturation"].backward()
    torch.testing.assert_close(logits.grad, torch.tensor([[-3.0, 0.0, 0.0, 0.0]]))


def test_openness_term_scores_the_lip_gap():
    loss = BlendshapeLoss(ARKIT_NAMES, LossConfig(openness=1.0))
    target = torch.zeros(2, 52)
    target[:, ARKIT.index("jawOpen")] = target[:, ARKIT.index("mouthClose")] = 0.1  # lips closed, jaw ajar
    shifted = target.clone()
    shifted[:, ARKIT.index("jawOpen")] += 0.2
    shifted[:, ARKIT.index("mouthClose")] += 0.2  # both wrong, gap still closed
    opened = target.clone()
    opened[:, ARKIT.index("mouthClose")] = 0.0  # lips apart
    assert loss(shifted, target)["openness"].item() == pytest.approx(0.0, abs=1e-12)
    assert loss(opened, target)["openness"].item() == pytest.approx(0.01)
    with pytest.raises(ValueError, match="jawOpen and mouthClose"):
        BlendshapeLoss(("a", "b"), LossConfig(openness=1.0))


def test_closure_term_weighs_only_lips_left_open_where_labels_close_them():
    loss = BlendshapeLoss(ARKIT_NAMES, LossConfig(closure=1.0))
    jaw, close = ARKIT.index("jawOpen"), ARKIT.index("mouthClose")
    target = torch.zeros(3, 52)
    target[0, jaw] = target[0, close] = 0.1  # frame 0: lips closed (gap 0)
    target[1, jaw] = 0.5  # frame 1: open vowel (gap 0.5)
    target[2, jaw] = 0.1  # frame 2: gap 0.1, above LIPS_CLOSED_MAX_GAP: not closed
    pred = target.clone()
    pred[:, jaw] += 0.2  # every gap 0.2 wider than the label's
    assert "closure" not in BlendshapeLoss(ARKIT_NAMES)(pred, target)
    assert loss(pred, target)["closure"].item() == pytest.approx(0.04 / 3)  # frame 0 alone counts
    narrower = target.clone()
    narrower[0, close] += 0.2  # lips pressed harder than labelled: no closure penalty
    assert loss(narrower, target)["closure"].item() == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="jawOpen and mouthClose"):
        BlendshapeLoss(("a", "b"), LossConfig(closure=1.0))


def test_parting_term_weighs_only_lips_closing_where_labels_hold_them_apart():
    loss = BlendshapeLoss(ARKIT_NAMES, LossConfig(parting=1.0))
    jaw, close = ARKIT.index("jawOpen"), ARKIT.index("mouthClose")
    target = torch.zeros(4, 52)
    target[0, jaw] = target[0, close] = 0.1  # frame 0: lips closed (gap 0)
    target[1, jaw] = 0.5  # frame 1: open vowel (gap 0.5)
    target[2, jaw] = 0.04  # frame 2: lips barely apart (gap 0.04, under PARTED_GAP)
    target[3, jaw] = 0.3  # frame 3: gap 0.3
    pred = target.clone()
    pred[:, close] += 0.1  # every gap 0.1 narrower than the label's
    assert "parting" not in BlendshapeLoss(ARKIT_NAMES)(pred, target)
    # frame 0 is closed in the labels (not counted); frame 1 ends at 0.4 and frame 3 at 0.2, both above
    # PARTED_GAP; frame 2 ends 0.1 below its own label's gap, which is under PARTED_GAP
    assert loss(pred, target)["parting"].item() == pytest.approx(0.01 / 4)
    shut = target.clone()
    shut[1, close] = 0.5  # the open vowel's lips shut: penalised from PARTED_GAP down, not from 0.5
    assert loss(shut, target)["parting"].item() == pytest.approx(PARTED_GAP**2 / 4)
    wider = target.clone()
    wider[:, jaw] += 0.2  # every gap wider than labelled: no parting penalty
    assert loss(wider, target)["parting"].item() == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="jawOpen and mouthClose"):
        BlendshapeLoss(("a", "b"), LossConfig(parting=1.0))
