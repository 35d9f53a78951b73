"""Decoding audio to 16 kHz mono float32 samples, and the checks every reader makes.

Anything libsndfile reads (WAV, FLAC, OGG, MP3) is decoded, downmixed by averaging the channels and resampled
with soxr (HQ). numpy only: the runtime deploys this module without torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import soundfile
import soxr

from audio2blendshape.audio.constants import SAMPLE_RATE

# A path, or samples (n,) / (n, channels): numpy arrays, or anything np.asarray takes (a CPU torch tensor).
AudioInput: TypeAlias = "str | Path | np.ndarray | Any"


class AudioError(ValueError):
    """Audio that cannot be used, with the file (or 'array') named in the message."""


def check_audio_file(path: str | Path) -> Path:
    """The path, after the checks every reader makes first: it exists and is not empty."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: the file is empty (0 bytes)")
    return path


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read WAV/FLAC/OGG/MP3 (anything libsndfile reads), downmix to mono, resample.

    Returns float32 samples of shape ``(n,)`` at ``sample_rate``.
    """
    path = check_audio_file(path)
    try:
        data, file_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        raise AudioError(f"{path}: not a readable audio file ({error})") from error
    return prepare_waveform(data, file_rate, str(path), sample_rate)


def prepare_waveform(
    samples: np.ndarray, rate: int, source: str = "array", sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """Validate, downmix ``(n,)`` or ``(n, channels)`` samples to mono and resample to ``sample_rate``."""
    samples = np.asarray(samples)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    elif samples.ndim != 1:
        raise AudioError(f"{source}: expected samples of shape (n,) or (n, channels), got {samples.shape}")
    if samples.size == 0:
        raise AudioError(f"{source}: the audio holds no samples")
    samples = samples.astype(np.float32, copy=False)
    bad = ~np.isfinite(samples)
    if bad.any():
        first = int(np.argmax(bad))
        raise AudioError(
            f"{source}: {int(bad.sum())} samples are NaN or infinite "
            f"(first at {first / rate:.3f} s, sample {first})"
        )
    if rate <= 0:
        raise AudioError(f"{source}: invalid sample rate {rate}")
    if rate != sample_rate:
        samples = soxr.resample(samples, rate, sample_rate, quality="HQ").astype(np.float32, copy=False)
    return np.ascontiguousarray(samples)


def require_signal(samples: np.ndarray, source: str) -> None:
    """Reject digital silence where a clip must carry speech (training data, alignment)."""
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak == 0.0:
        raise AudioError(f"{source}: the audio is silent (every sample is zero)")
