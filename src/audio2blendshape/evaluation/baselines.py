"""Baseline rows for ``evaluate``: what a model must beat.

* mean pose: every frame is the train split's mean curve values;
* energy envelope: the mean pose with jawOpen driven by smoothed loudness, scaled to the train split's
  jawOpen range — a mouth that flaps with the volume, as the simplest lip-sync tools do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import audio2blendshape.data.corpus as corpus
from audio2blendshape.audio.constants import HOP_LENGTH, N_FFT
from audio2blendshape.data.corpus import CorpusError
from audio2blendshape.names import Rig

ENVELOPE_RANGE_DB = 30.0  # the energy mouth opens over this many dB below the utterance's loud level
ENVELOPE_SMOOTH = 3  # frames of the box filter, applied twice (a 50 ms triangle)
JAW_PERCENTILES = (1.0, 99.0)  # the train split's jawOpen "range", robust to stray frames
# A row's animate: audio -> (weights, their column names; None: the dataset's names in order)
Animate = Callable[[np.ndarray], tuple[np.ndarray, Sequence[str] | None]]


def load_label_curves(root: Path, record: dict[str, Any], names: Sequence[str]) -> np.ndarray:
    curves = corpus.load_curves(root, record)
    if curves.shape[1] != len(names):
        where = f"{root / record['curves']}: {curves.shape[1]} columns"
        raise CorpusError(f"{where} but names.txt lists {len(names)} names")
    return curves


def energy_envelope(audio: np.ndarray) -> np.ndarray:
    """Smoothed loudness of 16 kHz ``audio (n,)`` per 10 ms frame: ``(n // 160,)`` in [0, 1].

    Frame ``i`` is the RMS over samples ``[160 i - 200, 160 i + 200)`` (the log-mel frame's span) in dB,
    mapped linearly from ``ENVELOPE_RANGE_DB`` below the utterance's 95th-percentile level (0) up to that
    level (1), so the figure does not depend on the recording's gain; then a 50 ms triangle smooths it.
    """
    frames = audio.shape[0] // HOP_LENGTH
    padded = np.pad(audio.astype(np.float64), (N_FFT // 2, N_FFT // 2))
    energy = np.concatenate([[0.0], np.cumsum(padded**2)])
    starts = np.arange(frames) * HOP_LENGTH
    level = 10.0 * np.log10((energy[starts + N_FFT] - energy[starts]) / N_FFT + 1e-10)
    if frames == 0:
        return level
    loud = np.percentile(level, 95)
    envelope = np.clip((level - (loud - ENVELOPE_RANGE_DB)) / ENVELOPE_RANGE_DB, 0.0, 1.0)
    kernel = np.ones(ENVELOPE_SMOOTH) / ENVELOPE_SMOOTH
    for _ in range(2):
        padded_env = np.pad(envelope, ENVELOPE_SMOOTH // 2, mode="edge")
        envelope = np.convolve(padded_env, kernel, mode="valid")
    return envelope


def train_statistics(root: Path, records: Sequence[dict[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    """Mean pose ``(K,)`` of the train split's curves and its jawOpen percentiles (None without jawOpen).

    Streams the curves (sums and a 0.001-wide histogram of jawOpen), so any corpus size fits in memory.
    """
    total, frames = np.zeros(len(names)), 0
    jaw = Rig(tuple(names)).get("jawOpen")
    histogram = np.zeros(1000)
    for record in records:
        curves = load_label_curves(root, record, names)
        total += curves.sum(axis=0, dtype=np.float64)
        frames += curves.shape[0]
        if jaw is not None:
            histogram += np.histogram(np.clip(curves[:, jaw], 0, 1), bins=1000, range=(0.0, 1.0))[0]
    cumulative = np.cumsum(histogram) / max(histogram.sum(), 1.0)
    jaw_range = None
    if jaw is not None and frames:
        jaw_range = tuple(float(np.searchsorted(cumulative, p / 100.0) + 0.5) / 1000 for p in JAW_PERCENTILES)
    return {"mean": (total / max(frames, 1)).astype(np.float32), "jaw_range": jaw_range, "frames": frames}


def baseline_rows(
    stats: dict[str, Any], names: tuple[str, ...], notes: list[str]
) -> list[tuple[str, Animate]]:
    mean: np.ndarray = stats["mean"]

    def mean_pose(audio: np.ndarray) -> tuple[np.ndarray, Sequence[str]]:
        return np.repeat(mean[None, :], audio.shape[0] // HOP_LENGTH, axis=0), names

    out: list[tuple[str, Animate]] = [("mean pose", mean_pose)]
    jaw = Rig(names).get("jawOpen")
    if jaw is None or stats["jaw_range"] is None:
        notes.append("energy-envelope baseline skipped: the rig has no jawOpen")
        return out
    low, high = stats["jaw_range"]

    def energy(audio: np.ndarray) -> tuple[np.ndarray, Sequence[str]]:
        weights, _ = mean_pose(audio)
        weights[:, jaw] = low + (high - low) * energy_envelope(audio)
        return weights, names

    return [*out, ("energy envelope", energy)]


# ---------------------------------------------------------------------------------------------- scoring
