"""Audio augmentation: room reverb, background noise at a chosen SNR, band-limiting and gain.

Everything is numpy, seeded by the caller's ``np.random.Generator`` and vectorised over a batch of equal
length clips ``(B, n)`` (a single clip ``(n,)`` works too). No effect moves the speech in time: the
reverb's direct path is at lag 0 and the filters are zero-phase, so the phoneme timing (and the curves
labelled from it) stays valid. The output has the input's shape and never clips.

The chain follows the physics of a recording: the voice reverberates in a room, noise is added in the
room, the channel (phone, cheap microphone) band-limits both, and the recording level sets the gain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audio2blendshape.audio.constants import SAMPLE_RATE

PEAK_LIMIT = 0.99  # louder clips are scaled down to this peak instead of clipping


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of each effect; every clip draws its own values."""

    reverb_probability: float = 0.4  # chance a clip gets room reverb
    rt60: tuple[float, float] = (0.15, 0.9)  # s; reverberation time range (small room .. hall)
    reverb_mix: tuple[float, float] = (0.2, 0.8)  # reverberant energy relative to the direct path
    noise_probability: float = 0.6  # chance a clip gets background noise
    snr_db: tuple[float, float] = (0.0, 35.0)  # dB; speech-to-noise ratio over the speech frames
    noise_colors: tuple[float, ...] = (0.0, 1.0, 2.0)  # spectral slopes: white, pink, brown (1/f^c)
    noise_modulation: tuple[float, float] = (0.0, 0.6)  # depth of a slow (0.3-3 Hz) noise level sway
    band_probability: float = 0.3  # chance a clip is band-limited
    low_cut_hz: tuple[float, float] = (50.0, 400.0)  # high-pass corner range
    high_cut_hz: tuple[float, float] = (2500.0, 7500.0)  # low-pass corner range
    gain_db: tuple[float, float] = (-18.0, 6.0)  # dB; overall level change
    sample_rate: int = field(default=SAMPLE_RATE)  # Hz of the clips


def _as_batch(audio: np.ndarray) -> tuple[np.ndarray, bool]:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim not in (1, 2) or audio.shape[-1] == 0:
        raise ValueError(f"augment: expected audio of shape (n,) or (B, n) with n > 0, got {audio.shape}")
    if not np.isfinite(audio).all():
        raise ValueError("augment: the audio holds NaN or infinite samples")
    return (audio[None, :], True) if audio.ndim == 1 else (audio, False)


def _column(values: np.ndarray | float, rows: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(values, dtype=np.float64), (rows,))[:, None]


