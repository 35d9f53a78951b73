"""Evaluation metrics (pure numpy): curve errors per face region, and rig-free lip-sync figures.

Everything is accumulated utterance by utterance, so a split of any size is scored in constant memory.

Curve errors (``CurveErrors``) compare predicted and label curves ``(T, K)`` frame by frame: MSE and L1
overall and per region (``region_groups``), and the mean over channels of the Pearson correlation pooled
over all frames of the split.

Lip sync (``LipSync``) needs only mouth openness (``visemes.mouth_openness`` = jawOpen − mouthClose, one
value per frame) and the utterance's phoneme timings, so it reads the same for any rig that has those two
shapes. Phonemes become viseme segments exactly as the labels do (``labels.viseme_segments``: diphthongs
split, uncovered time is silence); adjacent silence is merged into one pause. Then:

* ``auc``: ROC AUC of openness at the middle of each open-vowel segment (visemes aa, E, O: target jaw
  at least 0.35) against openness at the middle of each bilabial (p b m) and of each pause of at least
  ``MIN_PAUSE_S`` (shorter gaps between words are legitimately open in the labels too).
* ``closure``: the share of bilabials whose lips close: openness ≤ ``LIPS_CLOSED_MAX_GAP`` (the label
  rules' criterion) somewhere within ±``CLOSURE_WINDOW_S`` of the middle, never beyond the middle half of
  the phoneme, whose middle half the label closure spans. ``closure_mid`` is the strict
  variant, the value interpolated at the exact middle. ``closure_ci`` is its 95% interval, a bootstrap over
  utterances (bilabials of one utterance share a voice and a text, so they are not independent draws): two
  models whose intervals overlap widely are not told apart by the split.
* ``false_closure``: the same test as ``closure`` on the consonants whose lips stay apart (visemes
  TH DD kk CH SS nn RR: t, d, n, k, s...): the price of closing decisively. The labels close on a few,
  next to a bilabial.
* ``closure_auc``: ROC AUC of the narrowest gap the closure test sees near each bilabial against the same
  near each lips-apart consonant (smaller counts as more closed). It does not depend on the threshold, so
  it bounds the pairs (closure, false closure) that any monotone remapping of the openness could reach.
* ``pause_openness``: mean openness over the middle half of the pauses.
* ``lag_ms``: the shift (±``MAX_LAG_S``) that maximises the correlation between predicted openness and the
  phonemes' target openness (each frame gets its viseme's target jawOpen − mouthClose), pooled over the
  split; positive means the animation is late. ``lag_vs_labels_ms`` does the same against the label
  curves' own openness.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from audio2blendshape.data.labels import segment_ids_at_frames, viseme_segments
from audio2blendshape.data.visemes import LIPS_CLOSED_MAX_GAP, POSES, SILENCE, VISEMES, PhonemeSpan
from audio2blendshape.names import ARKIT_GROUPS, ARKIT_NAMES

OPEN_VOWELS: tuple[str, ...] = ("aa", "E", "O")  # visemes whose target jawOpen is at least 0.35
BILABIALS: tuple[str, ...] = ("PP",)  # p b m: the lips must touch
APART: tuple[str, ...] = ("TH", "DD", "kk", "CH", "SS", "nn", "RR")  # consonants whose lips stay apart
MIN_PAUSE_S = 0.15  # silence at least this long is a pause (shorter ones stay open in the labels too)
CLOSURE_WINDOW_S = 0.02  # a bilabial counts as closed if the lips touch this close to its middle
BOOTSTRAP_RESAMPLES = 2000  # resamples of the split's utterances for the closure and paired-MSE intervals
MAX_LAG_S = 0.2  # the lag search covers ±200 ms
TARGETS: dict[str, tuple[str, float]] = {  # metric -> (">=" or "abs<=", bound): the targets
    "auc": (">=", 0.95),
    "closure": (">=", 0.9),
    "lag_ms": ("abs<=", 20.0),
}

_OPEN_IDS = np.array([VISEMES.index(v) for v in OPEN_VOWELS])
_BILABIAL_IDS = np.array([VISEMES.index(v) for v in BILABIALS])
_APART_IDS = np.array([VISEMES.index(v) for v in APART])
# Each viseme's target lip gap; a 1-D step reference for the lag that depends on the phonemes alone.
_TARGET_GAP = np.array([POSES[v].get("jawOpen", 0.0) - POSES[v].get("mouthClose", 0.0) for v in VISEMES])


# ---------------------------------------------------------------------------------------------- regions


def region_groups(names: Sequence[str]) -> dict[str, list[int]]:
    """Face regions as column lists: ``ARKIT_GROUPS`` when every name is ARKit, else by name prefix.

    The prefix is the first lower-case word of the name (``eye`` of ``eyeBlink_L``, ``mouth`` of
    ``mouth_smile``); single-column prefixes go to ``other``. Returns {} (overall figures only) when that
    gives fewer than two regions or nearly one region per column, where regions would mean nothing.
    """
    lower = [n.lower() for n in names]
    if set(lower) <= {n.lower() for n in ARKIT_NAMES}:
        groups = {g: [lower.index(n.lower()) for n in members if n.lower() in lower]
                  for g, members in ARKIT_GROUPS.items()}  # fmt: skip
        return {g: cols for g, cols in groups.items() if cols}
    by_prefix: dict[str, list[int]] = {}
    for k, name in enumerate(names):
        match = re.match(r"[A-Za-z][a-z]*", name)
        by_prefix.setdefault(match.group(0).lower() if match else "other", []).append(k)
    out: dict[str, list[int]] = {}
    for prefix, cols in by_prefix.items():
        out.setdefault(prefix if len(cols) > 1 else "other", []).extend(cols)
    if len(out) < 2 or len(out) > len(names) // 2:
        return {}
    return {g: sorted(cols) for g, cols in out.items()}


# ---------------------------------------------------------------------------------------------- curve errors


class CurveErrors:
    """Running MSE, L1 and per-channel Pearson sums of predictions against labels, both ``(T, K)``."""

    def __init__(self, num_channels: int) -> None:
        self.frames = 0
        # float64 sums per channel: squared error, absolute error, then x, y, x², y², xy for Pearson
        self.sums = np.zeros((7, num_channels))
        self.utterance_errors: list[float] = []  # each utterance's summed squared error, for paired tests

    def add(self, predicted: np.ndarray, target: np.ndarray) -> None:
        """Add one utterance: ``predicted`` and ``target`` float ``(T, K)`` on the same frame grid."""
        if predicted.shape != target.shape or predicted.shape[1] != self.sums.shape[1]:
            raise ValueError(f"predicted {predicted.shape} and target {target.shape} curves differ in shape")
        x, y = predicted.astype(np.float64), target.astype(np.float64)
        error = x - y
        squared = error**2
        for i, term in enumerate((squared, np.abs(error), x, y, x * x, y * y, x * y)):
            self.sums[i] += term.sum(axis=0)
        self.utterance_errors.append(float(squared.sum()))
        self.frames += x.shape[0]

    def pearson(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel correlation ``(K,)`` and a mask of channels where it is defined (labels vary).

        A constant prediction of a varying channel explains none of it, so it scores 0 rather than NaN.
        """
        n = max(self.frames, 1)
        _, _, sx, sy, sxx, syy, sxy = self.sums
        var_x = np.maximum(sxx / n - (sx / n) ** 2, 0.0)
        var_y = np.maximum(syy / n - (sy / n) ** 2, 0.0)
        cov = sxy / n - (sx / n) * (sy / n)
        defined = var_y > 1e-12
        r = np.where(defined & (var_x > 1e-12), cov / np.sqrt(np.maximum(var_x * var_y, 1e-300)), 0.0)
        return np.clip(r, -1.0, 1.0), defined

    def result(self, groups: dict[str, list[int]]) -> dict[str, Any]:
        """MSE, L1, mean Pearson r over channels whose labels vary, and MSE/L1 per region."""
        n = max(self.frames, 1)
        mse, l1 = self.sums[0] / n, self.sums[1] / n
        r, defined = self.pearson()
        return {
            "mse": float(mse.mean()),
            "l1": float(l1.mean()),
            "pearson": float(r[defined].mean()) if defined.any() else None,
            "pearson_channels": int(defined.sum()),
            "regions": {
                g: {"mse": float(mse[c].mean()), "l1": float(l1[c].mean())} for g, c in groups.items()
            },
        }


