"""Audio loading and log-mel features, Whisper-style (``torch.stft`` and a Slaney mel filterbank).

Every model in the package sees the same features: 80 log-mel bins, a 25 ms Hann window and a 10 ms hop,
so 100 frames per second. Unlike Whisper, the log-mel is not normalised by each clip's loudest frame: that
would make a frame depend on audio far away and break streaming (a chunked stream must give the same
features as the whole file), so a fixed floor and affine scale are used instead.

Frame ``i`` is centred on sample ``i * HOP_LENGTH`` and covers samples ``[i*160 - 200, i*160 + 200)``; the
audio is zero-padded at both ends, so ``n`` samples give ``n // HOP_LENGTH`` frames (3 s -> 300 frames).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
import soundfile
import soxr

if TYPE_CHECKING:
    import torch

# torch is imported inside the functions that use it: the ONNX runtime path deploys this module (loading,
# constants, the filterbank) without torch installed.

SAMPLE_RATE = 16_000  # Hz; every waveform is resampled to this rate
N_FFT = 400  # samples in a 25 ms analysis window
HOP_LENGTH = 160  # samples between frames: 10 ms
N_MELS = 80  # mel bins
FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH  # 100 feature frames per second
WINDOW_FRAMES = 300  # the seed's training window: 3 s
LOG_FLOOR = 1e-10  # power floor before log10, so digital silence stays finite
LOG_OFFSET = 4.0  # (log10(power) + LOG_OFFSET) / LOG_SCALE keeps speech roughly in [-1, 1]
LOG_SCALE = 4.0

AudioInput: TypeAlias = "str | Path | np.ndarray | torch.Tensor"


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


@cache
def mel_filters_numpy(sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
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


def mel_filters(device: torch.device | str = "cpu") -> torch.Tensor:
    """Slaney-normalised mel filterbank as a tensor, shape ``(N_MELS, N_FFT // 2 + 1)``."""
    import torch

    return torch.from_numpy(mel_filters_numpy()).to(device)


def to_waveform(audio: AudioInput, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """A path, array or tensor as a mono float32 tensor ``(n,)`` at 16 kHz.

    Arrays and tensors are taken to be at ``sample_rate`` and are resampled from it; 2-D input is
    ``(n, channels)`` as soundfile returns it.
    """
    import torch

    if isinstance(audio, (str, Path)):
        return torch.from_numpy(load_audio(audio))
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().numpy()
    return torch.from_numpy(prepare_waveform(np.asarray(audio), sample_rate))


def num_frames(num_samples: int) -> int:
    """Feature frames for a 16 kHz waveform of ``num_samples`` samples."""
    return num_samples // HOP_LENGTH


def log_mel_spectrogram(
    audio: AudioInput, sample_rate: int = SAMPLE_RATE, device: torch.device | str | None = None
) -> torch.Tensor:
    """Log-mel features of shape ``(T, N_MELS)`` with ``T = n // HOP_LENGTH`` at 100 frames/s."""
    waveform = to_waveform(audio, sample_rate)
    if device is not None:
        waveform = waveform.to(device)
    return log_mel_from_waveform(waveform)


def log_mel_from_waveform(waveform: torch.Tensor) -> torch.Tensor:
    """Features of a validated 16 kHz waveform: ``(n,)`` -> ``(T, 80)``, or ``(B, n)`` -> ``(B, T, 80)``."""
    import torch

    frames = num_frames(waveform.shape[-1])
    if frames == 0:
        raise AudioError(f"audio of {waveform.shape[-1]} samples is shorter than one 10 ms frame")
    window = torch.hann_window(N_FFT, device=waveform.device)
    stft = torch.stft(
        waveform, N_FFT, HOP_LENGTH, window=window, center=True, pad_mode="constant", return_complex=True
    )
    power = stft[..., :frames].abs() ** 2
    mel = mel_filters(waveform.device) @ power
    log_spec = torch.clamp(mel, min=LOG_FLOOR).log10()
    return ((log_spec + LOG_OFFSET) / LOG_SCALE).transpose(-1, -2).contiguous()
