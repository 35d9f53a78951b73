"""Rule-based training labels: phoneme spans + audio -> all 52 ARKit curves per frame.

Three layers, summed into one ``(T, 52)`` array:

1. Visemes (``visemes`` table) blended with Cohen–Massaro dominance functions per channel group, so the
   mouth moves continuously and weak (lingual) consonants take their lip shape from the vowels around
   them. Each segment's dominance is flat over its core and falls off as a Gaussian tail before and after.
2. Constraints the average must not wash out (JALI-style): at the middle of every bilabial the closure pose
   replaces the blend on the lip/jaw channels (``PP_OWNS``), likewise for labiodentals (``FF_OWNS``), and
   pucker/funnel of a rounded vowel is a floor. Each constraint fades in and out with a raised cosine.
3. Prosody: brows follow pitch above the speaker's median, cheek squint follows loudness, both lightly
   and smoothed. Eye columns stay 0: the idle layer (``idle``) adds blinks and gaze at inference.

Frame ``i`` is at time ``i / fps``; at 100 fps this is the log-mel frame ``i`` of ``audio``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from audio2blendshape.audio.constants import SAMPLE_RATE
from audio2blendshape.audio.decode import prepare_waveform
from audio2blendshape.data.visemes import (
    FF_OWNS,
    GROUPS,
    PP_OWNS,
    ROUNDED,
    SILENCE,
    VISEMES,
    PhonemeSpan,
    dominance_table,
    group_of,
    mouth_openness,
    pose_matrix,
    symbol_visemes,
)
from audio2blendshape.names import ARKIT_NAMES

__all__ = ["LabelConfig", "PhonemeSpan", "label_utterance", "mouth_openness", "num_label_frames"]

_COL = {name: i for i, name in enumerate(ARKIT_NAMES)}
_MOUTH_COLS = np.array([i for i, n in enumerate(ARKIT_NAMES) if n.startswith(("jaw", "mouth", "tongue"))])
_MOUTH_COLS = np.concatenate(
    [_MOUTH_COLS, [_COL["noseSneerLeft"], _COL["noseSneerRight"], _COL["cheekPuff"]]]
)
_POSES = pose_matrix()
_DOMINANCE = dominance_table()
_GROUP_COLS = [np.array([c for c in _MOUTH_COLS if group_of(ARKIT_NAMES[c]) == g]) for g in GROUPS]
_NEUTRAL_WEIGHT = 1e-3  # a faint neutral pose everywhere, so frames far from any phoneme rest
_PROSODY_FPS = 100  # prosody is tracked on the mel frame grid, then resampled to ``fps``


@dataclass(frozen=True)
class LabelConfig:
    """Knobs of the label rules; the defaults are the documented ones (docs/labels.md)."""

    closure_ramp: float = 0.08  # s; bilabial/labiodental closure fades in and out over this
    rounding_before: float = 0.15  # s; rounding of O/U starts this early (anticipatory coarticulation)
    rounding_after: float = 0.10  # s; and lingers this long
    brow_max: float = 0.35  # browInnerUp at a pitch peak; outer brows get 70 % of it
    cheek_max: float = 0.15  # cheekSquint at the loudest speech
    smooth_s: float = 0.15  # s; box width of the prosody smoothing (applied twice: triangular)
    style_jitter: float = 0.1  # per-utterance random gain range (+/-) on mouth and brows, seeded


def num_label_frames(num_samples: int, fps: float = 100.0) -> int:
    """Label frames for ``num_samples`` at 16 kHz: ``floor(num_samples / 16000 * fps)``.

    Computed as ``num_samples * fps / 16000`` with a tiny tolerance, because ``n / 16000 * 100`` in
    floating point can land just below an integer (4640 samples -> 28.999...) and lose a frame.
    """
    return int(np.floor(num_samples * fps / SAMPLE_RATE + 1e-9))


def viseme_segments(spans: Sequence[PhonemeSpan], duration: float) -> tuple[np.ndarray, ...]:
    """Spans as viseme segments ``(starts (S,), ends (S,), viseme ids (S,))``, sorted, in seconds.

    A span with several visemes (a diphthong) is split into equal parts. Raises ValueError naming the
    span for non-finite times, an end before the start, or a start after the audio ends.
    """
    starts: list[float] = []
    ends: list[float] = []
    ids: list[int] = []
    for i, span in sorted(enumerate(spans), key=lambda item: (item[1].start, item[0])):
        where = f"phoneme span {i} ({span.symbol!r}, {span.start}-{span.end} s)"
        if not (np.isfinite(span.start) and np.isfinite(span.end)):
            raise ValueError(f"{where}: start and end must be finite numbers of seconds")
        if span.end < span.start:
            raise ValueError(f"{where}: ends before it starts")
        if span.start > duration + 0.05:
            raise ValueError(f"{where}: starts after the audio ends ({duration:.3f} s)")
        start, end = max(span.start, 0.0), min(span.end, duration)
        if end <= start:
            continue
        parts = symbol_visemes(span.symbol)
        edges = np.linspace(start, end, len(parts) + 1)
        for k, viseme in enumerate(parts):
            starts.append(float(edges[k]))
            ends.append(float(edges[k + 1]))
            ids.append(VISEMES.index(viseme))
    # Time no span covers is silence; without it a strong segment's tail would end abruptly there.
    bounds = np.array([0.0, *ends]), np.array([*starts, duration])
    covered = np.maximum.accumulate(bounds[0])
    gaps = bounds[1] - covered > 1e-3
    starts += list(covered[gaps])
    ends += list(bounds[1][gaps])
    ids += [SILENCE] * int(gaps.sum())
    order = np.argsort(starts, kind="stable")
    return np.array(starts)[order], np.array(ends)[order], np.array(ids, dtype=np.int64)[order]


def segment_ids_at_frames(
    starts: np.ndarray, ends: np.ndarray, ids: np.ndarray, frames: int, fps: float
) -> np.ndarray:
    """The id of the sorted segment covering each frame ``(frames,)`` int64, frame ``i`` at ``i / fps`` s
    (starts inclusive, ends exclusive); ``SILENCE`` where none does."""
    if not len(ids):
        return np.full(frames, SILENCE, dtype=np.int64)
    times = np.arange(frames) / fps
    segment = np.clip(np.searchsorted(ends, times, side="right"), 0, len(ids) - 1)
    inside = (times >= starts[segment]) & (times < ends[segment])
    return np.where(inside, ids[segment], SILENCE).astype(np.int64)


def frame_visemes(
    spans: Sequence[PhonemeSpan], duration: float, frames: int, fps: float = 100.0
) -> np.ndarray:
    """The viseme id sounding at each frame ``(frames,)`` int64, frame ``i`` at ``i / fps`` s; time no
    span covers (and frames past ``duration``) are silence. The training targets of the viseme probe."""
    starts, ends, ids = viseme_segments(spans, duration)
    return segment_ids_at_frames(starts, ends, ids, frames, fps)


def _ragged(lo: np.ndarray, hi: np.ndarray, n_frames: int, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Every (segment, frame) pair with ``lo[s] <= frame / fps <= hi[s]``, as two flat index arrays."""
    first = np.clip(np.ceil(lo * fps), 0, n_frames).astype(np.int64)
    last = np.clip(np.floor(hi * fps), -1, n_frames - 1).astype(np.int64)
    lengths = np.maximum(last - first + 1, 0)
    seg = np.repeat(np.arange(len(lo)), lengths)
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return seg, np.repeat(first, lengths) + offsets


