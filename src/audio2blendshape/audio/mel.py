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

Audio at 44.1 or 48 kHz (any rate above 16 kHz with a whole number of samples per 10 ms) is featurised at its
own rate rather than resampled: a 25 ms window of that rate's samples, a 10 ms hop, and the same mel bands
evaluated at that rate's FFT bins (``mel_spec``). A resampler must buffer audio before it can filter it
(soxr HQ holds back 37 ms at 48 kHz), which a live stream cannot afford. The filterbank also carries the
HQ resampler's roll-off near 8 kHz, measured once per rate, so the features match those of the resampled
audio the models were trained on (within about 0.01 on average on speech with a wideband noise floor).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache

import numpy as np
import soxr

from audio2blendshape.audio.constants import (
    FRAMES_PER_SECOND,
    HOP_LENGTH,
    LOG_FLOOR,
    LOG_OFFSET,
    LOG_SCALE,
    N_FFT,
    N_MELS,
    SAMPLE_RATE,
)

HALF_WINDOW = N_FFT // 2  # torch.stft(center=True) pads this many zeros at both ends
PARALLEL_FRAMES = 512  # blocks of at least this many frames are featurised on two threads (5 s of audio)
FEATURE_BLOCK = 256  # windows featurised at a time, through scratch arrays reused call after call


