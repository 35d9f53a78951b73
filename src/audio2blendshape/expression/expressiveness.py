"""Expressiveness from prosody: brows rise on emphasis, eyes widen on emphatic high pitch, cheeks lift on
loud open vowels.

This follows *how* something is said (``prosody``), not what is felt: there is no emotion recognition
here. Each shape's addition is ``strength x gain x drive`` with the drive in [0, 1], so at strength 1 no
shape gets more than its gain (the natural range: ``GAINS``). Per frame and stateless: the smoothing is in
the prosody features, which are causal.
"""

from __future__ import annotations

import numpy as np

from audio2blendshape.expression.blend import screen
from audio2blendshape.expression.prosody import COLUMN
from audio2blendshape.names import ARKIT_NAMES

MAX_EXPRESSIVENESS = 2.0  # strengths above this leave the natural range far behind
GAINS: dict[str, float] = {  # shape -> its largest addition at strength 1
    "browInnerUp": 0.35, "browOuterUpLeft": 0.3, "browOuterUpRight": 0.3,
    "eyeWideLeft": 0.2, "eyeWideRight": 0.2,
    "cheekSquintLeft": 0.25, "cheekSquintRight": 0.25,
}  # fmt: skip
_I = {name: i for i, name in enumerate(ARKIT_NAMES)}
OPEN_JAW = (0.2, 0.5)  # jawOpen from which an open vowel starts lifting the cheeks, and where it is full


def check_expressiveness(value: float) -> float:
    """``value`` as a float in [0, MAX_EXPRESSIVENESS], or a ValueError saying the range."""
    value = float(value)
    if not 0.0 <= value <= MAX_EXPRESSIVENESS:
        raise ValueError(
            f"expressiveness must be within 0..{MAX_EXPRESSIVENESS:g} (0 off, 1 natural), got {value:g}"
        )
    return value


def drives(curves: np.ndarray, features: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame drives in [0, 1] of ``brows``, ``eyes`` and ``cheeks`` from curves and prosody rows."""
    emphasis = features[:, COLUMN["emphasis"]]
    high = np.clip(features[:, COLUMN["pitch_st"]] / 4.0, 0.0, 1.0)
    low, full = OPEN_JAW
    open_vowel = np.clip((curves[:, _I["jawOpen"]] - low) / (full - low), 0.0, 1.0)
    return {
        "brows": emphasis,
        "eyes": emphasis * high,
        "cheeks": features[:, COLUMN["loud"]] * open_vowel,
    }


def apply_expressiveness(curves: np.ndarray, features: np.ndarray, strength: float) -> np.ndarray:
    """ARKit curves ``(T, 52)`` with prosody ``features (T, F)`` (one row per frame) shown: float32."""
    strength = check_expressiveness(strength)
    out = np.array(curves, dtype=np.float64, copy=True)
    if strength == 0.0 or len(out) == 0:
        return out.astype(np.float32)
    drive = drives(out, features)
    for name, gain in GAINS.items():
        kind = "brows" if name.startswith("brow") else "eyes" if name.startswith("eye") else "cheeks"
        column = _I[name]
        out[:, column] = screen(out[:, column], np.clip(strength * gain * drive[kind], 0.0, 1.0))
    return out.astype(np.float32)
