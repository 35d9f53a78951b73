"""configs/finetune.toml starts from the bundled model: its architecture must stay the bundled one's."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from audio2blendshape.training.checkpoint import build_model, load_default_checkpoint
from audio2blendshape.training.config import load_config
from audio2blendshape.training.warm_start import architecture_mismatch

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "finetune.toml"


def test_the_finetune_config_builds_the_bundled_models_architecture() -> None:
    config = load_config(CONFIG)
    bundled = load_default_checkpoint()
    assert config.train.init_from == "default"
    # Everything but dropout (no weights; a few minutes of capture may want more of it than the bundle had).
    assert dataclasses.replace(config.frame, dropout=bundled.config.frame.dropout) == bundled.config.frame
    assert architecture_mismatch(bundled.model, build_model(config, len(bundled.names))) == ""