def speech_power(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mean power of the speech in each clip: ``(B, n)`` -> ``(B,)``.

    Only 20 ms frames within 40 dB of the clip's loudest frame count, so pauses do not dilute the level
    an SNR is measured against.
    """
    batch, _ = _as_batch(audio)
    hop = max(sample_rate // 50, 1)
    frames = batch.shape[1] // hop
    if frames == 0:
        return (batch.astype(np.float64) ** 2).mean(axis=1)
    power = (
        (batch[:, : frames * hop].astype(np.float64) ** 2).reshape(batch.shape[0], frames, hop).mean(axis=2)
    )
    active = power >= power.max(axis=1, keepdims=True) * 1e-4
    return (power * active).sum(axis=1) / np.maximum(active.sum(axis=1), 1)


def colored_noise(
    shape: tuple[int, int], color: np.ndarray, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """Unit-power noise ``(B, n)`` whose power falls as ``1/f^color[b]`` (0 white, 1 pink, 2 brown).

    The slope stops at 20 Hz and DC is removed, so red noise is audible rumble rather than a drifting offset.
    """
    rows, n = shape
    spectrum = np.fft.rfft(rng.standard_normal(shape), axis=1)
    freqs = np.maximum(np.fft.rfftfreq(n, 1.0 / sample_rate), 20.0)
    spectrum *= (freqs[None, :] / 20.0) ** (-_column(color, rows) / 2.0)
    spectrum[:, 0] = 0.0
    noise = np.fft.irfft(spectrum, n=n, axis=1)
    return noise / np.sqrt((noise**2).mean(axis=1, keepdims=True) + 1e-20)


def add_noise(
    audio: np.ndarray,
    snr_db: np.ndarray | float,
    rng: np.random.Generator,
    color: np.ndarray | float = 0.0,
    modulation: np.ndarray | float = 0.0,
    sample_rate: int = SAMPLE_RATE,
) -> np.ndarray:
    """Add coloured noise at ``snr_db`` (per clip; ``inf`` adds none): ``(B, n)`` or ``(n,)`` -> same.

    ``modulation`` in [0, 1) sways the noise level slowly (0.3-3 Hz), like a room with moving sources.
    """
    batch, single = _as_batch(audio)
    rows, n = batch.shape
    noise = colored_noise(batch.shape, np.broadcast_to(np.asarray(color, float), (rows,)), rng, sample_rate)
    rate = rng.uniform(0.3, 3.0, (rows, 1))
    phase = rng.uniform(0.0, 2 * np.pi, (rows, 1))
    sway = 1.0 + _column(modulation, rows) * np.sin(2 * np.pi * rate * np.arange(n) / sample_rate + phase)
    noise *= sway / np.sqrt((sway**2).mean(axis=1, keepdims=True))
    scale = np.sqrt(speech_power(batch, sample_rate)[:, None] / 10.0 ** (_column(snr_db, rows) / 10.0))
    out = (batch + scale * noise).astype(np.float32)
    return out[0] if single else out


def room_impulse(rt60: np.ndarray, mix: np.ndarray, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """Synthetic room impulse responses ``(B, L)``: a direct path at lag 0 plus a decaying noise tail.

    The tail decays 60 dB over ``rt60[b]`` seconds, starts after a 2-10 ms pre-delay (the first
    reflection) and carries ``mix[b]`` times the direct path's energy; ``rt60 = 0`` gives a pure delta.
    """
    rt60 = np.asarray(rt60, dtype=np.float64)
    length = max(int(np.max(rt60, initial=0.0) * sample_rate), 1) + 1
    t = np.arange(length) / sample_rate
    predelay = rng.uniform(0.002, 0.010, (rt60.shape[0], 1))
    decay = np.exp(-6.9 * np.maximum(t[None, :] - predelay, 0) / np.maximum(rt60[:, None], 1e-6))
    tail = rng.standard_normal((rt60.shape[0], length)) * decay * (t[None, :] > predelay)
    energy = (tail**2).sum(axis=1, keepdims=True)
    tail *= np.sqrt(np.asarray(mix, float)[:, None] / np.maximum(energy, 1e-20))
    tail[rt60 <= 0] = 0.0
    tail[:, 0] = 1.0
    return tail


def reverberate(audio: np.ndarray, impulse: np.ndarray) -> np.ndarray:
    """Convolve each clip with its impulse response ``(B, L)`` (FFT), keeping the first ``n`` samples.

    The level of the speech is kept: the output is scaled to the input's RMS.
    """
    batch, single = _as_batch(audio)
    n = batch.shape[1]
    size = 1 << int(np.ceil(np.log2(n + impulse.shape[1] - 1)))
    wet = np.fft.irfft(np.fft.rfft(batch, size, axis=1) * np.fft.rfft(impulse, size, axis=1), size, axis=1)[
        :, :n
    ]
    level = np.sqrt((batch.astype(np.float64) ** 2).mean(axis=1, keepdims=True))
    wet *= level / np.sqrt((wet**2).mean(axis=1, keepdims=True) + 1e-20)
    out = wet.astype(np.float32)
    return out[0] if single else out


def band_limit(
    audio: np.ndarray, low_hz: np.ndarray | float, high_hz: np.ndarray | float, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """Zero-phase 4th-order Butterworth-shaped band-pass ``low_hz..high_hz`` per clip (``0``/Nyquist: off)."""
    batch, single = _as_batch(audio)
    rows, n = batch.shape
    freqs = np.maximum(np.fft.rfftfreq(n, 1.0 / sample_rate)[None, :], 1e-3)
    low, high = _column(low_hz, rows), _column(high_hz, rows)
    high_pass = 1.0 / np.sqrt(1.0 + (np.maximum(low, 1e-6) / freqs) ** 8) * (low > 0) + (low <= 0)
    low_pass = 1.0 / np.sqrt(1.0 + (freqs / np.maximum(high, 1e-6)) ** 8)
    out = np.fft.irfft(np.fft.rfft(batch, axis=1) * high_pass * low_pass, n=n, axis=1).astype(np.float32)
    return out[0] if single else out


def limit_peak(audio: np.ndarray, peak: float = PEAK_LIMIT) -> np.ndarray:
    """Scale down clips whose peak exceeds ``peak`` (per clip), so 16-bit export never clips."""
    batch, single = _as_batch(audio)
    top = np.abs(batch).max(axis=1, keepdims=True)
    out = (batch * np.minimum(1.0, peak / np.maximum(top, 1e-12))).astype(np.float32)
    return out[0] if single else out


def draw_params(rows: int, rng: np.random.Generator, config: AugmentConfig) -> dict[str, np.ndarray]:
    """Per-clip effect values ``(rows,)`` each; an effect that is off has its neutral value."""

    def pick(probability: float, span: tuple[float, float], off: float) -> np.ndarray:
        on = rng.random(rows) < probability
        return np.where(on, rng.uniform(span[0], span[1], rows), off)

    band_on = rng.random(rows) < config.band_probability
    return {
        "rt60": pick(config.reverb_probability, config.rt60, 0.0),
        "reverb_mix": rng.uniform(*config.reverb_mix, rows),
        "snr_db": pick(config.noise_probability, config.snr_db, np.inf),
        "noise_color": rng.choice(np.asarray(config.noise_colors, float), rows),
        "noise_modulation": rng.uniform(*config.noise_modulation, rows),
        "low_hz": np.where(band_on, rng.uniform(*config.low_cut_hz, rows), 0.0),
        "high_hz": np.where(band_on, rng.uniform(*config.high_cut_hz, rows), config.sample_rate / 2.0),
        "gain_db": rng.uniform(*config.gain_db, rows),
    }


def augment(
    audio: np.ndarray, rng: np.random.Generator, config: AugmentConfig | None = None
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Apply a random effect chain to ``(n,)`` or ``(B, n)`` float32 audio; returns same-shaped audio and,
    per clip, the effects applied (``{"reverb": {"rt60": .., "mix": ..}, "noise": {...}, ...}``).
    """
    config = config or AugmentConfig()
    batch, single = _as_batch(audio)
    rows, rate = batch.shape[0], config.sample_rate
    p = draw_params(rows, rng, config)
    out = batch
    if (p["rt60"] > 0).any():
        out = reverberate(out, room_impulse(p["rt60"], p["reverb_mix"], rng, rate))
    if np.isfinite(p["snr_db"]).any():
        out = add_noise(out, p["snr_db"], rng, p["noise_color"], p["noise_modulation"], rate)
    if (p["low_hz"] > 0).any() or (p["high_hz"] < rate / 2.0).any():
        out = band_limit(out, p["low_hz"], p["high_hz"], rate)
    out = limit_peak(out * (10.0 ** (p["gain_db"] / 20.0))[:, None].astype(np.float32))
    applied = [_describe(p, i) for i in range(rows)]
    return (out[0], applied) if single else (out, applied)


def _describe(p: dict[str, np.ndarray], i: int) -> dict[str, Any]:
    done: dict[str, Any] = {}
    if p["rt60"][i] > 0:
        done["reverb"] = {"rt60": round(float(p["rt60"][i]), 3), "mix": round(float(p["reverb_mix"][i]), 3)}
    if np.isfinite(p["snr_db"][i]):
        done["noise"] = {
            "snr_db": round(float(p["snr_db"][i]), 2),
            "color": float(p["noise_color"][i]),
            "modulation": round(float(p["noise_modulation"][i]), 3),
        }
    if p["low_hz"][i] > 0:
        done["band"] = {
            "low_hz": round(float(p["low_hz"][i]), 1),
            "high_hz": round(float(p["high_hz"][i]), 1),
        }
    done["gain_db"] = round(float(p["gain_db"][i]), 2)
    return done
