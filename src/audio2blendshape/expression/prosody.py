"""Prosody at 100 frames a second from speech: loudness, pitch, emphasis, phrases, speaking rate.

No emotion is recognised here: these are measurements of *how* something is said, with no labelled data
behind them. At 16 kHz frame ``i`` is centred on sample ``160 i`` like the log-mel frames
(``audio.constants``); at another rate (44.1 or 48 kHz, which the runtime featurises natively) the hop is
``rate / 100`` samples and the windows keep their durations, so no resampling is needed.

Per frame, from the samples alone:

* ``energy_db``: RMS level in dB over 25 ms centred on the frame (``[160 i - 200, 160 i + 200)`` at 16 kHz);
* ``f0``: pitch by normalised autocorrelation over 40 ms (Hann), searched in ``F0_MIN``..``F0_MAX``; 0 where
  the peak is below ``VOICING`` or the frame is quiet.

Then, causally (each frame sees only the past, so a stream gives the same numbers as a whole file):

* ``level_db``: the speaker's running level (an average of the voiced frames' energy over ~1.5 s);
* ``loud``: how far the frame is above that level, 0 at the level, 1 at ``LOUD_DB`` above;
* ``pitch_st``: semitones above the speaker's running pitch (voiced frames; 0 otherwise);
* ``emphasis``: a stressed-syllable envelope (louder and higher than the running level), fast attack,
  slow release, in [0, 1];
* ``phrase``: a counter that steps when speech resumes after a pause of ``PAUSE_S``;
* ``stress``: a counter that steps when ``emphasis`` rises through ``STRESS_ON``;
* ``rate``: syllable-like voiced onsets per second, averaged over ~2 s.

``ProsodyTracker.push`` takes samples as they come and returns the frames that became complete; ``flush``
pads the end with zeros (as the log-mel does) and returns the rest: ``n`` samples give ``n // hop + 1``
frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from audio2blendshape.audio.constants import FRAMES_PER_SECOND, SAMPLE_RATE

FEATURES: tuple[str, ...] = (
    "energy_db", "f0", "level_db", "loud", "pitch_st", "emphasis", "phrase", "stress", "rate", "active",
)  # fmt: skip
COLUMN = {name: i for i, name in enumerate(FEATURES)}
ENERGY_S = 0.025  # s; the window of a frame's level (the log-mel window)
PITCH_S = 0.04  # s; the window of a frame's pitch: two periods down to F0_MIN
F0_MIN, F0_MAX = 70.0, 400.0  # Hz searched for pitch
VOICING = 0.45  # normalised autocorrelation peak from which a frame is voiced
SILENCE_DB = -50.0  # frames below this are never speech
SPEECH_BELOW_LEVEL_DB = 20.0  # frames this far below the running level are pauses
LOUD_DB = 6.0  # dB above the running level that counts as fully loud
PAUSE_S = 0.25  # a pause at least this long ends a phrase
STRESS_ON, STRESS_OFF = 0.5, 0.25  # emphasis rising through ON is a stress; it re-arms below OFF
BLOCK_FRAMES = 2048  # frames analysed at a time (bounds the temporaries)


def _decay(seconds: float) -> float:
    """One-pole coefficient for a time constant of ``seconds`` at 100 frames a second."""
    return float(np.exp(-1.0 / (seconds * FRAMES_PER_SECOND)))


_LEVEL, _PITCH, _ATTACK, _RELEASE, _RATE = _decay(1.5), _decay(3.0), _decay(0.04), _decay(0.25), _decay(2.0)


@dataclass(frozen=True)
class Analysis:
    """The frame grid and windows at one sample rate."""

    rate: int  # Hz
    hop: int  # samples between frames: rate / 100
    half_energy: int  # samples each side of a frame's centre for its level
    half_pitch: int  # samples each side for its pitch
    fft: int  # FFT size: at least twice the pitch window, so the autocorrelation does not wrap
    window_ac: np.ndarray  # the Hann window's own autocorrelation, to undo its taper of long lags
    lags: np.ndarray  # lags searched for pitch


@cache
def analysis(rate: int = SAMPLE_RATE) -> Analysis:
    """The analysis at ``rate`` Hz (a multiple of 100)."""
    if rate <= 0 or rate % FRAMES_PER_SECOND:
        raise ValueError(f"prosody: the sample rate must be a positive multiple of 100 Hz, got {rate}")
    half_pitch = round(PITCH_S * rate / 2)
    fft = 1 << int(np.ceil(np.log2(4 * half_pitch)))
    window = np.hanning(2 * half_pitch)
    window_ac = np.fft.irfft(np.abs(np.fft.rfft(window, fft)) ** 2)[: 2 * half_pitch]
    lags = np.arange(int(rate / F0_MAX), int(rate / F0_MIN) + 1)
    return Analysis(rate, rate // FRAMES_PER_SECOND, round(ENERGY_S * rate / 2), half_pitch, fft,
                    np.maximum(window_ac / window_ac[0], 1e-3), lags)  # fmt: skip


def raw_features(padded: np.ndarray, count: int, at: Analysis) -> tuple[np.ndarray, np.ndarray]:
    """(energy_db, f0) of ``count`` frames; ``padded[half_pitch + hop j]`` is frame ``j``'s centre."""
    starts = np.arange(count) * at.hop
    half = at.half_pitch
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half)[starts].astype(np.float64)
    core = windows[:, half - at.half_energy : half + at.half_energy]
    energy_db = 10.0 * np.log10(np.mean(core * core, axis=1) + 1e-10)
    centred = (windows - windows.mean(axis=1, keepdims=True)) * np.hanning(2 * half)
    ac = np.fft.irfft(np.abs(np.fft.rfft(centred, at.fft, axis=1)) ** 2, axis=1)[:, : 2 * half]
    norm = ac / np.maximum(ac[:, :1], 1e-12) / at.window_ac
    search = norm[:, at.lags]
    best = np.argmax(search, axis=1)
    peak = search[np.arange(count), best]
    # Parabolic refinement of the lag between its neighbours.
    left = search[np.arange(count), np.maximum(best - 1, 0)]
    right = search[np.arange(count), np.minimum(best + 1, len(at.lags) - 1)]
    curve = left - 2 * peak + right
    shift = np.where(curve < 0, 0.5 * (left - right) / np.where(curve < 0, curve, -1.0), 0.0)
    f0 = at.rate / (at.lags[best] + np.clip(shift, -0.5, 0.5))
    voiced = (peak >= VOICING) & (energy_db > SILENCE_DB + 10.0)
    return energy_db, np.where(voiced, f0, 0.0)