def _blend(starts: np.ndarray, ends: np.ndarray, ids: np.ndarray, n_frames: int, fps: float) -> np.ndarray:
    """Cohen–Massaro weighted average of viseme poses: ``(T, 52)``, non-mouth columns 0."""
    out = np.zeros((n_frames, len(ARKIT_NAMES)), dtype=np.float64)
    if len(ids) == 0 or n_frames == 0:
        return out
    dur = ends - starts
    centre = 0.5 * (starts + ends)
    # Long segments (pauses, held vowels) dominate their whole span, short ones peak at their centre.
    half = np.maximum(0.25 * dur, 0.5 * dur - 0.05)
    core_lo, core_hi = centre - half, centre + half
    params = _DOMINANCE[ids]  # (S, G, 3)
    seg, frame = _ragged(
        core_lo - 3 * params[:, :, 1].max(1), core_hi + 3 * params[:, :, 2].max(1), n_frames, fps
    )
    t = frame / fps
    before = np.maximum(core_lo[seg] - t, 0.0)
    after = np.maximum(t - core_hi[seg], 0.0)
    n_vis = len(VISEMES)
    for g, cols in enumerate(_GROUP_COLS):
        strength, width_before, width_after = (params[seg, g, k] for k in range(3))
        dom = strength * np.exp(-((before / width_before) ** 2) - (after / width_after) ** 2)
        # Targets depend only on the viseme, so sum dominance per (frame, viseme) and then mix poses.
        acc = np.bincount(frame * n_vis + ids[seg], weights=dom, minlength=n_frames * n_vis)
        acc = acc.reshape(n_frames, n_vis)
        out[:, cols] = (acc @ _POSES[:, cols]) / (acc.sum(axis=1, keepdims=True) + _NEUTRAL_WEIGHT)
    return out


