"""How an expression combines with lip-sync curves so that articulation survives.

The lip-sync curves own the articulators; an expression may only add to them where the lips are free:

* **Closure gate.** ``closure(t)`` is 1 where the lip-sync lips touch (openness ``jawOpen - mouthClose``
  at or below ``CLOSED_GAP``, the evaluation's criterion) and eases to 0 at ``FREE_GAP``. Expression
  offsets on the shapes that part the lips (jawOpen, the lips' up/down shapes, funnel) are multiplied by
  ``1 - closure``, so wherever the model closes the lips (m, b, p, pauses) the gap is exactly the model's.
  Since the added gap grows with the model's own openness, the order of frames by openness is kept too:
  open vowels stay more open than bilabials whatever the preset.
* **Spreaders vs rounding.** A smile or stretch spreads the lip corners, which fights rounding (o, u, w:
  mouthFunnel/mouthPucker). Rounding rises from 0 at funnel or pucker ``ROUNDING_START`` to 1 at
  ``ROUNDED``; fully rounded lips keep ``ROUNDED_SPREAD`` of the spreaders, so an o still reads as an o
  on a smiling face. Where the lips close, spreaders keep ``CLOSED_SPREAD``: the lips press together
  against a slightly smaller smile, as a smiling speaker's do on m/b/p, but a closed-mouth smile at rest
  stays a smile.
* **Everything else** (brows, eyes, cheeks, nose, frown, chin) is layered with a screen blend,
  ``1 - (1 - lip)(1 - expression)``: additive for small values, never above 1.

The model's mouthClose is kept as it is, and mouthPress and the lip rolls are never lowered. All of
it is per frame, without state, so blocks of any size give the same frames.
"""

from __future__ import annotations

import numpy as np

from audio2blendshape.names import ARKIT_NAMES

CLOSED_GAP = 0.03  # openness at or below this: the lips touch (data.visemes.LIPS_CLOSED_MAX_GAP)
FREE_GAP = 0.15  # openness from which the lips are free to take an expression fully
ROUNDING_START = 0.1  # funnel or pucker below this is the model's resting shape, not rounding
ROUNDED = 0.5  # funnel or pucker at which the lips count as fully rounded
ROUNDED_SPREAD = 0.2  # share of a spreader (smile, stretch, dimple) kept on fully rounded lips
CLOSED_SPREAD = 0.8  # share of a spreader kept while the lips close

_I = {name: i for i, name in enumerate(ARKIT_NAMES)}


def _cols(*stems: str) -> np.ndarray:
    names = [n for n in ARKIT_NAMES if any(n == s or n in (s + "Left", s + "Right") for s in stems)]
    return np.array([_I[n] for n in names])


# Shapes whose expression offset would part the lips: gated fully by the closure.
LIP_PARTING = _cols("jawOpen", "mouthUpperUp", "mouthLowerDown", "mouthFunnel", "mouthPucker", "tongueOut")
# Shapes the lip sync needs to close or shape the lips: the expression never lowers them.
CLOSERS = _cols("mouthClose", "mouthPress", "mouthRollLower", "mouthRollUpper")
SPREADERS = _cols("mouthSmile", "mouthStretch", "mouthDimple")
ARTICULATORS = np.concatenate([LIP_PARTING, CLOSERS, _cols("jawForward", "jawLeft", "jawRight")])


def openness(curves: np.ndarray) -> np.ndarray:
    """Lip gap ``jawOpen - mouthClose`` of ARKit curves ``(T, 52)`` -> ``(T,)``."""
    return curves[:, _I["jawOpen"]] - curves[:, _I["mouthClose"]]


def closure(curves: np.ndarray) -> np.ndarray:
    """1 where the lips touch, easing to 0 where they are free: ``(T,)`` in [0, 1]."""
    x = np.clip((openness(curves) - CLOSED_GAP) / (FREE_GAP - CLOSED_GAP), 0.0, 1.0)
    return 1.0 - x * x * (3.0 - 2.0 * x)


def rounding(curves: np.ndarray) -> np.ndarray:
    """How rounded the lips are, from funnel and pucker: ``(T,)`` in [0, 1]."""
    funnel = curves[:, _cols("mouthFunnel")].max(axis=1)
    pucker = curves[:, _cols("mouthPucker")].max(axis=1)
    return np.clip((np.maximum(funnel, pucker) - ROUNDING_START) / (ROUNDED - ROUNDING_START), 0.0, 1.0)


def screen(base: np.ndarray, layer: np.ndarray) -> np.ndarray:
    """``1 - (1 - base)(1 - layer)`` for values in [0, 1]."""
    return 1.0 - (1.0 - base) * (1.0 - layer)


def blend_expression(lip: np.ndarray, expression: np.ndarray) -> np.ndarray:
    """Lip-sync curves ``(T, 52)`` with expression weights ``(T, 52)`` (ARKit order) layered on: float32.

    ``expression`` is the preset mix already scaled by its intensity (0 everywhere: ``lip`` unchanged).
    """
    lip = np.clip(np.asarray(lip, dtype=np.float64), 0.0, 1.0)
    expr = np.clip(np.asarray(expression, dtype=np.float64), 0.0, 1.0)
    closed = closure(lip)[:, None]
    out = screen(lip, expr)
    out[:, LIP_PARTING] = lip[:, LIP_PARTING] + expr[:, LIP_PARTING] * (1.0 - closed)
    spread = (1.0 - (1.0 - ROUNDED_SPREAD) * rounding(lip))[:, None] * (1.0 - (1.0 - CLOSED_SPREAD) * closed)
    out[:, SPREADERS] = screen(lip[:, SPREADERS], expr[:, SPREADERS] * spread)
    out[:, CLOSERS] = np.maximum(lip[:, CLOSERS], out[:, CLOSERS] * (1.0 - closed))
    out[:, _I["mouthClose"]] = lip[:, _I["mouthClose"]]  # a preset's mouthClose would fake closures
    return np.clip(out, 0.0, 1.0).astype(np.float32)
