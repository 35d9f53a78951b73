"""FrameModel on real captured speech with another rig: FACEGOOD's 116 shapes, Mandarin, 30 fps.

Imports ``../shared/data/facegood`` (train 1114_2_01..04, validate 1114_2_05), trains FrameModel with
``configs/facegood.toml`` (or each ``--config``) through the ordinary ``train`` command, and scores the
validation recording at the rig's own 30 fps beside three baselines:

* mean pose: the train recordings' mean of every curve;
* ridge regression on stacked log-mel frames (13 frames, ±60 ms, 1040 features) with the ridge strength
  chosen on 1114_2_04 after fitting 01..03, then refitted on all four;
* the same ridge on the bundled model's frozen audio encoder (``FrameModel.encode``, 9 steps, ±160 ms,
  1728 features): how much a linear read-out of what it learned from speech tells about this rig.

Prints a table of MSE and mean per-channel Pearson correlation (over channels that move in the labels).

    python bench/training/bench_facegood.py [--work /tmp/facegood-bench] [--steps N] [--config C.toml ...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import audio2blendshape.data.corpus as corpus
from audio2blendshape.evaluation.lipsync import CurveErrors
from audio2blendshape.models.features import log_mel_spectrogram
from audio2blendshape.models.frame import FrameModel
from audio2blendshape.runtime.animator import Animator
from audio2blendshape.training.checkpoint import load_checkpoint, load_default_checkpoint

REPO = Path(__file__).resolve().parents[2]
FACEGOOD = REPO.parent / "shared" / "data" / "facegood"
OFFSETS = np.arange(-6, 7, 1)  # mel frames stacked around each label frame (10 ms apart)
ENCODER_OFFSETS = np.arange(-8, 9, 2)  # encoder steps stacked around each label frame (20 ms apart)
RIDGE = (0.1, 1.0, 10.0, 100.0, 1000.0, 1e4, 1e5)


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "audio2blendshape", *args], check=True)


def stacked_features(audio: np.ndarray, frames: int, fps: float) -> np.ndarray:
    """Log-mel frames around each label frame ``i`` (at ``i / fps``): ``(frames, len(OFFSETS) * 80)``."""
    mel = log_mel_spectrogram(audio).numpy()
    centres = np.round(np.arange(frames) / fps * 100).astype(int)
    index = np.clip(centres[:, None] + OFFSETS[None, :], 0, len(mel) - 1)
    return mel[index].reshape(frames, -1)


def encoder_features(model: FrameModel, audio: np.ndarray, frames: int, fps: float) -> np.ndarray:
    """The encoder's steps around each label frame: ``(frames, len(ENCODER_OFFSETS) * d_model)``."""
    with torch.no_grad():
        encoded = model.encode(log_mel_spectrogram(audio)[None])[0].numpy()
    centres = np.round(np.arange(frames) / fps * model.steps_per_second).astype(int)
    index = np.clip(centres[:, None] + ENCODER_OFFSETS[None, :], 0, len(encoded) - 1)
    return encoded[index].reshape(frames, -1)


def ridge_row(
    features: dict[str, np.ndarray], curves: dict[str, np.ndarray], train: list[Any], val: Any
) -> tuple[float, np.ndarray]:
    """Strength chosen on the last train recording, fitted on the others, then refit on all: (λ, pred)."""
    inner, held = train[:-1], train[-1]
    x_inner = np.concatenate([features[r["id"]] for r in inner])
    y_inner = np.concatenate([curves[r["id"]] for r in inner])

    def held_out_mse(strength: float) -> float:
        predicted = predict_ridge(fit_ridge(x_inner, y_inner, strength), features[held["id"]])
        return score(predicted, curves[held["id"]])[0]

    chosen = min(RIDGE, key=held_out_mse)
    x_train = np.concatenate([features[r["id"]] for r in train])
    y_train = np.concatenate([curves[r["id"]] for r in train])
    return chosen, predict_ridge(fit_ridge(x_train, y_train, chosen), features[val["id"]])


