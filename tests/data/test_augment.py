"""Augmentation: each effect does what it says, keeps timing, is seeded, and never clips."""

from __future__ import annotations

import numpy as np
import pytest

from audio2blendshape.data.augment import (
    AugmentConfig,
    add_noise,
    augment,
    band_limit,
    colored_noise,
    limit_peak,
    reverberate,
    room_impulse,
    speech_power,
)

RATE = 16000


def _speechlike(rng: np.random.Generator, seconds: float = 2.0) -> np.ndarray:
    """A 150 Hz buzz in 200 ms bursts with silent gaps, like syllables and pauses."""
    t = np.arange(int(seconds * RATE)) / RATE
    buzz = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 12))
    gate = (np.floor(t / 0.2) % 2 == 0).astype(float)
    return (0.3 * buzz * gate + 1e-4 * rng.standard_normal(t.shape)).astype(np.float32)


def test_noise_hits_the_requested_snr_per_clip() -> None:
    rng = np.random.default_rng(0)
    clean = np.stack([_speechlike(rng) for _ in range(4)])
    targets = np.array([0.0, 10.0, 20.0, 30.0])
    noisy = add_noise(clean, targets, rng, color=np.array([0.0, 1.0, 2.0, 0.0]))
    noise_power = ((noisy - clean).astype(np.float64) ** 2).mean(axis=1)
    measured = 10 * np.log10(speech_power(clean) / noise_power)
    np.testing.assert_allclose(measured, targets, atol=0.3)
    # SNR is over the speech frames: the silent half of the clip does not count.
    assert speech_power(clean)[0] == pytest.approx((clean[0, :3200].astype(np.float64) ** 2).mean(), rel=0.05)
    unchanged = add_noise(clean[0], np.inf, rng)
    np.testing.assert_array_equal(unchanged, clean[0])


def test_noise_colours_have_their_spectral_slopes() -> None:
    noise = colored_noise((3, 2**16), np.array([0.0, 1.0, 2.0]), np.random.default_rng(1))
    freqs = np.fft.rfftfreq(2**16, 1 / RATE)
    power = np.abs(np.fft.rfft(noise, axis=1)) ** 2
    band = (freqs > 100) & (freqs < 4000)
    slopes = [np.polyfit(np.log10(freqs[band]), np.log10(p[band] + 1e-30), 1)[0] for p in power]
    np.testing.assert_allclose(slopes, [0.0, -1.0, -2.0], atol=0.15)
    np.testing.assert_allclose((noise**2).mean(axis=1), 1.0, rtol=1e-6)


def test_reverb_keeps_timing_and_decays_at_rt60() -> None:
    rng = np.random.default_rng(2)
    click = np.zeros((1, RATE), np.float32)
    click[0, 4000] = 1.0
    impulse = room_impulse(np.array([0.5]), np.array([0.5]), rng, RATE)
    wet = reverberate(click, impulse)[0].astype(np.float64)
    assert int(np.argmax(np.abs(wet))) == 4000  # the direct path is not delayed
    assert np.abs(wet[:4000]).max() < 1e-6  # nothing before the sound (FFT round-off aside)
    # Schroeder backward integration: -5 dB to -25 dB spans a third of RT60.
    energy = np.cumsum((wet[4001:] ** 2)[::-1])[::-1]
    decay = 10 * np.log10(energy / energy[0])
    t5, t25 = np.argmax(decay < -5) / RATE, np.argmax(decay < -25) / RATE
    assert 3 * (t25 - t5) == pytest.approx(0.5, rel=0.2)
    dry = reverberate(click, room_impulse(np.array([0.0]), np.array([0.5]), rng, RATE))
    np.testing.assert_allclose(dry, click, atol=1e-6)


def test_band_limit_is_zero_phase_and_cuts_outside_the_band() -> None:
    t = np.arange(RATE) / RATE
    tones = {f: np.sin(2 * np.pi * f * t) for f in (100.0, 1000.0, 6000.0)}
    out = band_limit(sum(tones.values()).astype(np.float32), 300.0, 3000.0, RATE).astype(np.float64)
    for f, tone in tones.items():
        gain = 2 * np.mean(out * tone)  # projection on the tone: its amplitude, phase-sensitive
        limit = {100.0: 0.02, 6000.0: 0.08}.get(f)  # 3x below / 2x above the corners, 4th order
        assert gain > 0.95 if limit is None else abs(gain) < limit, (f, gain)
    off = band_limit(tones[1000.0].astype(np.float32), 0.0, RATE / 2, RATE)
    np.testing.assert_allclose(off, tones[1000.0], atol=0.02)


def test_augment_is_seeded_shape_preserving_and_never_clips() -> None:
    clean = _speechlike(np.random.default_rng(3))
    loud = AugmentConfig(gain_db=(12.0, 12.0), noise_probability=1.0, snr_db=(0.0, 0.0))
    a, info_a = augment(clean, np.random.default_rng(5), loud)
    b, info_b = augment(clean, np.random.default_rng(5), loud)
    c, _ = augment(clean, np.random.default_rng(6), loud)
    assert a.shape == clean.shape and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert info_a == info_b and info_a[0]["noise"]["snr_db"] == 0.0
    assert not np.array_equal(a, c)
    assert np.abs(a).max() <= 0.99 + 1e-6  # +12 dB on a loud clip is limited, not clipped
    batch, infos = augment(np.stack([clean] * 8), np.random.default_rng(7))
    assert batch.shape == (8, clean.shape[0]) and len(infos) == 8
    assert len({round(float(x), 6) for x in np.abs(batch).mean(axis=1)}) == 8  # each clip its own draw


def test_augment_with_everything_off_only_applies_gain() -> None:
    clean = _speechlike(np.random.default_rng(4)) * 0.5
    off = AugmentConfig(
        reverb_probability=0.0, noise_probability=0.0, band_probability=0.0, gain_db=(-6.0, -6.0)
    )
    out, info = augment(clean, np.random.default_rng(0), off)
    np.testing.assert_allclose(out, clean * 10 ** (-6 / 20), rtol=1e-5, atol=1e-7)
    assert info == [{"gain_db": -6.0}]


def test_bad_audio_is_refused() -> None:
    with pytest.raises(ValueError, match="NaN"):
        augment(np.array([0.0, np.nan, 0.1], np.float32), np.random.default_rng(0))
    with pytest.raises(ValueError, match="shape"):
        augment(np.zeros((2, 2, 2), np.float32), np.random.default_rng(0))
    np.testing.assert_allclose(limit_peak(np.array([0.5, -2.0], np.float32)), [0.2475, -0.99], rtol=1e-6)
