import math

import torch

from audio2blendshape.models.simplified import SimplifiedConfig, SimplifiedModel
from audio2blendshape.names import ARKIT_NAMES
from audio2blendshape.training.diagnostics import (
    check_gradients,
    flow_order,
    format_gradient_table,
    gradient_norms,
    plot_gradient_flow,
    total_norm,
)
from audio2blendshape.training.gradient_report import gradient_report
from audio2blendshape.training.losses import BlendshapeLoss
from audio2blendshape.training.memory import memory_report, saved_activation_bytes


def _backward(model):
    model.zero_grad(set_to_none=True)
    loss = BlendshapeLoss(ARKIT_NAMES)(model(torch.randn(4, 30, 80)), torch.rand(4, 52))
    loss["total"].backward()


def _model():
    torch.manual_seed(0)
    return SimplifiedModel(52, SimplifiedConfig(d_model=32, n_heads=4, decoder_hidden=16))


def test_healthy_model_has_no_findings_and_norms_match_clipping():
    model = _model()
    _backward(model)
    norms = gradient_norms(model)
    assert all(n is not None and n > 0 for n in norms.values())
    assert check_gradients(model) == []
    before = float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1e-3))
    assert math.isclose(total_norm(norms.values()), before, rel_tol=1e-5)
    after = total_norm(gradient_norms(model).values())
    assert after <= 1e-3 * (1 + 1e-4)


def test_planted_problems_are_found():
    model = _model()
    _backward(model)
    model.decoder[0].bias.grad = None
    model.decoder[3].bias.grad.zero_()
    model.audio_encoder[0].bias.grad[0] = float("nan")
    model.attention.out_proj.bias.grad.fill_(100.0)
    found = {(f.name, f.kind) for f in check_gradients(model, threshold=10.0, warn=False)}
    assert found == {
        ("decoder.0.bias", "missing"),
        ("decoder.3.bias", "zero"),
        ("audio_encoder.0.bias", "nonfinite"),
        ("attention.out_proj.bias", "large"),
    }


def test_flow_runs_from_output_to_input(tmp_path):
    model = _model()
    _backward(model)
    order = flow_order(gradient_norms(model))
    assert order[0].startswith("decoder.6") and order[-1].startswith("audio_encoder.0")
    assert order.index("attention.in_proj_weight") < order.index("blendshape_queries")
    assert order.index("blendshape_queries") < order.index("audio_encoder.3.weight")
    table = format_gradient_table(gradient_norms(model), {})
    assert "0.01-0.1" in table and "features are not trained" in table
    path = plot_gradient_flow(gradient_norms(model), tmp_path / "flow.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_memory_accounting_counts_parameters_gradients_and_activations():
    model = _model()
    count = sum(p.numel() for p in model.parameters())
    before = memory_report(model)
    assert before.parameters == count and before.gradient_bytes == 0
    assert before.seed_estimate_bytes == count * 8
    optimizer = torch.optim.AdamW(model.parameters())
    _backward(model)
    optimizer.step()
    after = memory_report(model, optimizer)
    assert after.gradient_bytes == after.parameter_bytes == count * 4
    assert after.optimizer_bytes >= 2 * count * 4  # exp_avg and exp_avg_sq
    mel = torch.randn(4, 30, 80)
    _, small = saved_activation_bytes(lambda: model(mel))
    _, large = saved_activation_bytes(lambda: model(torch.randn(8, 30, 80)))
    assert small > mel.numel() * 4 and 1.7 < large / small < 2.3  # activations scale with the batch


def test_full_report_on_the_seeds_batch(tmp_path):
    torch.manual_seed(0)
    model = SimplifiedModel(52)
    mel, curves = torch.randn(16, 300, 80), torch.rand(16, 300, 52)
    loss = BlendshapeLoss(ARKIT_NAMES)
    report = gradient_report(model, mel, curves, loss, max_norm=1e-3, plot_path=tmp_path / "f.png")
    assert report.total_norm_before > 1e-3 and math.isclose(report.total_norm_after, 1e-3, rel_tol=1e-3)
    assert not report.mel_requires_grad and report.findings == []
    assert report.memory.activation_bytes > report.memory.parameter_bytes
    text = report.format()
    assert "decoder.6.weight" in text and "seed's estimate" in text and str(tmp_path / "f.png") in text
