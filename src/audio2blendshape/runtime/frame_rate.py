"""Output frame rate: model poses at their own time stamps -> frames at ``k / fps`` by linear interpolation.

Models emit poses on their own grid (FrameModel: 50 steps/s, step ``s`` at ``(2s + 0.5) / 100`` s; the
SimplifiedModel path: every few mel frames, frame ``i`` at ``i / 100`` s). An animation of ``duration``
seconds at ``fps`` has ``floor(duration * fps)`` frames, frame ``k`` at exactly ``k / fps`` s, so frame 0 is
the first audio sample and every frame lies inside the audio. Each frame is the linear interpolation of the
two poses around its time; before the first pose and after the last one the nearest pose is held (the
first FrameModel step is 5 ms after 0 and the last one lies within 35 ms of the end).
"""

from __future__ import annotations

import math

import numpy as np

# Durations come from sample counts (n / 16000), so duration * fps can land a hair below an integer,
# e.g. 4.8 s * 30 fps = 143.99999999999997; a frame that ends within this many frames still counts.
_FRAME_SLACK = 1e-6
# Frames interpolated at a time. Small enough that each block's float64 temporaries (~0.4 MB) stay in
# cache and come from the heap already mapped: at 16384 frames they were fresh mappings, and faulting
# them in was most of a 10-minute file's resampling time.
_BLOCK_FRAMES = 1024


def check_fps(fps: float) -> float:
    """``fps`` as a float, or a ValueError naming the bad value."""
    value = float(fps)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    return value


def frame_count(duration: float, fps: float) -> int:
    """Frames of an animation of ``duration`` seconds at ``fps``: ``floor(duration * fps)``."""
    if duration < 0:
        raise ValueError(f"duration must not be negative, got {duration}")
    return math.floor(duration * check_fps(fps) + _FRAME_SLACK)


def frame_times(first: int, count: int, fps: float) -> np.ndarray:
    """Times in seconds of frames ``first .. first + count - 1`` at ``fps``: float64 ``(count,)``."""
    return (first + np.arange(count, dtype=np.float64)) / check_fps(fps)


def interpolate(times: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Piecewise-linear values of ``values (S, K)`` known at increasing ``times (S,)``, read at ``at (N,)``.

    Returns float32 ``(N, K)``; outside ``[times[0], times[-1]]`` the end values are held. The same as
    ``np.interp`` per column, done for all columns at once.
    """
    times = np.asarray(times, dtype=np.float64)
    values = np.asarray(values)
    at = np.asarray(at, dtype=np.float64)
    if values.ndim != 2 or times.shape != (values.shape[0],):
        raise ValueError(f"interpolate: times {times.shape} do not match values {values.shape} (S, K)")
    if len(times) == 0:
        raise ValueError("interpolate: no poses to interpolate between")
    if len(times) > 1 and not np.all(np.diff(times) > 0):
        raise ValueError("interpolate: pose times must be strictly increasing")
    if len(times) == 1:
        return np.repeat(values.astype(np.float32), len(at), axis=0)
    clamped = np.clip(at, times[0], times[-1])
    right = np.clip(np.searchsorted(times, clamped, side="right"), 1, len(times) - 1)
    left = right - 1
    weight = ((clamped - times[left]) / (times[right] - times[left]))[:, None]
    low, high = values[left].astype(np.float64), values[right].astype(np.float64)
    return (low + (high - low) * weight).astype(np.float32)


def resample(times: np.ndarray, values: np.ndarray, duration: float, fps: float) -> np.ndarray:
    """Poses ``(S, K)`` at ``times (S,)`` -> float32 frames ``(floor(duration * fps), K)`` at ``k / fps``."""
    count = frame_count(duration, fps)
    out = np.empty((count, np.asarray(values).shape[-1]), dtype=np.float32)
    # In blocks: interpolation works in float64, and hours of frames at once would double peak memory.
    for first in range(0, count, _BLOCK_FRAMES):
        block = min(_BLOCK_FRAMES, count - first)
        out[first : first + block] = interpolate(times, values, frame_times(first, block, fps))
    return out
