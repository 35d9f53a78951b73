"""Log-mel features in numpy, whole-clip or incremental, Whisper-style (STFT and a Slaney mel filterbank).

Unlike Whisper, the log-mel is not normalised by each clip's loudest frame: that would make a frame depend on
audio far away and break streaming (a chunked stream must give the same features as the whole file), so a
fixed floor and affine scale are used instead (``audio.constants``).

Frame ``i`` is centred on sample ``160 i`` and covers samples ``[160 i - 200, 160 i + 200)``, zero-padded
before the start and after the end, so ``n`` samples give ``n // 160`` frames. A stream therefore knows
frame ``i`` for good once ``160 i + 200`` samples have arrived; only the frames whose windows reach past the
last sample wait for ``flush()``, where the end is zero-padded exactly as offline. ``models.features`` is the
torch twin (batched, on the training device); the two agree within about 1e-4 (float32 rounding in
near-silent bins).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np

from audio2blendshape.audio.constants import (
    HOP_LENGTH,
    LOG_FLOOR,
    LOG_OFFSET,
    LOG_SCALE,
    N_FFT,
    N_MELS,
    SAMPLE_RATE,
)

HALF_WINDOW = N_FFT // 2  # torch.stft(center=True) pads this many zeros at both ends

# block (n,) float32 -> features (F, 80), F = (n - N_FFT) // HOP_LENGTH + 1, for a block with no padding.
FramesFn = Callable[[np.ndarray], np.ndarray]


@cache
def mel_filters(sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """Slaney-normalised mel filterbank ``(n_mels, n_fft // 2 + 1)`` float32, as librosa's default."""

    def hz_to_mel(hz: np.ndarray) -> np.ndarray:
        # Slaney's scale: linear below 1 kHz, logarithmic above (librosa htk=False).
        mel = hz / (200.0 / 3)
        log_region = hz >= 1000.0
        mel[log_region] = 15.0 + np.log(hz[log_region] / 1000.0) / (np.log(6.4) / 27.0)
        return mel

    def mel_to_hz(mel: np.ndarray) -> np.ndarray:
        hz = mel * (200.0 / 3)
        log_region = mel >= 15.0
        hz[log_region] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel[log_region] - 15.0))
        return hz

    fft_freqs = np.linspace(0.0, sample_rate / 2, 1 + n_fft // 2)
    low, high = hz_to_mel(np.array([0.0, sample_rate / 2]))
    mel_points = np.linspace(low, high, n_mels + 2)
    hz_points = mel_to_hz(mel_points)
    widths = np.diff(hz_points)
    ramps = hz_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (hz_points[2:] - hz_points[:-2]))[:, None]  # Slaney area normalisation
    return weights.astype(np.float32)


@cache
def hann_window() -> np.ndarray:
    """Periodic Hann window ``(N_FFT,)`` float32, as ``torch.hann_window(N_FFT)``."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)


def frame_count(block_samples: int) -> int:
    """Whole analysis windows in an unpadded block of ``block_samples`` samples."""
    return 0 if block_samples < N_FFT else (block_samples - N_FFT) // HOP_LENGTH + 1


def log_mel_frames(block: np.ndarray) -> np.ndarray:
    """Features of every whole window in an unpadded block: ``(n,)`` -> float32 ``(frame_count(n), 80)``."""
    count = frame_count(len(block))
    if count == 0:
        return np.zeros((0, N_MELS), dtype=np.float32)
    starts = np.arange(count)[:, None] * HOP_LENGTH + np.arange(N_FFT)[None, :]
    windows = np.asarray(block, dtype=np.float32)[starts] * hann_window()
    spectrum = np.fft.rfft(windows, axis=-1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    mel = power @ mel_filters().T
    return ((np.log10(np.maximum(mel, LOG_FLOOR)) + LOG_OFFSET) / LOG_SCALE).astype(np.float32)


def log_mel(waveform: np.ndarray) -> np.ndarray:
    """Whole-clip features of 16 kHz mono samples: ``(n,)`` -> float32 ``(n // 160, 80)``."""
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim != 1:
        raise ValueError(f"log_mel: expected mono samples (n,), got shape {waveform.shape}")
    frames = waveform.shape[0] // HOP_LENGTH
    if frames == 0:
        raise ValueError(f"log_mel: audio of {waveform.shape[0]} samples is shorter than one 10 ms frame")
    padded = np.pad(waveform, (HALF_WINDOW, HALF_WINDOW))
    return log_mel_frames(padded)[:frames]


class StreamingLogMel:
    """Incremental log-mel: ``push`` 16 kHz samples, get each frame as soon as its window is complete.

    The concatenated output of ``push`` calls and ``flush`` equals ``log_mel`` of the concatenated input
    (exactly, with the same ``frames_fn``), whatever the chunk sizes. State: the samples not yet consumed
    (at most one window), the index of the next frame, and the samples seen.
    """

    def __init__(self, frames_fn: FramesFn = log_mel_frames) -> None:
        self.frames_fn = frames_fn
        self.samples_seen = 0  # 16 kHz samples pushed so far
        self.next_frame = 0  # index of the next frame to emit
        self.finished = False
        # Samples from 160 * next_frame - 200 on, with the leading zero padding of the stream's start.
        self._pending = np.zeros(HALF_WINDOW, dtype=np.float32)

    def push(self, samples: np.ndarray) -> np.ndarray:
        """New 16 kHz samples ``(n,)`` -> the frames they complete, float32 ``(f, 80)`` (f may be 0)."""
        if self.finished:
            raise RuntimeError("StreamingLogMel: push() after flush()")
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self.samples_seen += len(samples)
        self._pending = np.concatenate([self._pending, samples])
        return self._emit(frame_count(len(self._pending)))

    def flush(self) -> np.ndarray:
        """The frames left at the end of the stream (zero-padded as offline): float32 ``(f, 80)``."""
        if self.finished:
            return np.zeros((0, N_MELS), dtype=np.float32)
        self.finished = True
        remaining = self.samples_seen // HOP_LENGTH - self.next_frame
        if remaining <= 0:
            return np.zeros((0, N_MELS), dtype=np.float32)
        # Enough trailing zeros for the last frame's window: the offline STFT's end padding.
        self._pending = np.concatenate([self._pending, np.zeros(N_FFT, dtype=np.float32)])
        return self._emit(remaining)

    def _emit(self, count: int) -> np.ndarray:
        if count <= 0:
            return np.zeros((0, N_MELS), dtype=np.float32)
        block = self._pending[: (count - 1) * HOP_LENGTH + N_FFT]
        frames = self.frames_fn(block)
        self._pending = self._pending[count * HOP_LENGTH :]
        self.next_frame += count
        return frames
