import pytest
import torch

from audio2blendshape.models.reference import ReferenceSimplifiedModel
from audio2blendshape.models.simplified import (
    SimplifiedConfig,
    SimplifiedModel,
    centre_target,
    sinusoidal_positions,
)


def test_shapes_at_every_stage_for_the_seeds_batch():
    model = SimplifiedModel(52).eval()
    mel = torch.randn(16, 300, 80)
    encoded = model.encode(mel)
    attended = model.attend(encoded)
    weights = model.decoder(attended)
    assert encoded.shape == (16, 300, 256)
    assert attended.shape == (16, 52, 256)
    assert weights.shape == (16, 52)
    assert torch.equal(weights, model(mel))
    assert ((weights > 0) & (weights < 1)).all()


def test_parameter_names_are_the_seeds():
    params = dict(SimplifiedModel(52).named_parameters())
    assert params["blendshape_queries"].shape == (52, 256)
    assert params["decoder.6.weight"].shape == (52, 128)  # the seed's Linear(128 -> 52)
    assert params["audio_encoder.0.weight"].shape == (256, 80)
    assert isinstance(SimplifiedModel(52).decoder[7], torch.nn.Sigmoid)


def test_any_rig_size():
    model = SimplifiedModel(116, SimplifiedConfig(d_model=32, n_heads=4, decoder_hidden=16)).eval()
    assert model(torch.randn(2, 50, 80)).shape == (2, 116)


def test_each_shape_reads_only_its_own_attended_vector():
    model = SimplifiedModel(5, SimplifiedConfig(d_model=16, n_heads=2, decoder_hidden=8)).eval()
    attended = torch.randn(3, 5, 16)
    changed = attended.clone()
    changed[:, 2] += 1.0
    diff = (model.decoder(attended) - model.decoder(changed)).abs().amax(0)
    assert diff[2] > 0 and torch.all(diff[[0, 1, 3, 4]] == 0)


def test_matches_nn_multihead_attention_reference():
    config = SimplifiedConfig(d_model=64, n_heads=4, decoder_hidden=32)
    ours, reference = SimplifiedModel(52, config).eval(), ReferenceSimplifiedModel(52, config).eval()
    reference.load_state_dict(ours.state_dict(), strict=True)
    mel = torch.randn(4, 120, 80)
    torch.testing.assert_close(ours(mel), reference(mel), atol=1e-6, rtol=1e-5)


def test_seed_exact_model_ignores_frame_order_and_positions_do_not():
    mel = torch.randn(2, 40, 80)
    shuffled = mel[:, torch.randperm(40)]
    exact = SimplifiedModel(8, SimplifiedConfig(d_model=32, n_heads=2, positional=False)).eval()
    torch.testing.assert_close(exact(mel), exact(shuffled), atol=1e-6, rtol=1e-5)
    positional = SimplifiedModel(8, SimplifiedConfig(d_model=32, n_heads=2, positional=True)).eval()
    assert (positional(mel) - positional(shuffled)).abs().max() > 1e-4


def test_positions_and_centre_target():
    table = sinusoidal_positions(11, 8)
    assert table.shape == (11, 8)
    assert torch.equal(table[5], torch.tensor([0.0, 1.0] * 4))  # the centre frame is position 0
    curves = torch.arange(2 * 5 * 3, dtype=torch.float32).view(2, 5, 3)
    assert torch.equal(centre_target(curves), curves[:, 2])


def test_dropout_is_active_only_in_training():
    model = SimplifiedModel(4, SimplifiedConfig(d_model=16, n_heads=2, dropout=0.5))
    mel = torch.randn(2, 10, 80)
    model.train()
    assert not torch.equal(model(mel), model(mel))
    model.eval()
    assert torch.equal(model(mel), model(mel))


def test_heads_must_divide_width():
    with pytest.raises(ValueError, match="divisible"):
        SimplifiedModel(4, SimplifiedConfig(d_model=30, n_heads=4))


def test_packed_dropout_drops_at_rate_p_and_keeps_the_mean():
    from audio2blendshape.models.dropout import PackedDropout

    torch.manual_seed(0)
    layer = PackedDropout(0.25).train()
    x = torch.ones(400, 1000)
    y = layer(x)
    assert abs(float((y == 0).float().mean()) - 0.25) < 0.005
    torch.testing.assert_close(y.unique(), torch.tensor([0.0, 1 / 0.75]))
    assert abs(float(y.mean()) - 1.0) < 0.01
    torch.manual_seed(1)
    first = layer(x)
    torch.manual_seed(1)
    assert torch.equal(first, layer(x))  # seeded like every other torch op
    layer.eval()
    assert layer(x) is x
    grad = torch.autograd.grad(PackedDropout(0.5).train()(x.requires_grad_()).sum(), x)[0]
    assert set(grad.unique().tolist()) <= {0.0, 2.0}
