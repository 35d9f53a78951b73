"""Paired comparison of two models on the same utterances: is one's MSE really lower, or is it noise?

Two checkpoints scored on one split see the same utterances, so their difference can be measured far more
finely than two independent intervals suggest: some utterances are hard for every model, and resampling
the utterances (not the frames, which are not independent) keeps each utterance's pair together. A change
of a fraction of a percent that every utterance agrees on is real; the same change on half of them is not.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from audio2blendshape.evaluation.lipsync import BOOTSTRAP_RESAMPLES, ratio_interval


def paired_mse_change(
    base: np.ndarray,
    other: np.ndarray,
    level: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
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
    low, high = ratio_interval(other, base, level, resamples, seed)
    return {
        "mse_change": float(other.sum() / base.sum() - 1.0),
        "mse_change_ci": [low - 1.0, high - 1.0],
        "better_share": float(np.mean(other < base)),
        "utterances": int(base.size),
    }
