"""Growing a model: more residual conv blocks than the checkpoint it starts from (``init_from``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from audio2blendshape.names import ARKIT_NAMES
from audio2blendshape.training.checkpoint import build_model, load_checkpoint, save_checkpoint
from audio2blendshape.training.config import load_config
from audio2blendshape.training.loop import make_optimizer
from audio2blendshape.training.warm_start import grown_parameter_names, initialise_from

TINY = ["model.kind='frame'", "frame.d_model=16", "frame.d_attention=8", "frame.decoder_hidden=8",
        "frame.dropout=0.0"]  # fmt: skip


@pytest.fixture
def source(tmp_path: Path) -> Path:
    config = load_config(None, [*TINY, "frame.conv_layers=1"])
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "one.safetensors", build_model(config, 52), config, ARKIT_NAMES, 5)


def test_a_grown_model_starts_computing_its_sources_function(source: Path) -> None:
    config = load_config(None, [*TINY, "frame.conv_layers=3", f"train.init_from='{source}'"])
    torch.manual_seed(1)
    grown = build_model(config, 52)
    initialise_from(source, grown, ARKIT_NAMES)
    names = grown_parameter_names(source, grown)
    assert names and all(n.startswith(("conv_blocks.1.", "conv_blocks.2.")) for n in names)
    assert torch.count_nonzero(grown.conv_blocks[2].pointwise.weight) == 0  # type: ignore[index]
    assert torch.count_nonzero(grown.conv_blocks[2].depthwise.weight) > 0  # type: ignore[index]
    original = load_checkpoint(source).model
    mel = torch.randn(2, 80, 80)
    with torch.no_grad():
        torch.testing.assert_close(grown.eval()(mel), original.eval()(mel))


def test_grown_blocks_get_their_own_learning_rate(source: Path) -> None:
    config = load_config(None, [*TINY, "frame.conv_layers=2", f"train.init_from='{source}'",
                                "train.grown_lr_scale=10"])  # fmt: skip
    model = build_model(config, 52)
    optimizer = make_optimizer(model, config)
    assert [g["lr_scale"] for g in optimizer.param_groups] == [1.0, 10.0]
    grown = {id(p) for p in optimizer.param_groups[1]["params"]}
    assert grown == {id(p) for n, p in model.named_parameters() if n.startswith("conv_blocks.1.")}
    same = load_config(None, [*TINY, "frame.conv_layers=2", f"train.init_from='{source}'"])
    assert [g["lr_scale"] for g in make_optimizer(model, same).param_groups] == [1.0]  # default: one group


def test_a_source_of_another_width_or_depth_is_refused_in_config_words(source: Path) -> None:
    wider = build_model(load_config(None, [*TINY, "frame.d_model=24", "frame.conv_layers=1"]), 52)
    with pytest.raises(ValueError) as caught:
        initialise_from(source, wider, ARKIT_NAMES)
    assert str(caught.value) == (
        f"{source}: its weights do not fit this config's model: [frame] d_model = 16 there, 24 here. Set "
        "them in [frame] as the source has them to start from it (--set frame.d_model=16)"
    )
    deep = load_config(None, [*TINY, "frame.conv_layers=3"])
    deep_source = save_checkpoint(
        source.with_name("deep.safetensors"), build_model(deep, 52), deep, ARKIT_NAMES, 1
    )
    shallow = build_model(load_config(None, [*TINY, "frame.conv_layers=2", "frame.window_right=4"]), 52)
    with pytest.raises(
        ValueError, match=r"conv_layers = 3 there, 2 here\. .*\(--set frame\.conv_layers=3\)$"
    ):
        initialise_from(deep_source, shallow, ARKIT_NAMES)
    # What init_from adapts is no mismatch: another attention window, dropout, more blocks.
    adapted = load_config(None, [*TINY, "frame.conv_layers=2", "frame.window_right=4", "frame.dropout=0.2"])
    initialise_from(source, build_model(adapted, 52), ARKIT_NAMES)
