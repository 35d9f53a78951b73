"""Articulation strength: mute (0.5) or exaggerate (1.5) the mouth's motion without moving its timing.

Every frame is mapped on its own by a function that increases with the model's value, so peaks and
closures stay on the same frames (the timing cannot move):

* Openness (``jawOpen - mouthClose``) above the closed gap is scaled: ``gap' = CLOSED_GAP + a (gap -
  CLOSED_GAP)``; at or below it nothing changes, so closed lips stay closed at any strength. The change
  goes into jawOpen.
* The other mouth and jaw shapes (funnel, pucker, smile, stretch, lip raise/lower, jaw sideways...) are
  scaled by ``a``, except the closers (mouthClose, mouthPress, lip rolls), which keep the model's value.
"""

from __future__ import annotations

import numpy as np

from audio2blendshape.expression.blend import CLOSED_GAP, CLOSERS, openness
from audio2blendshape.names import ARKIT_NAMES

MIN_ARTICULATION, MAX_ARTICULATION = 0.5, 1.5  # the range offered: half to one and a half the motion
_JAW = ARKIT_NAMES.index("jawOpen")
SCALED = np.array(
    [
        i
        for i, n in enumerate(ARKIT_NAMES)
        if (n.startswith("mouth") or n.startswith("jaw") or n == "tongueOut")
        and i not in CLOSERS
        and i != _JAW
    ]
)


def check_articulation(value: float) -> float:
    """``value`` as a float in [0.5, 1.5], or a ValueError saying the range."""
    value = float(value)
    if not MIN_ARTICULATION <= value <= MAX_ARTICULATION:
        raise ValueError(
            f"articulation must be within {MIN_ARTICULATION:g}..{MAX_ARTICULATION:g} (1 = as the model "
            f"speaks), got {value:g}"
        )
    return value


def scale_articulation(curves: np.ndarray, strength: float) -> np.ndarray:
    """ARKit curves ``(T, 52)`` with the mouth's motion scaled by ``strength``: float32 ``(T, 52)``."""
    strength = check_articulation(strength)
    out = np.array(curves, dtype=np.float64, copy=True)
    if strength == 1.0:
        return out.astype(np.float32)
    gap = openness(out)
    wider = np.where(gap > CLOSED_GAP, CLOSED_GAP + strength * (gap - CLOSED_GAP), gap)
    out[:, _JAW] = out[:, _JAW] + (wider - gap)
    out[:, SCALED] *= strength
    return np.clip(out, 0.0, 1.0).astype(np.float32)
