"""Generated toy speech with known mouth curves: training data that needs no files at all.

Each window is a chain of segments — vowels (harmonics of a pitch shaped by two formants), bilabial
closures with a release burst, fricatives (high-passed noise) and pauses — rendered to audio and passed
through the real feature pipeline. The curves follow the segments the way a face would: a vowel's
openness (its first formant) opens the jaw, its rounding (a low second formant) puckers and funnels,
closures press the lips together, pauses return to neutral. The relation is learnable from the mel
alone, which makes this a fast, honest smoke test of training; the eSpeak-based corpus (`data synth`)
is the real training data.
"""

from __future__ import annotations

import numpy as np
import torch

from audio2blendshape.audio.constants import HOP_LENGTH, SAMPLE_RATE
from audio2blendshape.data.windows import TensorWindows
from audio2blendshape.models.features import log_mel_from_waveform
from audio2blendshape.names import ARKIT, ARKIT_NAMES

_KINDS = ("vowel", "closure", "fricative", "pause")
_KIND_P = (0.5, 0.15, 0.15, 0.2)
_DURATION_MS = {"vowel": (80, 250), "closure": (50, 120), "fricative": (60, 150), "pause": (100, 400)}
_SMOOTH_FRAMES = 7  # moving average over curves: the face moves continuously between segments


def _fade(n: int) -> np.ndarray:
    ramp = min(n // 2, SAMPLE_RATE // 100)
    envelope = np.ones(n, dtype=np.float32)
    if ramp:
        edge = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp, dtype=np.float32))
        envelope[:ramp], envelope[-ramp:] = edge, edge[::-1]
    return envelope


def _vowel(rng: np.random.Generator, n: int, f0: float, openness: float, rounding: float) -> np.ndarray:
    f1, f2 = 300.0 + 500.0 * openness, 2200.0 - 1400.0 * rounding
    harmonics = np.arange(1, int(3500 / f0) + 1, dtype=np.float32) * f0
    gain = 1.0 / np.sqrt(np.arange(1, harmonics.size + 1, dtype=np.float32))
    gain *= 1.0 / (1.0 + ((harmonics - f1) / 90.0) ** 2) + 0.6 / (1.0 + ((harmonics - f2) / 130.0) ** 2)
    t = np.arange(n, dtype=np.float32) / SAMPLE_RATE
    phases = rng.uniform(0, 2 * np.pi, harmonics.size).astype(np.float32)
    wave = np.sin(2 * np.pi * t[:, None] * harmonics[None, :] + phases) @ gain
    return (wave / (np.abs(wave).max() + 1e-6) * rng.uniform(0.05, 0.3)).astype(np.float32)


def _segment(rng: np.random.Generator, kind: str, n: int, f0: float) -> tuple[np.ndarray, dict[str, float]]:
    """Audio ``(n,)`` of one segment and the pose (ARKit name -> weight) it carries."""
    if kind == "vowel":
        openness, rounding = rng.uniform(0, 1), rng.uniform(0, 1)
        spread = (1 - rounding) * (1 - openness)
        pose = {"jawOpen": 0.15 + 0.65 * openness, "mouthFunnel": 0.5 * rounding,
                "mouthPucker": 0.6 * rounding, "mouthStretchLeft": 0.4 * spread,
                "mouthStretchRight": 0.4 * spread, "mouthSmileLeft": 0.3 * spread,
                "mouthSmileRight": 0.3 * spread, "mouthLowerDownLeft": 0.3 * openness,
                "mouthLowerDownRight": 0.3 * openness}  # fmt: skip
        return _vowel(rng, n, f0, openness, rounding), pose
    noise = rng.standard_normal(n).astype(np.float32)
    if kind == "fricative":
        hiss = np.diff(noise, prepend=0.0).astype(np.float32) * rng.uniform(0.02, 0.06)
        pose = {"jawOpen": 0.1, "mouthUpperUpLeft": 0.3, "mouthUpperUpRight": 0.3, "mouthRollLower": 0.3}
        return hiss, pose
    if kind == "closure":
        audio = noise * 1e-4
        burst = min(n, SAMPLE_RATE // 100)
        audio[-burst:] = noise[-burst:] * rng.uniform(0.05, 0.15)
        pose = {"jawOpen": 0.05, "mouthClose": 0.5, "mouthPressLeft": 0.5, "mouthPressRight": 0.5,
                "mouthRollLower": 0.2}  # fmt: skip
        return audio, pose
    return noise * 1e-4, {}


def _render(rng: np.random.Generator, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """One window: audio ``(frames * 160,)`` and curves ``(frames, 52)`` at 100 frames/s."""
    samples = frames * HOP_LENGTH
    audio = np.zeros(samples, dtype=np.float32)
    curves = np.zeros((frames, len(ARKIT_NAMES)), dtype=np.float32)
    f0 = rng.uniform(90, 260)
    start = 0
    while start < samples:
        kind = _KINDS[rng.choice(len(_KINDS), p=_KIND_P)]
        low, high = _DURATION_MS[kind]
        n = min(int(rng.uniform(low, high) * SAMPLE_RATE / 1000), samples - start)
        wave, pose = _segment(rng, kind, n, f0 * rng.uniform(0.9, 1.1))
        audio[start : start + n] = wave * _fade(n)
        first, last = start // HOP_LENGTH, (start + n + HOP_LENGTH - 1) // HOP_LENGTH
        for name, value in pose.items():
            curves[first:last, ARKIT.index(name)] = value
        start += n
    kernel = np.ones(_SMOOTH_FRAMES, dtype=np.float32) / _SMOOTH_FRAMES
    padded = np.pad(curves, ((_SMOOTH_FRAMES // 2, _SMOOTH_FRAMES // 2), (0, 0)), mode="edge")
    smooth = np.stack([np.convolve(padded[:, k], kernel, mode="valid") for k in range(curves.shape[1])], 1)
    return audio, np.clip(smooth, 0.0, 1.0).astype(np.float32)


def synthetic_windows(count: int, seed: int, window_frames: int = 300) -> TensorWindows:
    """``count`` windows: mel ``(count, T, 80)`` and curves ``(count, T, 52)`` with T = window_frames."""
    if count <= 0:
        raise ValueError(f"need at least one window, got {count}")
    rng = np.random.default_rng(seed)
    rendered = [_render(rng, window_frames) for _ in range(count)]
    waves = torch.from_numpy(np.stack([audio for audio, _ in rendered]))
    mel = torch.cat([log_mel_from_waveform(chunk) for chunk in waves.split(64)])
    curves = torch.from_numpy(np.stack([c for _, c in rendered]))
    return TensorWindows(mel, curves, ARKIT_NAMES)
