"""Paired comparison of two models on the same utterances: is one's MSE really lower, or is it noise?

Two checkpoints scored on one split see the same utterances, so their difference can be measured far more
finely than two independent intervals suggest: some utterances are hard for every model, and resampling
the utterances (not the frames, which are not independent) keeps each utterance's pair together. A change
of a fraction of a percent that every utterance agrees on is real; the same change on half of them is not.
"""

from __future__ import annotations

from typing import Any

import numpy as np

PAIRED_RESAMPLES = 2000  # resamples of the split's utterances for the interval of the change


def paired_mse_change(
    base: np.ndarray, other: np.ndarray, level: float = 0.95, resamples: int = PAIRED_RESAMPLES, seed: int = 0
) -> dict[str, Any]:
    """``other``'s MSE against ``base``'s on the same utterances, from per-utterance squared-error sums.

    ``base`` and ``other``: ``(U,)`` float sums of squared error per utterance over the same frames and
    channels. Returns ``mse_change`` (``other / base - 1`` over the whole split; negative: ``other`` is
    better), ``mse_change_ci`` (``[low, high]``, the ``level`` interval from ``resamples`` draws of the
    utterances with replacement; seeded, so the same split gives the same interval), ``better_share``
    (the share of utterances where ``other``'s error is lower) and ``utterances``.
    """
    base, other = np.asarray(base, dtype=np.float64), np.asarray(other, dtype=np.float64)
    if base.shape != other.shape or base.ndim != 1:
        raise ValueError(f"per-utterance errors differ in shape: {base.shape} and {other.shape}")
    if not base.size or base.sum() <= 0:
        return {"mse_change": None, "mse_change_ci": None, "better_share": None, "utterances": int(base.size)}
    draws = np.random.default_rng(seed).integers(0, base.size, size=(resamples, base.size))
    drawn_base = base[draws].sum(1)
    changes = other[draws].sum(1)[drawn_base > 0] / drawn_base[drawn_base > 0] - 1.0
    tail = (1.0 - level) / 2
    return {
        "mse_change": float(other.sum() / base.sum() - 1.0),
        "mse_change_ci": [float(q) for q in np.quantile(changes, [tail, 1.0 - tail])],
        "better_share": float(np.mean(other < base)),
        "utterances": int(base.size),
    }