@dataclass
class _Smoothers:
    """The causal state carried from frame to frame."""

    level: float = np.nan  # dB; running speech level (NaN until speech is heard)
    pitch: float = np.nan  # log2 Hz; running voiced pitch
    voiced_frames: int = 0  # voiced frames so far: the first averages are plain means
    emphasis: float = 0.0
    armed: bool = True  # a stress may be counted (emphasis fell below STRESS_OFF since the last)
    silent_frames: int = 10**9  # frames since speech was last heard
    phrase: int = 0
    stress: int = 0
    voiced_before: bool = False
    rate: float = 0.0


def _mean_step(value: float, sample: float, count: int, decay: float) -> float:
    """A running average: a plain mean of the first samples, then a one-pole average."""
    keep = min(decay, 1.0 - 1.0 / count)
    return sample if np.isnan(value) else keep * value + (1 - keep) * sample


def _emphasis_drive(s: _Smoothers, energy: float, f0: float, voiced: bool) -> tuple[float, float]:
    """(pitch in semitones above the running pitch, how stressed the frame sounds in [0, 1])."""
    if not voiced:
        return 0.0, 0.0
    note = float(np.log2(f0))
    s.voiced_frames += 1
    s.pitch = _mean_step(s.pitch, note, s.voiced_frames, _PITCH)
    s.level = _mean_step(s.level, energy, s.voiced_frames, _LEVEL)
    pitch_st = 12.0 * (note - s.pitch)
    drive = 0.6 * (energy - s.level - 1.0) / 5.0 + 0.4 * (pitch_st - 1.0) / 3.0
    return pitch_st, float(np.clip(drive, 0.0, 1.0))