# ---------------------------------------------------------------------------------------------- lip sync


@dataclass(frozen=True)
class Timeline:
    """An utterance's phonemes as viseme segments in seconds, sorted, pauses merged."""

    starts: np.ndarray  # (S,) float64
    ends: np.ndarray  # (S,) float64
    ids: np.ndarray  # (S,) int64 indices into visemes.VISEMES

    @property
    def middles(self) -> np.ndarray:
        return 0.5 * (self.starts + self.ends)


def phoneme_timeline(phonemes: Sequence[Sequence[Any]], duration: float) -> Timeline:
    """Manifest phoneme rows ``[[start, end, symbol], ...]`` (seconds) as a ``Timeline``.

    Raises ValueError naming the bad row (the caller adds the file).
    """
    spans = []
    for i, row in enumerate(phonemes):
        try:
            start, end, symbol = row
            spans.append(PhonemeSpan(float(start), float(end), str(symbol)))
        except (TypeError, ValueError) as error:
            raise ValueError(f"phoneme row {i} ({row!r}) is not [start, end, symbol]") from error
    starts, ends, ids = viseme_segments(spans, duration)
    keep = np.ones(len(ids), dtype=bool)
    # Segments are sorted and contiguous; fold a silence into a silence just before it.
    for s in range(1, len(ids)):
        if ids[s] == SILENCE and ids[s - 1] == SILENCE:
            first = s - 1
            while not keep[first]:
                first -= 1
            ends[first] = max(ends[first], ends[s])
            keep[s] = False
    return Timeline(starts[keep], ends[keep], ids[keep])


