"""The real training entry point, run as a user runs it: in a subprocess, from a TOML file."""

import json
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from conftest import run_cli

from audio2blendshape.training.checkpoint import load_checkpoint
from audio2blendshape.training.metrics_log import read_metrics

TINY = """
[simplified]
d_model = 32
n_heads = 2
decoder_hidden = 16
dropout = {dropout}

[train]
out_dir = "{out}"
max_steps = {steps}
batch_size = 4
lr = {lr}
warmup_steps = 5
log_every = 1
eval_every = {eval_every}
checkpoint_every = {checkpoint_every}
progress = false

[data]
window_frames = 50
train_windows = {windows}
val_windows = 4
"""


def write_config(path: Path, out: Path, **overrides) -> Path:
    values = {"dropout": 0.0, "steps": 150, "lr": 3e-3, "eval_every": 50, "checkpoint_every": 50,
              "windows": 4, "out": out.as_posix()}  # fmt: skip
    values.update(overrides)
    path.write_text(TINY.format(**values))
    return path


def losses(out: Path) -> dict[int, float]:
    return {r["step"]: r["train/total"] for r in read_metrics(out / "metrics.jsonl") if "train/total" in r}


def test_train_entry_point_overfits_a_tiny_batch(tmp_path: Path):
    out = tmp_path / "run"
    result = run_cli("train", str(write_config(tmp_path / "tiny.toml", out)), "--no-report")
    assert result.returncode == 0, result.stderr
    curve = losses(out)
    assert curve[150] < curve[1] / 10, curve
    assert load_checkpoint(out / "last.safetensors").step == 150


def test_gradient_report_after_training_and_overrides(tmp_path: Path):
    out = tmp_path / "run"
    config = write_config(tmp_path / "tiny.toml", out, steps=3)
    result = run_cli("train", str(config), "--set", "train.max_steps=2", "--set", "train.grad_clip=inf")
    assert result.returncode == 0, result.stderr
    assert max(losses(out)) == 2
    assert "decoder.6.weight" in result.stdout and "check_gradients findings" in result.stdout
    assert (out / "gradient_flow.png").exists()