def fit_ridge(x: np.ndarray, y: np.ndarray, strength: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean, scale = x.mean(0), x.std(0) + 1e-6
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    penalty = strength * np.eye(z.shape[1])
    penalty[-1, -1] = 0.0
    weights = np.linalg.solve(z.T @ z + penalty, z.T @ y)
    return weights, mean, scale


def predict_ridge(model: tuple[np.ndarray, np.ndarray, np.ndarray], x: np.ndarray) -> np.ndarray:
    weights, mean, scale = model
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    return np.clip(z @ weights, 0.0, 1.0)


def score(predicted: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    errors = CurveErrors(target.shape[1])
    errors.add(predicted, target)
    result = errors.result({})
    return result["mse"], result["pearson"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--work", type=Path, default=Path("/tmp/facegood-bench"), help="dataset and run folder"
    )
    parser.add_argument("--steps", type=int, help="training steps (default: each config's max_steps)")
    parser.add_argument("--config", dest="configs", type=Path, action="append",
                        help="a config to train (repeatable; default: configs/facegood.toml)")  # fmt: skip
    args = parser.parse_args()
    configs = args.configs or [REPO / "configs" / "facegood.toml"]
    if not FACEGOOD.exists():
        sys.exit(f"{FACEGOOD} is absent: this benchmark needs ../shared beside the repository")
    data = args.work / "data"
    if not (data / "manifest.jsonl").exists():
        cli("data", "import", "rig", str(FACEGOOD), "--fps", "30", "--val", "1114_2_05", "--language", "zh",
            "--speaker", "facegood", "--out", str(data))  # fmt: skip
    minutes = {}
    for config in configs:
        started = time.perf_counter()
        out = args.work / config.stem
        overrides = [f"data.corpus_dir={data}", f"train.out_dir={out}", "train.progress=false"]
        overrides += [f"train.max_steps={args.steps}"] if args.steps else []
        cli("train", str(config), "--no-report", *(f"--set={o}" for o in overrides))
        minutes[config.stem] = (time.perf_counter() - started) / 60

    records = corpus.read_manifest(data)
    train = [r for r in records if r["split"] == "train"]
    (val,) = [r for r in records if r["split"] == "val"]
    curves = {r["id"]: corpus.load_curves(data, r) for r in records}
    audio = {r["id"]: corpus.load_utterance_audio(data, r) for r in records}
    features = {r["id"]: stacked_features(audio[r["id"]], len(curves[r["id"]]), r["fps"]) for r in records}
    bundled = load_default_checkpoint().model
    assert isinstance(bundled, FrameModel), "the bundled model is a FrameModel"
    encoded = {
        r["id"]: encoder_features(bundled, audio[r["id"]], len(curves[r["id"]]), r["fps"]) for r in records
    }
    target = curves[val["id"]]

    rows = {"mean pose (train)": np.repeat(np.concatenate([curves[r["id"]] for r in train]).mean(0)[None],
                                           len(target), 0)}  # fmt: skip
    chosen, predicted = ridge_row(features, curves, train, val)
    rows[f"ridge on stacked log-mel (lambda {chosen:g})"] = predicted
    chosen, predicted = ridge_row(encoded, curves, train, val)
    rows[f"ridge on the bundled encoder (lambda {chosen:g})"] = predicted
    frames = len(target)
    for config in configs:
        checkpoint = args.work / config.stem / "last.safetensors"
        loaded = load_checkpoint(checkpoint)
        animator = Animator(loaded.model, loaded.names, "cpu", str(checkpoint))
        animation = animator.animate(audio[val["id"]], fps=val["fps"], idle=False)
        frames = min(frames, len(animation.weights))
        rows[f"{config.stem} ({loaded.step} steps, {minutes[config.stem]:.1f} min)"] = animation.weights

    shape = f"{len(target)} frames at {val['fps']:g} fps, {target.shape[1]} shapes"
    print(f"FACEGOOD validation {val['id']}: {shape}")
    print(f"{'row':<48} {'MSE':>9} {'mean r':>8}")
    for name, predicted in rows.items():
        mse, r = score(predicted[:frames], target[:frames])
        print(f"{name:<48} {mse:>9.5f} {r:>8.3f}")


if __name__ == "__main__":
    main()
