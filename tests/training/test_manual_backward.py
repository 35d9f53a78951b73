"""The hand-written backward pass equals autograd and finite differences; the seed's formulas are off."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch

from audio2blendshape.models.simplified import SimplifiedConfig, SimplifiedModel
from audio2blendshape.training.losses import BlendshapeLoss, LossConfig
from audio2blendshape.training.manual_backward import (
    ManualSimplifiedFunction,
    loss_gradient,
    manual_backward,
    manual_simplified,
)
from audio2blendshape.training.manual_forward import (
    PARAMETER_NAMES,
    DropoutMasks,
    draw_masks,
    manual_forward,
    model_parameters,
)

# Tiny sizes so float64 gradcheck over every parameter stays fast; names give non-uniform importance.
NAMES = ("jawOpen", "mouthSmileLeft", "eyeBlinkLeft")
BATCH, FRAMES = 2, 5


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """These tensors are tiny: a thread pool only adds overhead, badly so on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def tiny_config(positional: bool = True, n_mels: int = 80) -> SimplifiedConfig:
    # A large dropout so the masks surely zero some entries at these sizes.
    return SimplifiedConfig(
        n_mels=n_mels, d_model=8, n_heads=2, decoder_hidden=4, dropout=0.3, positional=positional
    )


def make_case(
    config: SimplifiedConfig, seed: int = 0, dtype: torch.dtype = torch.float64
) -> tuple[SimplifiedModel, torch.Tensor, torch.Tensor, DropoutMasks]:
    """A model, mel (B, T, n_mels), target (B, K) and train-mode masks, all from fixed seeds."""
    torch.manual_seed(seed)
    model = SimplifiedModel(len(NAMES), config).to(dtype)
    generator = torch.Generator().manual_seed(seed + 1)
    mel = torch.randn(BATCH, FRAMES, config.n_mels, generator=generator, dtype=dtype)
    target = torch.rand(BATCH, len(NAMES), generator=generator, dtype=dtype)
    masks = draw_masks(BATCH, FRAMES, len(NAMES), config, generator, dtype)
    return model, mel, target, masks


@contextmanager
def fixed_dropout(model: SimplifiedModel, masks: DropoutMasks) -> Iterator[None]:
    """Make the model's train-mode dropout multiply by the given masks instead of drawing its own."""
    modules = dict(model.named_modules())
    handles = []
    for name, mask in masks.by_module().items():
        assert isinstance(modules[name], torch.nn.Dropout)

        def hook(module: torch.nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor, mask=mask):
            return inputs[0] * mask  # replaces the randomly dropped output

        handles.append(modules[name].register_forward_hook(hook))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual - expected).norm() / expected.norm().clamp_min(1e-300)).item()


@pytest.mark.parametrize("positional", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_eval_forward_equals_model(positional: bool, dtype: torch.dtype) -> None:
    config = tiny_config(positional)
    model, mel, _, _ = make_case(config, dtype=dtype)
    with torch.no_grad():
        expected = model.eval()(mel)
    weights, _ = manual_forward(model_parameters(model), mel, config, masks=None)
    tolerance = 1e-6 if dtype == torch.float32 else 1e-13
    torch.testing.assert_close(weights, expected, rtol=tolerance, atol=tolerance)


def test_train_forward_equals_model_with_same_masks() -> None:
    config = tiny_config()
    model, mel, _, masks = make_case(config)
    with torch.no_grad(), fixed_dropout(model, masks):
        expected = model.train()(mel)
    weights, _ = manual_forward(model_parameters(model), mel, config, masks)
    torch.testing.assert_close(weights, expected, rtol=1e-13, atol=1e-13)
    assert not torch.allclose(weights, manual_forward(model_parameters(model), mel, config)[0])


def test_draw_masks_are_scaled_and_reproducible() -> None:
    config = tiny_config()
    first = draw_masks(BATCH, FRAMES, 3, config, torch.Generator().manual_seed(7))
    second = draw_masks(BATCH, FRAMES, 3, config, torch.Generator().manual_seed(7))
    keep = 1.0 - config.dropout
    for name, mask in first.by_module().items():
        assert torch.equal(mask, second.by_module()[name])
        kept = mask[mask != 0]
        torch.testing.assert_close(kept, torch.full_like(kept, 1.0 / keep))
        assert 0 < kept.numel() < mask.numel()
    assert first.encoder1.shape == (BATCH, FRAMES, 8)
    assert first.decoder2.shape == (BATCH, 3, 4)
    none = SimplifiedConfig(d_model=8, n_heads=2, decoder_hidden=4, dropout=0.0)
    assert torch.equal(draw_masks(1, 2, 3, none).decoder1, torch.ones(1, 3, 8))


def test_loss_gradient_equals_autograd() -> None:
    loss = BlendshapeLoss(NAMES)
    generator = torch.Generator().manual_seed(3)
    pred = torch.rand(4, len(NAMES), generator=generator, dtype=torch.float64)
    target = torch.rand(4, len(NAMES), generator=generator, dtype=torch.float64)
    target[0, 0] = pred[0, 0]  # sign(0) = 0, as autograd's abs
    pred.requires_grad_(True)
    (expected,) = torch.autograd.grad(loss(pred, target)["total"], pred)
    actual = loss_gradient(pred.detach(), target, loss.importance, loss.config)
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError):
        loss_gradient(pred.detach(), target, loss.importance, LossConfig(velocity=1.0))


