"""``average``: two checkpoints' weights averaged into one (the bundled default is such an average)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import run_cli

from audio2blendshape.names import ARKIT_NAMES
from audio2blendshape.training.checkpoint import build_model, load_checkpoint, save_checkpoint
from audio2blendshape.training.config import load_config
from audio2blendshape.training.weight_average import average_checkpoints

TINY = ["model.kind='frame'", "frame.d_model=16", "frame.conv_layers=1", "frame.d_attention=8",
        "frame.decoder_hidden=8", "frame.window_left=2"]  # fmt: skip


def checkpoint(path: Path, seed: int, *overrides: str, names: tuple[str, ...] = ARKIT_NAMES) -> Path:
    config = load_config(None, [*TINY, *overrides])
    torch.manual_seed(seed)
    return save_checkpoint(path, build_model(config, len(names)), config, names, 5)


def test_the_average_is_the_weighted_sum_of_the_two(tmp_path: Path) -> None:
    a = checkpoint(tmp_path / "a.safetensors", 0, "frame.window_right=3")
    b = checkpoint(tmp_path / "b.safetensors", 1, "frame.window_right=3")
    out = average_checkpoints(a, b, 0.25, tmp_path / "ab.safetensors")
    first, second, mixed = (load_checkpoint(p) for p in (a, b, out))
    for key, value in mixed.model.state_dict().items():
        expected = 0.75 * first.model.state_dict()[key] + 0.25 * second.model.state_dict()[key]
        torch.testing.assert_close(value, expected, rtol=0, atol=1e-7)
    assert mixed.config == first.config and mixed.names == first.names
    assert mixed.extra["average"] == f"(1 - 0.25) x {a} + 0.25 x {b}"


def test_a_narrower_second_window_is_fitted_to_the_first(tmp_path: Path) -> None:
    wide = checkpoint(tmp_path / "wide.safetensors", 0, "frame.window_right=4")
    narrow = checkpoint(tmp_path / "narrow.safetensors", 1, "frame.window_right=1")
    out = average_checkpoints(wide, narrow, 0.5, tmp_path / "mix.safetensors")
    bias = load_checkpoint(out).model.attention.position_bias  # type: ignore[union-attr]
    assert bias.shape == (2, 2 + 4 + 1)


def test_checkpoints_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    a = checkpoint(tmp_path / "a.safetensors", 0)
    wider = checkpoint(tmp_path / "w.safetensors", 1, "frame.d_model=32")
    other_rig = checkpoint(tmp_path / "r.safetensors", 2, names=("a", "b"))
    with pytest.raises(ValueError, match="are different models"):
        average_checkpoints(a, wider, 0.5, tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match="predict different curves"):
        average_checkpoints(a, other_rig, 0.5, tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match=r"within 0\.\.1"):
        average_checkpoints(a, a, 1.5, tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_the_average_command(tmp_path: Path) -> None:
    a = checkpoint(tmp_path / "a.safetensors", 0)
    b = checkpoint(tmp_path / "b.safetensors", 1)
    result = run_cli("average", str(a), str(b), "--weight", "0.5", "-o", str(tmp_path / "ab.safetensors"))
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and (tmp_path / "ab.safetensors").is_file()
