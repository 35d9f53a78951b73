"""Log-mel features in torch: the batched twin of ``audio.mel``, on the training device.

Training and the seed's gradient report featurise batches of waveforms on the GPU when there is one; the
runtime uses ``audio.mel`` (numpy). Same constants, same filterbank; the outputs agree within about 1e-4.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from audio2blendshape.audio.constants import HOP_LENGTH, LOG_FLOOR, LOG_OFFSET, LOG_SCALE, N_FFT, SAMPLE_RATE
from audio2blendshape.audio.decode import AudioError, AudioInput, load_audio, prepare_waveform
from audio2blendshape.audio.mel import mel_filters as numpy_mel_filters


def mel_filters(device: torch.device | str = "cpu") -> torch.Tensor:
    """Slaney-normalised mel filterbank as a tensor, shape ``(N_MELS, N_FFT // 2 + 1)``."""
    return torch.from_numpy(numpy_mel_filters()).to(device)


def to_waveform(audio: AudioInput, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """A path, array or tensor as a mono float32 tensor ``(n,)`` at 16 kHz.

    Arrays and tensors are taken to be at ``sample_rate`` and are resampled from it; 2-D input is
    ``(n, channels)`` as soundfile returns it.
    """
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
