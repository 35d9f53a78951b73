"""Speech-driven head motion: small turns at phrase starts and nods on stressed syllables.

No head pose is predicted from the face's curves; the motion is made from prosody events and a seed,
the way an animator keys a talking head:

* **Phrases.** When speech resumes after a pause (prosody's ``phrase`` counter steps), the head moves to a
  new resting pose drawn from the seed: yaw, pitch and roll with spreads ``POSE_SD_DEG``.
* **Stresses.** On a stressed syllable (``stress`` steps) the head dips (pitch down) by ``NOD_DEG`` times
  the emphasis, with a little yaw from the seed; the dip decays over ``NOD_DECAY_S``.
* **Smooth.** The head follows that target through a critically damped spring (``SPRING_HZ``), so position
  and velocity are continuous: no snaps, whatever the events.
* **Bounded.** The result goes through a soft limit (``tanh``) at ``LIMIT_DEG`` per axis, times the
  amplitude: at amplitude 1 the head never passes 8° of yaw, 6° of pitch or 4° of roll.

Events draw from a counter-based generator (event ``k`` of a seed always draws the same numbers), and the
spring advances frame by frame, so blocks of any size give the same motion. Angles are radians, with
``runtime.writers.Animation.head``'s conventions (yaw > 0 to the character's left, pitch > 0 chin down,
roll > 0 toward the right shoulder).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from audio2blendshape.expression.prosody import COLUMN

POSE_SD_DEG = (3.0, 1.5, 1.2)  # spread of a phrase's resting yaw, pitch, roll
NOD_DEG = 4.0  # pitch dip of a fully emphasised stress
NOD_YAW_SD_DEG = 0.8  # yaw jitter of a nod
NOD_DECAY_S = 0.3  # s; time constant of a nod's return
SPRING_HZ = 2.0  # natural frequency of the head's spring
LIMIT_DEG = (8.0, 6.0, 4.0)  # soft bound of yaw, pitch, roll at amplitude 1
MAX_AMPLITUDE = 2.0  # amplitudes above this leave the natural range behind
_PHRASE_STREAM, _STRESS_STREAM = 1, 2


def check_amplitude(value: float) -> float:
    """``value`` as a float in [0, MAX_AMPLITUDE], or a ValueError saying the range."""
    value = float(value)
    if not 0.0 <= value <= MAX_AMPLITUDE:
        raise ValueError(f"head motion must be within 0..{MAX_AMPLITUDE:g} (0 off, 1 natural), got {value:g}")
    return value


def _rng(seed: int, stream: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed % 2**63, stream, index])


@dataclass
class HeadState:
    """Where the head stands between blocks."""

    phrase: float = 0.0  # the prosody phrase counter last seen
    stress: float = 0.0  # the stress counter last seen
    rest: np.ndarray = field(default_factory=lambda: np.zeros(3))  # rad; the current phrase's pose
    nod: np.ndarray = field(default_factory=lambda: np.zeros(3))  # rad; the decaying nod offset
    position: np.ndarray = field(default_factory=lambda: np.zeros(3))  # rad; yaw, pitch, roll
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(3))  # rad/s


class HeadMotion:
    """Head rotation per frame from prosody rows, block by block: ``process(features) -> (t, 3)`` rad."""

    def __init__(self, fps: float, seed: int = 0, amplitude: float = 1.0) -> None:
        self.fps, self.seed, self.amplitude = fps, seed, check_amplitude(amplitude)
        self.state = HeadState()
        self._limit = np.radians(LIMIT_DEG) * self.amplitude

    def _events(self, row: np.ndarray) -> None:
        s = self.state
        phrase, stress = row[COLUMN["phrase"]], row[COLUMN["stress"]]
        while s.phrase < phrase:
            s.phrase += 1
            draw = _rng(self.seed, _PHRASE_STREAM, int(s.phrase)).normal(0.0, POSE_SD_DEG)
            s.rest = np.radians(draw) * self.amplitude
        while s.stress < stress:
            s.stress += 1
            yaw = _rng(self.seed, _STRESS_STREAM, int(s.stress)).normal(0.0, NOD_YAW_SD_DEG)
            emphasis = max(float(row[COLUMN["emphasis"]]), 0.5)
            s.nod = s.nod + np.radians([yaw, NOD_DEG * emphasis, 0.0]) * self.amplitude

    def process(self, features: np.ndarray) -> np.ndarray:
        """Prosody rows ``(t, F)``, one per output frame -> yaw, pitch, roll ``(t, 3)`` float32 radians."""
        s, dt = self.state, 1.0 / self.fps
        omega = 2.0 * math.pi * SPRING_HZ
        decay = math.exp(-dt / NOD_DECAY_S)
        out = np.zeros((len(features), 3))
        for i, row in enumerate(features):
            self._events(row)
            target = s.rest + s.nod
            # Semi-implicit Euler of x'' = w^2 (target - x) - 2 w x': stable at any frame rate >= 10 fps.
            s.velocity = s.velocity + dt * (omega * omega * (target - s.position) - 2.0 * omega * s.velocity)
            s.position = s.position + dt * s.velocity
            s.nod = s.nod * decay
            out[i] = s.position
        if self.amplitude == 0.0:
            return np.zeros((len(features), 3), np.float32)
        return (self._limit * np.tanh(out / self._limit)).astype(np.float32)