def _wait_for_checkpoint(process: subprocess.Popen, path: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, "training ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.01)


def test_resume_after_a_kill_gives_the_same_losses(tmp_path: Path):
    settings = {
        "dropout": 0.2,
        "steps": 60,
        "lr": 1e-3,
        "checkpoint_every": 5,
        "eval_every": 20,
        "windows": 16,
    }
    reference = tmp_path / "reference"
    result = run_cli("train", str(write_config(tmp_path / "a.toml", reference, **settings)), "--no-report")
    assert result.returncode == 0, result.stderr

    killed = tmp_path / "killed"
    config = write_config(tmp_path / "b.toml", killed, **settings)
    command = [sys.executable, "-m", "audio2blendshape", "train", str(config), "--no-report"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_checkpoint(process, killed / "last.safetensors")
    process.send_signal(signal.SIGKILL)
    process.wait()
    interrupted_at = load_checkpoint(killed / "last.safetensors").step
    assert interrupted_at < 60

    result = run_cli("train", str(config), "--no-report")
    assert result.returncode == 0, result.stderr
    assert losses(killed) == losses(reference)  # every step, bit for bit
    records = read_metrics(killed / "metrics.jsonl")
    assert [r["step"] for r in records if "train/total" in r] == list(range(1, 61))


def test_resume_refuses_a_different_run(tmp_path: Path):
    out = tmp_path / "run"
    config = write_config(tmp_path / "a.toml", out, steps=2)
    assert run_cli("train", str(config), "--no-report").returncode == 0
    result = run_cli("train", str(config), "--no-report", "--set", "train.lr=0.5")
    assert result.returncode == 2
    assert "train.lr" in result.stderr and "last.safetensors" in result.stderr


def test_bad_config_is_a_clear_error(tmp_path: Path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nlearning_rate = 1\n")
    result = run_cli("train", str(bad))
    assert result.returncode == 2
    assert "bad.toml" in result.stderr and "unknown key 'learning_rate'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("world", [2])
def test_torchrun_ddp_keeps_ranks_identical_and_resumes(tmp_path: Path, world: int):
    settings = {"dropout": 0.1, "lr": 1e-3, "checkpoint_every": 4, "eval_every": 8, "windows": 16}

    def torchrun(config: Path) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world}",
                   "-m", "audio2blendshape", "train", str(config), "--no-report"]  # fmt: skip
        env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
        result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
        if "Signal 6 (SIGABRT)" in result.stderr:
            # Once in a clean-clone CI run (and in none of 16 runs since) a rank died of SIGABRT inside
            # gloo; the launch is retried once, loudly. A second abort, or any other failure, fails.
            warnings.warn(f"torchrun aborted, retrying once:\n{result.stderr[-4000:]}", stacklevel=1)
            result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
        return result

    full = tmp_path / "full"
    result = torchrun(write_config(tmp_path / "full.toml", full, steps=8, **settings))
    assert result.returncode == 0, result.stderr[-12000:]
    records = read_metrics(full / "metrics.jsonl")
    sync = [r["ranks_in_sync"] for r in records if "ranks_in_sync" in r]
    assert sync == [True, True]
    assert sorted(p.name for p in full.iterdir()) == ["last.safetensors", "metrics.jsonl"]  # rank 0 only

    split = tmp_path / "split"
    result = torchrun(write_config(tmp_path / "s.toml", split, steps=8, **settings))
    assert result.returncode == 0, result.stderr[-12000:]
    # A second launch with a larger max_steps resumes from step 8 on both ranks.
    result = torchrun(write_config(tmp_path / "s.toml", split, steps=12, **settings))
    assert result.returncode == 0, result.stderr[-12000:]
    assert load_checkpoint(split / "last.safetensors").step == 12
    assert [r["ranks_in_sync"] for r in read_metrics(split / "metrics.jsonl") if "ranks_in_sync" in r] == [
        True, True, True]  # fmt: skip
    assert {k: v for k, v in losses(split).items() if k <= 8} == losses(full)
    json.dumps(records)


def test_frame_model_trains_through_the_same_loop(tmp_path: Path):
    config = write_config(tmp_path / "frame.toml", tmp_path / "run", steps=120, lr=3e-3)
    with open(config, "a") as handle:
        handle.write('\n[model]\nkind = "frame"\n[frame]\nd_model = 16\nconv_layers = 1\nd_attention = 8\n'
                     "n_heads = 2\ndecoder_hidden = 8\ndropout = 0.0\n[loss]\nvelocity = 1.0\n")  # fmt: skip
    result = run_cli("train", str(config), "--no-report")
    assert result.returncode == 0, result.stderr
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert "train/velocity" in records[0]
    curve = losses(tmp_path / "run")
    assert curve[120] < curve[1] / 5, curve
    checkpoint = load_checkpoint(tmp_path / "run" / "last.safetensors")
    assert checkpoint.config.model.kind == "frame" and type(checkpoint.model).__name__ == "FrameModel"

    # Warped and tilted features: the same first batch scores differently, and the model still learns.
    augmented = tmp_path / "augmented"
    result = run_cli("train", str(config), "--no-report", f"--set=train.out_dir={augmented.as_posix()!r}",
                     "--set=data.feature_warp=0.1", "--set=data.feature_tilt=0.25")  # fmt: skip
    assert result.returncode == 0, result.stderr
    warped = losses(augmented)
    assert warped[1] != curve[1] and warped[120] < warped[1] / 5, warped


def test_init_from_starts_a_new_run_from_trained_weights(tmp_path: Path):
    first = tmp_path / "first"
    assert (
        run_cli("train", str(write_config(tmp_path / "a.toml", first, steps=60)), "--no-report").returncode
        == 0
    )
    second = tmp_path / "second"
    config = write_config(tmp_path / "b.toml", second, steps=1, lr=1e-12)
    result = run_cli(
        "train", str(config), "--no-report", f"--set=train.init_from={first / 'last.safetensors'}"
    )
    assert result.returncode == 0, result.stderr
    assert losses(second)[1] < losses(first)[1] / 5  # the same first batch, scored by trained weights
    result = run_cli("train", str(config), "--no-report", "--set=train.init_from=missing.safetensors",
                     f"--set=train.out_dir={tmp_path / 'third'}")  # fmt: skip
    assert result.returncode == 2 and "missing.safetensors" in result.stderr


def test_init_from_another_rig_keeps_the_encoder_and_shared_shapes(tmp_path: Path):
    import torch

    from audio2blendshape.names import ARKIT_NAMES
    from audio2blendshape.training.checkpoint import build_model, save_checkpoint
    from audio2blendshape.training.config import load_config
    from audio2blendshape.training.loop import initialise_from

    config = load_config(None, ["model.kind='frame'", "frame.d_model=16", "frame.conv_layers=1",
                                "frame.d_attention=8", "frame.decoder_hidden=8"])  # fmt: skip
    torch.manual_seed(0)
    source = build_model(config, len(ARKIT_NAMES))
    path = save_checkpoint(tmp_path / "arkit.safetensors", source, config, ARKIT_NAMES, 10)
    rig = ("jawOpen", "custom_brow", "MOUTHCLOSE")
    torch.manual_seed(1)
    model = build_model(config, len(rig))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    initialise_from(path, model, rig)
    after, original = model.state_dict(), source.state_dict()
    per_shape = model.per_shape_parameters()
    assert per_shape == {"blendshape_queries", "decoder.3.weight", "decoder.3.bias"}
    for key in after.keys() - per_shape:
        assert torch.equal(after[key], original[key]), key  # the rig-free encoder comes across whole
    jaw, close = ARKIT_NAMES.index("jawOpen"), ARKIT_NAMES.index("mouthClose")
    for key in per_shape:
        assert torch.equal(after[key][0], original[key][jaw])
        assert torch.equal(after[key][2], original[key][close])
        assert torch.equal(after[key][1], before[key][1])  # a name ARKit lacks starts fresh