def _step(s: _Smoothers, energy: float, f0: float) -> list[float]:
    """Advance the causal state by one frame; that frame's feature row."""
    active = energy > SILENCE_DB and (np.isnan(s.level) or energy > s.level - SPEECH_BELOW_LEVEL_DB)
    if active:
        if s.silent_frames >= PAUSE_S * FRAMES_PER_SECOND:
            s.phrase += 1
        s.silent_frames = 0
    else:
        s.silent_frames += 1
    voiced = f0 > 0.0 and active
    pitch_st, drive = _emphasis_drive(s, energy, f0, voiced)
    level = energy if np.isnan(s.level) else s.level
    loud = float(np.clip((energy - level) / LOUD_DB, 0.0, 1.0)) if active else 0.0
    coefficient = _ATTACK if drive > s.emphasis else _RELEASE
    s.emphasis = coefficient * s.emphasis + (1 - coefficient) * drive
    if s.armed and s.emphasis >= STRESS_ON:
        s.stress, s.armed = s.stress + 1, False
    elif s.emphasis < STRESS_OFF:
        s.armed = True
    onset = voiced and not s.voiced_before
    s.voiced_before = voiced
    s.rate = _RATE * s.rate + (1 - _RATE) * (FRAMES_PER_SECOND if onset else 0.0)
    return [energy, f0, level, loud, pitch_st, s.emphasis, s.phrase, s.stress, s.rate, float(active)]


class ProsodyTracker:
    """Prosody frames from samples at ``rate`` pushed in any blocks; equal to one pass over the whole clip."""

    def __init__(self, rate: int = SAMPLE_RATE) -> None:
        self.analysis = analysis(rate)
        self._samples = np.zeros(self.analysis.half_pitch, np.float32)  # zeros before sample 0, then audio
        self._next = 0  # the next frame to compute; its window starts at _samples[0]
        self._seen = 0  # samples pushed
        self._state = _Smoothers()
        self.finished = False

    @property
    def frames_done(self) -> int:
        """Frames computed so far."""
        return self._next

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Add samples ``(n,)``; the feature rows ``(F, len(FEATURES))`` they complete."""
        if self.finished:
            raise ValueError("prosody: push() after flush()")
        samples = np.asarray(samples, np.float32).reshape(-1)
        self._samples = np.concatenate([self._samples, samples])
        self._seen += len(samples)
        at = self.analysis
        ready = max(0, (len(self._samples) - 2 * at.half_pitch) // at.hop + 1)
        return self._compute(ready)

    def flush(self) -> np.ndarray:
        """End the audio: the last frames up to ``n // hop`` (zero-padded, as the log-mel)."""
        if self.finished:
            return np.zeros((0, len(FEATURES)))
        self.finished = True
        total = self._seen // self.analysis.hop + 1
        pad = np.zeros(2 * self.analysis.half_pitch, np.float32)
        self._samples = np.concatenate([self._samples, pad])
        return self._compute(max(0, total - self._next))

    def _compute(self, count: int) -> np.ndarray:
        at = self.analysis
        rows: list[list[float]] = []
        for first in range(0, count, BLOCK_FRAMES):
            n = min(BLOCK_FRAMES, count - first)
            block = self._samples[first * at.hop : (first + n - 1) * at.hop + 2 * at.half_pitch]
            energy, f0 = raw_features(block, n, at)
            rows += [_step(self._state, float(e), float(f)) for e, f in zip(energy, f0, strict=True)]
        self._samples = self._samples[count * at.hop :]
        self._next += count
        return np.array(rows, dtype=np.float64).reshape(-1, len(FEATURES))


def prosody(samples: np.ndarray, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Feature rows ``(n // hop + 1, len(FEATURES))`` of a whole clip at ``rate`` Hz."""
    tracker = ProsodyTracker(rate)
    return np.concatenate([tracker.push(samples), tracker.flush()])