@cache
def mel_filters(
    sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS, fmax: float | None = None
) -> np.ndarray:
    """Slaney-normalised mel filterbank ``(n_mels, n_fft // 2 + 1)`` float32, as librosa's default.

    The bands span 0 Hz to ``fmax`` (default: the Nyquist frequency of ``sample_rate``).
    """

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
    low, high = hz_to_mel(np.array([0.0, sample_rate / 2 if fmax is None else fmax]))
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
def hann_window(n_fft: int = N_FFT) -> np.ndarray:
    """Periodic Hann window ``(n_fft,)`` float32, as ``torch.hann_window(n_fft)``."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


MAX_NATIVE_RATE = 192_000  # Hz; above it (and at rates without whole 10 ms hops) audio is resampled
RESPONSE_SECONDS = 10  # white noise measured per rate for the resampler's roll-off (about 50 ms of work)
RESPONSE_FLAT_HZ = 6_000.0  # below it soxr HQ is flat to 0.01 dB: the measurement's noise is not used there


def featurised_natively(rate: int) -> bool:
    """Whether audio at ``rate`` Hz is featurised at its own rate (see the module docstring), not resampled.

    Rates above 16 kHz whose 10 ms hop is a whole number of samples: 24, 32, 44.1, 48, 96 kHz, not 22.05.
    """
    return SAMPLE_RATE < rate <= MAX_NATIVE_RATE and rate % FRAMES_PER_SECOND == 0


@dataclass(frozen=True, eq=False)
class MelSpec:
    """How frames are cut from audio at one rate: frame ``i`` covers ``[hop i - n_fft/2, hop i + n_fft/2)``"""

    rate: int  # Hz of the samples the frames are cut from
    hop: int  # samples per 10 ms
    n_fft: int  # samples per 25 ms window (even, so frames are centred on a sample)
    window: np.ndarray  # (n_fft,) float32 periodic Hann
    filters: np.ndarray  # (80, n_fft // 2 + 1) float32: mel bands up to 8 kHz, scaled to the 16 kHz features

    @property
    def half_window(self) -> int:
        """Zeros padded at each end of a clip, as ``torch.stft(center=True)``."""
        return self.n_fft // 2

    def frame_count(self, block_samples: int) -> int:
        """Whole analysis windows in an unpadded block of ``block_samples`` samples."""
        return 0 if block_samples < self.n_fft else (block_samples - self.n_fft) // self.hop + 1


@cache
def resampler_power_response(rate: int) -> np.ndarray:
    """Power gain ``(N_FFT // 2 + 1,)`` of soxr HQ from ``rate`` to 16 kHz at the 16 kHz FFT bins.

    Measured on seeded white noise (deterministic): the resampled noise's mean periodogram against the flat
    one an ideal low-pass would leave. 1 where soxr is flat; it falls to about 0.5 at 8 kHz.
    """
    noise = np.random.default_rng(0).standard_normal(RESPONSE_SECONDS * rate).astype(np.float32)
    down = soxr.resample(noise, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    count = (len(down) - N_FFT) // N_FFT
    windows = down[: count * N_FFT].reshape(count, N_FFT) * hann_window()
    power = (np.abs(np.fft.rfft(windows, axis=-1)) ** 2).mean(axis=0)
    flat = (SAMPLE_RATE / rate) * float(np.sum(hann_window().astype(np.float64) ** 2))
    smoothed = np.convolve(power / flat, np.ones(5) / 5, mode="same")  # averages the estimate's noise
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)
    return np.where(freqs < RESPONSE_FLAT_HZ, 1.0, np.minimum(smoothed, 1.0)).astype(np.float32)


@cache
def mel_spec(rate: int = SAMPLE_RATE) -> MelSpec:
    """The frame geometry and filterbank for audio at ``rate``: 16 kHz, or a rate featurised natively."""
    if rate == SAMPLE_RATE:
        return MelSpec(SAMPLE_RATE, HOP_LENGTH, N_FFT, hann_window(), mel_filters())
    if not featurised_natively(rate):
        raise ValueError(f"{rate} Hz audio is resampled to {SAMPLE_RATE} Hz before featurising")
    n_fft = 2 * round(N_FFT * rate / SAMPLE_RATE / 2)
    bands = mel_filters(rate, n_fft, N_MELS, fmax=SAMPLE_RATE / 2)
    # Power grows with the window's length squared (sums of n_fft samples): back to the 16 kHz scale.
    gain = (N_FFT / n_fft) ** 2 * np.interp(
        np.fft.rfftfreq(n_fft, 1.0 / rate),
        np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE),
        resampler_power_response(rate),
        right=0.0,
    )
    filters = (bands * gain[None, :]).astype(np.float32)
    return MelSpec(rate, rate // FRAMES_PER_SECOND, n_fft, hann_window(n_fft), filters)


def frame_count(block_samples: int) -> int:
    """Whole analysis windows in an unpadded block of ``block_samples`` 16 kHz samples."""
    return mel_spec().frame_count(block_samples)


def log_mel_frames(block: np.ndarray, spec: MelSpec | None = None) -> np.ndarray:
    """Features of every whole window in an unpadded block: ``(n,)`` -> float32 ``(frame_count(n), 80)``.

    ``spec``: the block's rate (default 16 kHz).
    """
    spec = spec or mel_spec()
    count = spec.frame_count(len(block))
    if count == 0:
        return np.zeros((0, N_MELS), dtype=np.float32)
    block = np.asarray(block, dtype=np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(block, spec.n_fft)[:: spec.hop][:count]
    if count < PARALLEL_FRAMES or _workers() is None:
        return _window_features(windows, spec)
    # numpy's FFT and ufuncs release the GIL: the two halves run on two cores. Rows are independent, so
    # the result is the one-thread result.
    halves = (windows[: count // 2], windows[count // 2 :])
    return np.concatenate(list(_workers().map(_window_features, halves, (spec, spec))))  # type: ignore[union-attr]


def _window_features(windows: np.ndarray, spec: MelSpec) -> np.ndarray:
    """Log-mel of analysis windows ``(n, n_fft)`` (a view into the samples) -> float32 ``(n, 80)``.

    In blocks of ``FEATURE_BLOCK`` windows through this thread's scratch arrays: fresh temporaries of a
    chunk's size are mapped and unmapped by malloc on every call, and faulting those pages in again made the
    first pass over a 10-minute file's features three times slower than a warm one (0.40 s against 0.13 s).
    """
    out = np.empty((len(windows), N_MELS), dtype=np.float32)
    scratch = _scratch(spec.n_fft)
    for first in range(0, len(windows), FEATURE_BLOCK):
        block = windows[first : first + FEATURE_BLOCK]
        count = len(block)
        framed, spectrum = scratch.framed[:count], scratch.spectrum[:count]
        power, squared = scratch.power[:count], scratch.squared[:count]
        np.multiply(block, spec.window, out=framed)
        np.fft.rfft(framed, axis=-1, out=spectrum)
        np.multiply(spectrum.real, spectrum.real, out=power)
        np.multiply(spectrum.imag, spectrum.imag, out=squared)
        power += squared
        mel = np.matmul(power, spec.filters.T, out=out[first : first + count])
        np.maximum(mel, LOG_FLOOR, out=mel)
        np.log10(mel, out=mel)
        mel += LOG_OFFSET
        mel /= LOG_SCALE
    return out


@dataclass
class _Scratch:
    """One thread's work arrays for ``FEATURE_BLOCK`` windows of one FFT size."""

    framed: np.ndarray  # (FEATURE_BLOCK, n_fft) float32: windowed samples
    spectrum: np.ndarray  # (FEATURE_BLOCK, n_fft // 2 + 1) complex64
    power: np.ndarray  # (FEATURE_BLOCK, n_fft // 2 + 1) float32
    squared: np.ndarray  # (FEATURE_BLOCK, n_fft // 2 + 1) float32: the imaginary part squared


_thread_scratch = threading.local()


def _scratch(n_fft: int) -> _Scratch:
    """This thread's scratch arrays for ``n_fft``-sample windows (made once per thread and size)."""
    cached: dict[int, _Scratch] = _thread_scratch.__dict__.setdefault("by_size", {})
    if n_fft not in cached:
        bins = n_fft // 2 + 1
        cached[n_fft] = _Scratch(
            np.empty((FEATURE_BLOCK, n_fft), np.float32),
            np.empty((FEATURE_BLOCK, bins), np.complex64),
            np.empty((FEATURE_BLOCK, bins), np.float32),
            np.empty((FEATURE_BLOCK, bins), np.float32),
        )
    return cached[n_fft]


_pool: tuple[int, ThreadPoolExecutor] | None = None  # (the process that made it, the pool)


def _workers() -> ThreadPoolExecutor | None:
    """Two feature threads where there are two cores to run them (None on one core).

    One pool per process: a child forked by a worker pool (``data label --workers``) inherits the parent's
    pool object but not its threads, and would wait on it for ever.
    """
    global _pool
    if (os.cpu_count() or 1) < 2:
        return None
    if _pool is None or _pool[0] != os.getpid():
        _pool = (os.getpid(), ThreadPoolExecutor(2, thread_name_prefix="log-mel"))
    return _pool[1]


def log_mel(waveform: np.ndarray, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Whole-clip features of mono samples: ``(n,)`` at ``rate`` -> float32 ``(n // hop, 80)``.

    ``rate`` is 16 kHz or one featurised natively (``featurised_natively``); 100 frames per second either way.
    """
    spec = mel_spec(rate)
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim != 1:
        raise ValueError(f"log_mel: expected mono samples (n,), got shape {waveform.shape}")
    frames = waveform.shape[0] // spec.hop
    if frames == 0:
        raise ValueError(f"log_mel: audio of {waveform.shape[0]} samples is shorter than one 10 ms frame")
    padded = np.pad(waveform, (spec.half_window, spec.half_window))
    return log_mel_frames(padded, spec)[:frames]


class StreamingLogMel:
    """Incremental log-mel: ``push`` samples, get each frame as soon as its window is complete.

    The concatenated output of ``push`` calls and ``flush`` equals ``log_mel`` of the concatenated input
    (exactly), whatever the chunk sizes. ``spec``: the samples' rate (``mel_spec(rate)``; default 16 kHz).
    State: the samples not yet consumed (at most one window), the index of the next frame, the samples seen.
    """

    def __init__(self, spec: MelSpec | None = None) -> None:
        self.spec = spec or mel_spec()
        self.samples_seen = 0  # samples pushed so far, at the spec's rate
        self.next_frame = 0  # index of the next frame to emit
        self.finished = False
        # Samples from hop * next_frame - n_fft / 2 on, with the leading zero padding of the stream's start.
        self._pending = np.zeros(self.spec.half_window, dtype=np.float32)

    def push(self, samples: np.ndarray) -> np.ndarray:
        """New samples ``(n,)`` -> the frames they complete, float32 ``(f, 80)`` (f may be 0)."""
        if self.finished:
            raise RuntimeError("StreamingLogMel: push() after flush()")
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self.samples_seen += len(samples)
        self._pending = np.concatenate([self._pending, samples])
        return self._emit(self.spec.frame_count(len(self._pending)))

    def flush(self) -> np.ndarray:
        """The frames left at the end of the stream (zero-padded as offline): float32 ``(f, 80)``."""
        if self.finished:
            return np.zeros((0, N_MELS), dtype=np.float32)
        self.finished = True
        remaining = self.samples_seen // self.spec.hop - self.next_frame
        if remaining <= 0:
            return np.zeros((0, N_MELS), dtype=np.float32)
        # Enough trailing zeros for the last frame's window: the offline STFT's end padding.
        self._pending = np.concatenate([self._pending, np.zeros(self.spec.n_fft, dtype=np.float32)])
        return self._emit(remaining)

    def _emit(self, count: int) -> np.ndarray:
        if count <= 0:
            return np.zeros((0, N_MELS), dtype=np.float32)
        hop = self.spec.hop
        frames = log_mel_frames(self._pending[: (count - 1) * hop + self.spec.n_fft], self.spec)
        self._pending = self._pending[count * hop :]
        self.next_frame += count
        return frames
