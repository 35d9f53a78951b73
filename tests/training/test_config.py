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


def test_a_config_says_only_what_it_changes_from_its_base(tmp_path: Path):
    (tmp_path / "first.toml").write_text("[train]\nlr = 1e-2\nmax_steps = 7\n[frame]\nd_model = 96\n")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "second.toml").write_text('base = "../first.toml"\n[train]\nlr = 5e-3\n')
    (tmp_path / "third.toml").write_text('base = "runs/second.toml"\n[data]\nwindow_frames = 200\n')
    config = load_config(tmp_path / "third.toml", ["train.max_steps=9"])
    assert (config.train.lr, config.train.max_steps) == (5e-3, 9)
    assert config.frame.d_model == 96 and config.data.window_frames == 200
    assert config.train.batch_size == load_config().train.batch_size  # set nowhere: the default


def test_bad_bases_name_the_file(tmp_path: Path):
    path = tmp_path / "run.toml"
    for text, message in [
        ("base = 3\n", r"run\.toml: base must name a TOML file"),
        ('base = "gone.toml"\n', r"run\.toml: base 'gone\.toml' is not a file"),
        ('base = "run.toml"\n', r"run\.toml: base 'run\.toml' leads back to itself"),
    ]:
        path.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_config(path)
    (tmp_path / "other.toml").write_text('base = "run.toml"\n')
    path.write_text('base = "other.toml"\n')
    with pytest.raises(ConfigError, match=r"other\.toml: base 'run\.toml' leads back"):
        load_config(path)
    (tmp_path / "other.toml").write_text("[train]\nlearning_rate = 0.1\n")
    with pytest.raises(
        ConfigError, match=r"run\.toml \(over .*other\.toml\)\.train: unknown key 'learning_rate'"
    ):
        load_config(path)


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[2] / "configs").glob("*.toml")), ids=str)
def test_every_shipped_config_loads(path: Path):
    assert load_config(path).train.max_steps > 0