def roc_auc(positive: np.ndarray, negative: np.ndarray) -> float | None:
    """P(a random positive scores above a random negative), ties counting half; None if a side is empty."""
    positive, negative = np.asarray(positive, float).ravel(), np.sort(np.asarray(negative, float).ravel())
    if positive.size == 0 or negative.size == 0:
        return None
    below = np.searchsorted(negative, positive, side="left")
    not_above = np.searchsorted(negative, positive, side="right")
    return float((below + 0.5 * (not_above - below)).sum() / (positive.size * negative.size))


def value_at(signal: np.ndarray, seconds: np.ndarray, fps: float) -> np.ndarray:
    """``signal (T,)`` (frame i at i / fps) linearly interpolated at ``seconds``; held past the ends."""
    return np.interp(np.asarray(seconds) * fps, np.arange(signal.shape[0]), signal)


def narrowest_gaps(openness: np.ndarray, starts: np.ndarray, ends: np.ndarray, fps: float) -> np.ndarray:
    """For each span, the smallest openness the closure test looks at: ``(S,)`` float64.

    That is the openness at the middle and at every frame within ±``CLOSURE_WINDOW_S`` of it, but not
    outside the span's middle half (see module doc).
    """
    middles = 0.5 * (starts + ends)
    gaps = value_at(openness, middles, fps)
    half_width = np.minimum(CLOSURE_WINDOW_S, 0.25 * (ends - starts))
    first = np.ceil((middles - half_width) * fps - 1e-9).astype(int)
    last = np.floor((middles + half_width) * fps + 1e-9).astype(int)
    for s in range(len(middles)):
        window = openness[max(first[s], 0) : max(last[s] + 1, 0)]
        if window.size:
            gaps[s] = min(gaps[s], float(window.min()))
    return gaps


def closures(openness: np.ndarray, starts: np.ndarray, ends: np.ndarray, fps: float) -> np.ndarray:
    """For each bilabial span: did the lips touch near its middle? ``(S,)`` bool (see module doc)."""
    return narrowest_gaps(openness, starts, ends, fps) <= LIPS_CLOSED_MAX_GAP


def target_openness(timeline: Timeline, frames: int, fps: float) -> np.ndarray:
    """The phonemes' target lip gap per frame ``(frames,)``: a step function, 0 in silence."""
    # Frames no segment covers get SILENCE, whose target gap is 0.
    return _TARGET_GAP[segment_ids_at_frames(timeline.starts, timeline.ends, timeline.ids, frames, fps)]