def _envelope(
    starts: np.ndarray, ends: np.ndarray, n_frames: int, fps: float, ramp_before: float, ramp_after: float
) -> np.ndarray:
    """Max over segments of a plateau (middle half, at least one frame) with raised-cosine ramps: ``(T,)``."""
    weight = np.zeros(n_frames)
    if len(starts) == 0 or n_frames == 0:
        return weight
    centre = 0.5 * (starts + ends)
    half = np.maximum(0.25 * (ends - starts), 0.5 / fps)
    lo, hi = centre - half, centre + half
    seg, frame = _ragged(lo - ramp_before, hi + ramp_after, n_frames, fps)
    t = frame / fps
    x = np.maximum(np.clip((lo[seg] - t) / ramp_before, 0, 1), np.clip((t - hi[seg]) / ramp_after, 0, 1))
    np.maximum.at(weight, frame, 0.5 * (1.0 + np.cos(np.pi * x)))
    return weight


def coarticulate(
    starts: np.ndarray, ends: np.ndarray, ids: np.ndarray, n_frames: int, fps: float, config: LabelConfig
) -> np.ndarray:
    """Mouth curves ``(T, 52)`` from viseme segments (seconds, ids into ``VISEMES``); other columns 0."""
    out = _blend(starts, ends, ids, n_frames, fps)
    for viseme in ROUNDED:
        v = VISEMES.index(viseme)
        mask = ids == v
        w = _envelope(starts[mask], ends[mask], n_frames, fps, config.rounding_before, config.rounding_after)
        cols = [_COL["mouthPucker"], _COL["mouthFunnel"]]
        out[:, cols] = np.maximum(out[:, cols], w[:, None] * _POSES[v, cols])
    # Bilabials last: where a /p/ and an /f/ overlap, the lips are shut.
    for viseme, owned in (("FF", FF_OWNS), ("PP", PP_OWNS)):
        v = VISEMES.index(viseme)
        mask = ids == v
        w = _envelope(starts[mask], ends[mask], n_frames, fps, config.closure_ramp, config.closure_ramp)[
            :, None
        ]
        cols = [_COL[n] for n in owned]
        out[:, cols] = (1.0 - w) * out[:, cols] + w * _POSES[v, cols]
    return out


