"""Idle layer: blink statistics, gaze, switches, determinism and streaming equivalence."""

from __future__ import annotations

import numpy as np
import pytest

from audio2blendshape.names import ARKIT_NAMES
from audio2blendshape.runtime.idle import (
    EYE_COLUMNS,
    IdleConfig,
    IdleLayer,
    apply_idle,
    idle_step,
    initial_state,
)

COL = {n: i for i, n in enumerate(ARKIT_NAMES)}
BLINK = [COL["eyeBlinkLeft"], COL["eyeBlinkRight"]]
LOOK = [i for i, n in enumerate(ARKIT_NAMES) if n.startswith("eyeLook")]


def runs(active: np.ndarray) -> list[int]:
    """Lengths of the runs of True in a boolean array."""
    edges = np.diff(np.concatenate([[0], active.astype(int), [0]]))
    return list(np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1))


def test_deterministic_for_a_seed() -> None:
    zeros = np.zeros((3000, 52), np.float32)
    a = apply_idle(zeros, 100.0, seed=4)
    assert np.array_equal(a, apply_idle(zeros, 100.0, seed=4))
    assert not np.array_equal(a, apply_idle(zeros, 100.0, seed=5))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_blink_rate_and_duration(seed: int) -> None:
    minutes = 10
    curves = apply_idle(np.zeros((minutes * 60 * 100, 52), np.float32), 100.0, seed=seed)
    left, right = curves[:, BLINK[0]], curves[:, BLINK[1]]
    assert np.array_equal(left, right), "both eyes blink together"
    blinks = runs(left > 0.5)
    assert 15 <= len(blinks) / minutes <= 25
    assert left.max() >= 0.9  # a blink closes the lids
    # At 1 kHz the support of each blink is its duration: 100-300 ms.
    fine = apply_idle(np.zeros((120_000, 52), np.float32), 1000.0, seed=seed)[:, BLINK[0]]
    lengths = runs(fine > 0)
    assert lengths and all(99 <= n <= 301 for n in lengths), lengths


def test_small_eye_movements() -> None:
    config = IdleConfig()
    curves = apply_idle(np.zeros((6000, 52), np.float32), 100.0, seed=7)
    look = curves[:, LOOK]
    assert 0.02 < look.max() <= config.gaze_max
    changes = np.flatnonzero(np.abs(np.diff(look, axis=0)).max(axis=1) > 1e-6)
    assert len(changes) > 10  # the gaze moves repeatedly within a minute
    # The two eyes turn the same way: the left eye looking out goes with the right eye looking in.
    out_left, in_right = curves[:, COL["eyeLookOutLeft"]], curves[:, COL["eyeLookInRight"]]
    assert np.allclose(out_left, in_right)


def test_switches_leave_other_columns_alone() -> None:
    rng = np.random.default_rng(0)
    curves = rng.uniform(0.0, 1.0, size=(2000, 52)).astype(np.float32)
    others = np.setdiff1d(np.arange(52), EYE_COLUMNS)
    full = apply_idle(curves, 100.0, seed=1)
    assert np.array_equal(full[:, others], curves[:, others])
    assert full.min() >= 0.0 and full.max() <= 1.0
    no_blinks = apply_idle(curves, 100.0, seed=1, blinks=False)
    assert np.array_equal(no_blinks[:, BLINK], curves[:, BLINK])
    assert not np.array_equal(no_blinks[:, LOOK], curves[:, LOOK])
    still = apply_idle(curves, 100.0, seed=1, eye_movement=False)
    assert np.array_equal(still[:, LOOK], curves[:, LOOK])
    assert not np.array_equal(still[:, BLINK], curves[:, BLINK])
    assert np.array_equal(apply_idle(curves, 100.0, seed=1, blinks=False, eye_movement=False), curves)


@pytest.mark.parametrize("fps", [100.0, 30.0, 60.0])
def test_frame_by_frame_equals_whole_sequence(fps: float) -> None:
    n = int(40 * fps)
    whole = apply_idle(np.zeros((n, 52), np.float32), fps, seed=11)
    state = initial_state(11)
    rows = []
    for frame in range(n):
        state, values = idle_step(state, frame, fps)
        rows.append(values)
    assert np.allclose(np.array(rows), whole[:, EYE_COLUMNS], atol=1e-6)
    layer = IdleLayer(fps, seed=11)
    sizes = np.random.default_rng(0).integers(1, 50, size=n)
    chunks, start = [], 0
    for size in sizes:
        if start >= n:
            break
        chunks.append(layer.process(np.zeros((min(size, n - start), 52), np.float32)))
        start += len(chunks[-1])
    assert np.array_equal(np.concatenate(chunks), whole)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match=r"\(T, 52\)"):
        apply_idle(np.zeros((10, 51)), 100.0)
    with pytest.raises(ValueError, match="fps"):
        apply_idle(np.zeros((10, 52)), 0.0)
    state, _ = idle_step(initial_state(0), 10, 100.0)
    with pytest.raises(ValueError, match="before the last one"):
        idle_step(state, 9, 100.0)
