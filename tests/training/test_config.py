import math
from pathlib import Path

import pytest

from audio2blendshape.training.config import ConfigError, config_from_dict, config_to_dict, load_config


def test_defaults_are_the_seeds():
    config = load_config()
    assert (config.loss.mse, config.loss.l1, config.loss.perceptual) == (1.0, 0.1, 0.5)
    assert config.train.grad_clip == 1.0 and config.train.grad_warn_norm == 10.0
    assert config.train.batch_size == 16 and config.data.window_frames == 300
    assert config.simplified.d_model == 256 and config.model.kind == "simplified"


def test_toml_then_overrides(tmp_path: Path):
    path = tmp_path / "run.toml"
    path.write_text('[train]\nlr = 1e-2\nmax_steps = 7\n[data]\nsource = "synthetic"\n')
    config = load_config(path, ["train.lr=3e-4", "train.grad_clip=inf", "simplified.positional=false"])
    assert config.train.lr == 3e-4 and config.train.max_steps == 7
    assert math.isinf(config.train.grad_clip) and config.simplified.positional is False
    assert config_from_dict(config_to_dict(config)) == config


def test_unknown_keys_and_bad_values_name_the_file(tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text("[train]\nlearning_rate = 0.1\n")
    with pytest.raises(ConfigError, match=r"bad\.toml.*train: unknown key 'learning_rate'"):
        load_config(path)
    path.write_text("[trainer]\nlr = 0.1\n")
    with pytest.raises(ConfigError, match="unknown key 'trainer'"):
        load_config(path)
    path.write_text('[train]\nmax_steps = "many"\n')
    with pytest.raises(ConfigError, match=r"train\.max_steps: expected int"):
        load_config(path)
    path.write_text("[train\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="max_steps must be positive"):
        load_config(None, ["train.max_steps=0"])
    path.write_text("[data]\nfeature_warp = 0.7\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: data\.feature_warp must be in \[0, 0\.5\)"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"expected section\.key=value"):
        load_config(None, ["train.lr"])
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