def _smooth(values: np.ndarray, width: int) -> np.ndarray:
    """Two passes of a centred box filter (a triangle), edges padded with the edge values."""
    if width <= 1:
        return values
    kernel = np.ones(width) / width
    for _ in range(2):
        padded = np.pad(values, (width // 2, width - 1 - width // 2), mode="edge")
        values = np.convolve(padded, kernel, mode="valid")
    return values


def pitch_and_energy(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Autocorrelation f0 and RMS level per 10 ms frame of 16 kHz ``audio (n,)``.

    Returns ``f0 (T,)`` in Hz (0 where unvoiced; range 60-400 Hz) and ``level (T,)`` in dB full scale,
    ``T = n // 160``; frame ``i`` is centred on sample ``160 * i`` like the log-mel frames.
    """
    n_frames = len(audio) // 160
    # Pitch below 400 Hz survives halving the rate; the pair mean is a cheap anti-alias filter.
    x = audio[: len(audio) // 2 * 2].astype(np.float64)
    x = 0.5 * (x[0::2] + x[1::2])
    length, hop, rate = 320, 80, SAMPLE_RATE // 2
    min_lag, max_lag = rate // 400, rate // 60
    padded = np.pad(x, (length // 2, length + hop * n_frames))
    f0 = np.zeros(n_frames)
    level = np.full(n_frames, -120.0)
    for lo in range(0, n_frames, 8192):  # chunks bound memory for hour-long files
        idx = np.arange(lo, min(lo + 8192, n_frames))
        frames = np.lib.stride_tricks.sliding_window_view(padded, length)[idx * hop]
        frames = frames - frames.mean(axis=1, keepdims=True)
        level[idx] = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
        power = np.abs(np.fft.rfft(frames, n=512, axis=1)) ** 2
        ac = np.fft.irfft(power, n=512, axis=1)[:, : max_lag + 2]
        ac = ac / np.maximum(ac[:, :1], 1e-12) * (length / (length - np.arange(max_lag + 2)))
        seg = ac[:, min_lag - 1 : max_lag + 2]
        peak = (seg[:, 1:-1] >= seg[:, :-2]) & (seg[:, 1:-1] >= seg[:, 2:])
        inner = np.where(peak, seg[:, 1:-1], -np.inf)
        best = inner.max(axis=1)
        # First strong peak, not the highest: a subharmonic peak can edge out the true period.
        first = np.argmax(inner >= 0.9 * best[:, None], axis=1)
        voiced = (best > 0.5) & (level[idx] > -60)
        f0[idx] = np.where(voiced, rate / (first + min_lag), 0.0)
    return f0, level


def prosody_curves(audio: np.ndarray, n_frames: int, fps: float, config: LabelConfig) -> np.ndarray:
    """Brow and cheek curves ``(n_frames, 52)`` from pitch and loudness; other columns 0."""
    out = np.zeros((n_frames, len(ARKIT_NAMES)))
    f0, level = pitch_and_energy(audio)
    if len(level) == 0 or n_frames == 0 or level.max() <= -60:
        return out
    reference = np.percentile(level[level > -60], 90)
    active = level > max(reference - 35.0, -60.0)
    loud = np.clip((level - (reference - 10.0)) / 10.0, 0.0, 1.0) * active
    raise_ = np.zeros_like(f0)
    voiced = (f0 > 0) & active
    if voiced.any():
        semitones = 12 * np.log2(np.where(voiced, f0, 1.0) / np.median(f0[voiced]))
        raise_ = np.where(voiced, np.clip((semitones - 1.0) / 6.0, 0.0, 1.0), 0.0)
    width = max(1, round(config.smooth_s * _PROSODY_FPS))
    brow = config.brow_max * _smooth(raise_, width)
    cheek = config.cheek_max * _smooth(loud**1.5, width)
    times = np.arange(n_frames) / fps * _PROSODY_FPS
    grid = np.arange(len(level))
    brow, cheek = np.interp(times, grid, brow), np.interp(times, grid, cheek)
    out[:, _COL["browInnerUp"]] = brow
    out[:, [_COL["browOuterUpLeft"], _COL["browOuterUpRight"]]] = 0.7 * brow[:, None]
    out[:, [_COL["cheekSquintLeft"], _COL["cheekSquintRight"]]] = cheek[:, None]
    return out


def _style(seed: int, jitter: float) -> tuple[np.ndarray, float]:
    """Per-utterance gains: mouth column gains ``(52,)`` (slightly asymmetric) and a brow gain."""
    rng = np.random.default_rng(seed)
    mouth, side, brow = rng.uniform(-jitter, jitter, size=3)
    gains = np.full(len(ARKIT_NAMES), 1.0 + mouth)
    for i, name in enumerate(ARKIT_NAMES):
        if name.startswith("mouth") and name.endswith(("Left", "Right")):
            gains[i] *= 1.0 + (0.5 if name.endswith("Left") else -0.5) * side
    return gains, 1.0 + brow


def label_utterance(
    audio: np.ndarray,
    spans: Sequence[PhonemeSpan],
    fps: float = 100.0,
    seed: int = 0,
    config: LabelConfig | None = None,
) -> np.ndarray:
    """ARKit curves for one utterance: float32 ``(n_frames, 52)`` in ``ARKIT_NAMES`` order, in [0, 1].

    ``audio`` is 16 kHz mono float32 ``(n,)``; ``spans`` are its phonemes (any order; IPA or ARPAbet).
    ``n_frames = num_label_frames(n, fps)`` (= ``n // 160`` at 100 fps), frame ``i`` at ``i / fps`` s.
    ``seed`` picks a small per-utterance style variation. Eye columns are 0. Raises ``AudioError`` for
    unusable audio and ValueError for a bad span (naming it) or a non-positive fps.
    """
    config = config or LabelConfig()
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"label_utterance: fps must be a positive number, got {fps}")
    audio = prepare_waveform(np.asarray(audio), SAMPLE_RATE, "label_utterance audio")
    n_frames = num_label_frames(len(audio), fps)
    starts, ends, ids = viseme_segments(spans, len(audio) / SAMPLE_RATE)
    gains, brow_gain = _style(seed, config.style_jitter)
    curves = coarticulate(starts, ends, ids, n_frames, fps, config) * gains
    curves += prosody_curves(audio, n_frames, fps, config) * brow_gain
    return np.clip(curves, 0.0, 1.0).astype(np.float32)