class LagSearch:
    """Pooled correlation of a signal against a reference at each shift of ±``MAX_LAG_S``."""

    def __init__(self, fps: float) -> None:
        self.fps = fps
        self.max_lag = round(MAX_LAG_S * fps)
        self.sums = np.zeros((2 * self.max_lag + 1, 6))  # per lag: n, Σa, Σb, Σa², Σb², Σab

    def add(self, signal: np.ndarray, reference: np.ndarray) -> None:
        """Add one utterance: ``signal`` and ``reference`` ``(T,)``; each is centred on its own mean."""
        a = signal.astype(np.float64) - signal.mean()
        b = reference.astype(np.float64) - reference.mean()
        frames = a.shape[0]
        for j, k in enumerate(range(-self.max_lag, self.max_lag + 1)):
            if abs(k) >= frames:
                continue
            # signal[t + k] against reference[t]: a late signal peaks at k > 0
            x, y = (a[k:], b[: frames - k]) if k >= 0 else (a[: frames + k], b[-k:])
            self.sums[j] += (x.size, x.sum(), y.sum(), x @ x, y @ y, x @ y)

    def correlations(self) -> np.ndarray:
        """Pearson r per lag ``(2L+1,)``; NaN where either side is constant."""
        n, sx, sy, sxx, syy, sxy = (self.sums[:, i] for i in range(6))
        n = np.maximum(n, 1)
        cov = sxy / n - sx * sy / n**2
        var = (sxx / n - (sx / n) ** 2) * (syy / n - (sy / n) ** 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(var > 1e-18, cov / np.sqrt(np.maximum(var, 1e-300)), np.nan)

    def result(self) -> tuple[float | None, float | None, bool]:
        """(lag in ms, refined by a parabola through the peak; peak r; whether the peak is at the limit)."""
        r = self.correlations()
        if np.all(np.isnan(r)):
            return None, None, False
        j = int(np.nanargmax(r))
        shift = 0.0
        if 0 < j < len(r) - 1 and not np.isnan(r[j - 1 : j + 2]).any():
            curvature = r[j - 1] - 2 * r[j] + r[j + 1]
            shift = 0.5 * (r[j - 1] - r[j + 1]) / curvature if curvature < 0 else 0.0
        lag_ms = (j - self.max_lag + shift) / self.fps * 1000.0
        return float(lag_ms), float(r[j]), j in (0, len(r) - 1)


class LipSync:
    """Running lip-sync figures of one animation over a split (see the module docstring)."""

    def __init__(self, fps: float) -> None:
        self.fps = fps
        self.open: list[np.ndarray] = []  # openness at open-vowel middles
        self.shut: list[np.ndarray] = []  # openness at bilabial and pause middles
        self.closed: list[np.ndarray] = []  # bool per bilabial, with the tolerance
        self.closed_mid: list[np.ndarray] = []  # bool per bilabial, strictly at the middle
        self.falsely_closed: list[np.ndarray] = []  # bool per lips-apart consonant, with the tolerance
        self.bilabial_gaps: list[np.ndarray] = []  # narrowest openness near each bilabial's middle
        self.apart_gaps: list[np.ndarray] = []  # the same near each lips-apart consonant's middle
        self.pause_sum, self.pause_frames, self.pauses = 0.0, 0, 0
        self.lag, self.lag_labels = LagSearch(fps), LagSearch(fps)

    def add(self, openness: np.ndarray, timeline: Timeline, label_openness: np.ndarray | None = None) -> None:
        """Add one utterance: predicted ``openness (T,)``, its ``timeline``, and the labels' openness."""
        mid = value_at(openness, timeline.middles, self.fps)
        bilabial = np.isin(timeline.ids, _BILABIAL_IDS)
        pause = (timeline.ids == SILENCE) & (timeline.ends - timeline.starts >= MIN_PAUSE_S)
        self.open.append(mid[np.isin(timeline.ids, _OPEN_IDS)])
        self.shut.append(mid[bilabial | pause])
        self.bilabial_gaps.append(
            narrowest_gaps(openness, timeline.starts[bilabial], timeline.ends[bilabial], self.fps)
        )
        self.closed.append(self.bilabial_gaps[-1] <= LIPS_CLOSED_MAX_GAP)
        self.closed_mid.append(mid[bilabial] <= LIPS_CLOSED_MAX_GAP)
        apart = np.isin(timeline.ids, _APART_IDS)
        self.apart_gaps.append(
            narrowest_gaps(openness, timeline.starts[apart], timeline.ends[apart], self.fps)
        )
        self.falsely_closed.append(self.apart_gaps[-1] <= LIPS_CLOSED_MAX_GAP)
        for start, end in zip(timeline.starts[pause], timeline.ends[pause], strict=True):
            quarter = 0.25 * (end - start)
            frames = openness[
                math.ceil((start + quarter) * self.fps) : math.floor((end - quarter) * self.fps) + 1
            ]
            self.pause_sum += float(frames.sum())
            self.pause_frames += frames.size
            self.pauses += 1
        self.lag.add(openness, target_openness(timeline, openness.shape[0], self.fps))
        if label_openness is not None:
            self.lag_labels.add(openness, label_openness)

    def result(self) -> dict[str, Any]:
        """The figures as a JSON-ready dict (None where there was nothing to measure)."""
        closed, closed_mid = np.concatenate([[], *self.closed]), np.concatenate([[], *self.closed_mid])
        falsely_closed = np.concatenate([[], *self.falsely_closed])
        lag_ms, lag_r, at_limit = self.lag.result()
        lag_labels_ms, _, _ = self.lag_labels.result()
        return {
            "auc": roc_auc(np.concatenate([[], *self.open]), np.concatenate([[], *self.shut])),
            "closure": float(closed.mean()) if closed.size else None,
            "closure_ci": bootstrap_interval(self.closed),
            "closure_mid": float(closed_mid.mean()) if closed_mid.size else None,
            "false_closure": float(falsely_closed.mean()) if falsely_closed.size else None,
            "closure_auc": roc_auc(
                -np.concatenate([[], *self.bilabial_gaps]), -np.concatenate([[], *self.apart_gaps])
            ),
            "pause_openness": self.pause_sum / self.pause_frames if self.pause_frames else None,
            "lag_ms": lag_ms,
            "lag_r": lag_r,
            "lag_at_limit": at_limit,
            "lag_vs_labels_ms": lag_labels_ms,
            "open_vowels": int(sum(a.size for a in self.open)),
            "bilabials": int(closed.size),
            "pauses": self.pauses,
        }


def bootstrap_interval(
    parts: Sequence[np.ndarray], level: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> list[float] | None:
    """``[low, high]``: the ``level`` interval of the pooled share of True in ``parts`` (one bool array per
    utterance), from ``resamples`` draws of the utterances with replacement; None with no values at all.
    Seeded, so the same split gives the same interval."""
    hits = np.array([np.count_nonzero(p) for p in parts], dtype=np.int64)
    counts = np.array([np.size(p) for p in parts], dtype=np.int64)
    if not counts.sum():
        return None
    return ratio_interval(hits, counts, level, resamples, seed)


def ratio_interval(
    numerators: np.ndarray, denominators: np.ndarray, level: float, resamples: int, seed: int
) -> list[float]:
    """``[low, high]``: the ``level`` interval of ``sum(numerators) / sum(denominators)``, one pair per
    utterance ``(U,)``, from ``resamples`` seeded draws of the utterances with replacement (draws whose
    denominators sum to 0 are skipped). Needs ``sum(denominators) > 0``."""
    draws = np.random.default_rng(seed).integers(0, len(numerators), size=(resamples, len(numerators)))
    drawn_numerators, drawn_denominators = numerators[draws].sum(1), denominators[draws].sum(1)
    kept = drawn_denominators > 0
    ratios = drawn_numerators[kept] / drawn_denominators[kept]
    tail = (1.0 - level) / 2
    return [float(q) for q in np.quantile(ratios, [tail, 1.0 - tail])]


def meets_targets(lipsync: dict[str, Any]) -> bool:
    """True when every figure in ``TARGETS`` was measured and meets its bound."""
    for metric, (kind, bound) in TARGETS.items():
        value = lipsync.get(metric)
        if value is None or (kind == ">=" and value < bound) or (kind == "abs<=" and abs(value) > bound):
            return False
    return True
