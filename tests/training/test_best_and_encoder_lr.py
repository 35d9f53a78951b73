"""train.keep_best (best.safetensors at the lowest validation loss) and train.encoder_lr_scale."""

from pathlib import Path

import pytest
import torch

from audio2blendshape.training.checkpoint import build_model, load_checkpoint
from audio2blendshape.training.config import load_config
from audio2blendshape.training.loop import BEST_NAME, BestKeeper, train
from audio2blendshape.training.metrics_log import read_metrics
from audio2blendshape.typed_config import ConfigError

TINY_FRAME = ["model.kind='frame'", "frame.d_model=16", "frame.conv_layers=1", "frame.d_attention=8",
              "frame.decoder_hidden=8", "data.window_frames=50", "data.train_windows=8",
              "data.val_windows=4", "train.batch_size=4", "train.warmup_steps=2", "train.progress=false",
              "train.lr=3e-3"]  # fmt: skip


def tiny(out: Path, *overrides: str):
    return load_config(None, [*TINY_FRAME, f"train.out_dir={out.as_posix()!r}", *overrides])


def test_keep_best_holds_the_weights_of_the_lowest_validation_loss(tmp_path: Path):
    out = tmp_path / "run"
    config = tiny(out, "train.keep_best=true", "train.max_steps=12", "train.eval_every=2")
    train(config)
    evaluated = {r["step"]: r["val/total"] for r in read_metrics(out / "metrics.jsonl") if "val/total" in r}
    best_step = min(evaluated, key=evaluated.__getitem__)
    best = load_checkpoint(out / BEST_NAME)
    assert best.step == best_step and best.extra["val/total"] == pytest.approx(evaluated[best_step])
    assert best.optimizer_state is None  # weights only: it is for animating, not resuming

    # Resuming knows the stored loss: a worse model is not offered in its place.
    keeper = BestKeeper(out / BEST_NAME, enabled=True)
    assert keeper.loss == pytest.approx(evaluated[best_step])
    keeper.offer(best.model, config, best.names, 99, keeper.loss + 1.0)
    assert load_checkpoint(out / BEST_NAME).step == best_step


def test_without_keep_best_there_is_no_best_file(tmp_path: Path):
    train(tiny(tmp_path / "run", "train.max_steps=2", "train.eval_every=1"))
    assert not (tmp_path / "run" / BEST_NAME).exists()


def test_encoder_lr_scale_zero_freezes_the_encoder_and_trains_the_rest(tmp_path: Path):
    config = tiny(tmp_path / "run", "train.encoder_lr_scale=0.0", "train.max_steps=5")
    torch.manual_seed(config.train.seed)  # as train() does before building the model
    initial = build_model(config, 52).state_dict()
    train(config)
    trained = load_checkpoint(tmp_path / "run" / "last.safetensors").model.state_dict()
    encoder = [key for key in initial if key.startswith(("input_layer.", "conv_blocks."))]
    assert encoder and all(torch.equal(initial[key], trained[key]) for key in encoder)
    assert not torch.equal(initial["decoder.0.weight"], trained["decoder.0.weight"])


def test_negative_encoder_lr_scale_is_refused():
    with pytest.raises(ConfigError, match="encoder_lr_scale"):
        load_config(None, ["train.encoder_lr_scale=-1.0"])


def test_output_bias_from_data_starts_at_each_curves_mean_except_copied_rows(tmp_path: Path):
    from audio2blendshape.data.windows import collate
    from audio2blendshape.training.loop import load_datasets, start_output_bias

    config = tiny(tmp_path / "run", "train.output_bias_from_data=true")
    train_set, _ = load_datasets(config)
    model = build_model(config, len(train_set.names))
    before = model.decoder[3].bias.detach().clone()
    start_output_bias(model, train_set, keep=[0])
    curves = collate(train_set, torch.arange(len(train_set))).curves
    mean = curves.double().mean((0, 1))
    after = model.decoder[3].bias.detach()
    moving = [row for row in range(1, len(mean)) if 0.01 < mean[row] < 0.99]  # clear of the clamp
    assert moving and torch.allclose(torch.sigmoid(after[moving]).double(), mean[moving], atol=1e-5)
    assert after[0] == before[0]  # a row init_from copied keeps its weight
    assert torch.all(after >= -5.0)  # never starts inside the saturation hinge