@pytest.mark.parametrize("positional", [True, False])
def test_manual_gradients_equal_autograd_through_model(positional: bool) -> None:
    """Every parameter and the mel input, against autograd through the real model in train mode."""
    config = tiny_config(positional)
    model, mel, target, masks = make_case(config)
    loss = BlendshapeLoss(NAMES)
    mel = mel.requires_grad_(True)
    with fixed_dropout(model, masks):
        total = loss(model.train()(mel), target)["total"]
    names = [name for name, _ in model.named_parameters()]
    assert tuple(names) == PARAMETER_NAMES
    expected = torch.autograd.grad(total, [*model.parameters(), mel])

    weights, cache = manual_forward(model_parameters(model), mel.detach(), config, masks)
    grads = manual_backward(cache, loss_gradient(weights, target, loss.importance, loss.config))
    assert set(grads) == {*names, "mel"}
    for name, want in zip([*names, "mel"], expected, strict=True):
        got = grads[name]
        assert got.shape == want.shape, name
        assert want.norm() > 0, name  # masks and ReLUs leave every block some gradient
        assert relative_error(got, want) < 1e-10, name

    # The same backward as an autograd node, under the real BlendshapeLoss (autograd differentiates the loss).
    params = {name: value.clone().requires_grad_(True) for name, value in model_parameters(model).items()}
    leaves = [*params.values(), mel]
    total = loss(manual_simplified(params, mel, config, masks), target)["total"]
    for name, got, want in zip([*names, "mel"], torch.autograd.grad(total, leaves), expected, strict=True):
        assert relative_error(got, want) < 1e-10, name


def test_gradcheck_against_finite_differences() -> None:
    """The autograd.Function's backward is manual_backward: gradcheck compares it to finite differences."""
    config = tiny_config(n_mels=10)  # fewer mel bins: finite differences cost two forwards per input element
    model, mel, _, masks = make_case(config, seed=1)
    values = [value.clone().requires_grad_(True) for value in model_parameters(model).values()]
    inputs = (mel.clone().requires_grad_(True), *values)
    weights, _ = manual_forward(model_parameters(model), mel, config, masks)
    assert weights.min() > 0.05 and weights.max() < 0.95  # sigmoid not saturated, so the check is sensitive

    def function(*tensors: torch.Tensor) -> torch.Tensor:
        return ManualSimplifiedFunction.apply(config, masks, *tensors)

    assert torch.autograd.gradcheck(function, inputs, eps=1e-6, atol=1e-8, rtol=1e-6)
    eval_function = lambda *tensors: ManualSimplifiedFunction.apply(config, None, *tensors)  # noqa: E731
    assert torch.autograd.gradcheck(eval_function, inputs, eps=1e-6, atol=1e-8, rtol=1e-6)


def test_seed_loss_gradients_are_off_by_the_documented_factors() -> None:
    """Seed 2.1: MSE over B (not B*K) is K times too large; L1 weighted 0.1 twice is 10 times too small."""
    batch, shapes = 16, 52
    generator = torch.Generator().manual_seed(5)
    pred = torch.rand(batch, shapes, generator=generator, dtype=torch.float64, requires_grad=True)
    target = torch.rand(batch, shapes, generator=generator, dtype=torch.float64)
    terms = BlendshapeLoss([f"shape{k}" for k in range(shapes)])(pred, target)
    true_mse = torch.autograd.grad(terms["mse"], pred, retain_graph=True)[0]
    true_l1_part = torch.autograd.grad(0.1 * terms["l1"], pred)[0]
    error = (pred - target).detach()

    seed_mse = 2 * error / batch
    torch.testing.assert_close(seed_mse, shapes * true_mse)

    seed_grad_l1 = 0.1 * torch.sign(error) / batch
    seed_l1_part = 0.1 * seed_grad_l1  # grad_output = ... + 0.1 * grad_l1: the weight a second time
    # Dividing by B*K instead of B fixes a factor K; what remains is the extra 0.1.
    torch.testing.assert_close(seed_l1_part / shapes, true_l1_part / 10)
    assert true_mse.shape == true_l1_part.shape == (batch, shapes)


def test_seed_linear_weight_formula_is_column_vector_form() -> None:
    """Seed 2.2: dW = dz @ input.T is the one-sample column form; for row-major batches it is dz.T @ input."""
    generator = torch.Generator().manual_seed(9)
    layer = torch.nn.Linear(6, 4).double()
    x = torch.randn(5, 6, generator=generator, dtype=torch.float64)
    grad_z = torch.randn(5, 4, generator=generator, dtype=torch.float64)
    (expected,) = torch.autograd.grad(layer(x), layer.weight, grad_z)
    with pytest.raises(RuntimeError):  # the seed's formula on row-major batches: (B, out) @ (in, B)
        grad_z @ x.T
    torch.testing.assert_close(grad_z.T @ x, expected)
    # One sample as column vectors: the seed's form is then the right outer product.
    column_z, column_x = grad_z[:1].T, x[:1].T
    torch.testing.assert_close(column_z @ column_x.T, grad_z[:1].T @ x[:1])


def test_sigmoid_scales_gradient_by_at_most_a_quarter() -> None:
    config = tiny_config()
    model, mel, _, masks = make_case(config)
    weights, cache = manual_forward(model_parameters(model), mel, config, masks)
    ones = torch.ones_like(weights)
    grads = manual_backward(cache, ones)
    # decoder.6.bias's gradient is sum_b s (1 - s): between 0 and B / 4.
    assert torch.all(grads["decoder.6.bias"] > 0) and torch.all(grads["decoder.6.bias"] <= BATCH * 0.25)
