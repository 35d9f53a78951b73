"""Emotion presets: ARKit weight vectors for neutral, happy, sad, angry, surprised, fearful and disgusted,
and user presets read from JSON.

A preset is the face at full intensity with the mouth free; ``blend`` decides how much of it the lips may
show while they articulate. The built-in poses follow FACS descriptions of the prototypical expressions
(happy: AU6 + AU12, cheeks raised and lip corners pulled up; sad: AU1 + AU4 + AU15; angry: AU4 + AU5/7 +
AU23; surprised: AU1 + AU2 + AU5 + AU26; fearful: AU1 + AU2 + AU4 + AU5 + AU20; disgusted: AU9 + AU10 +
AU15), held to moderate values: a talking face wears an expression, it does not pose it.

A user preset is a JSON object of ARKit names (any case) to weights in [0, 1], e.g.
``{"mouthSmileLeft": 0.5, "browInnerUp": 0.2}``; its name is the file's stem. Omitted shapes are 0.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from audio2blendshape.names import ARKIT_NAMES

_BOTH = ("Left", "Right")


def _sym(**weights: float) -> dict[str, float]:
    """``mouthSmile=0.5`` -> ``mouthSmileLeft`` and ``mouthSmileRight``; whole names stay as they are."""
    out: dict[str, float] = {}
    for name, value in weights.items():
        if name in ARKIT_NAMES:
            out[name] = value
        else:
            out.update({name + side: value for side in _BOTH})
    return out


BUILTIN: dict[str, dict[str, float]] = {
    "neutral": {},
    "happy": _sym(mouthSmile=0.65, cheekSquint=0.45, eyeSquint=0.25, mouthDimple=0.15, browOuterUp=0.05),
    "sad": _sym(browInnerUp=0.6, browDown=0.15, mouthFrown=0.45, mouthShrugLower=0.2, eyeSquint=0.1),
    "angry": _sym(browDown=0.7, eyeSquint=0.3, noseSneer=0.3, mouthFrown=0.25, mouthStretch=0.15),
    "surprised": _sym(browInnerUp=0.7, browOuterUp=0.7, eyeWide=0.6, jawOpen=0.12, mouthFunnel=0.05),
    "fearful": _sym(browInnerUp=0.6, browOuterUp=0.3, browDown=0.1, eyeWide=0.5, mouthStretch=0.4),
    "disgusted": _sym(noseSneer=0.6, mouthUpperUp=0.35, browDown=0.35, cheekSquint=0.3, mouthFrown=0.25,
                      eyeSquint=0.2, mouthShrugUpper=0.2),
}  # fmt: skip
EMOTIONS: tuple[str, ...] = tuple(BUILTIN)  # the built-in preset names, "neutral" first

_INDEX = {name.lower(): i for i, name in enumerate(ARKIT_NAMES)}


class PresetError(ValueError):
    """A preset that cannot be used: unknown name, bad file, bad weight; the message says which and why."""


def weights_vector(weights: Mapping[str, float], where: str) -> np.ndarray:
    """ARKit weights by name -> float32 ``(52,)`` in ARKit order; a PresetError naming ``where`` else."""
    vector = np.zeros(len(ARKIT_NAMES), np.float32)
    for name, value in weights.items():
        index = _INDEX.get(str(name).strip().lower())
        if index is None:
            raise PresetError(f"{where}: {name!r} is not one of the 52 ARKit blendshape names")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise PresetError(f"{where}: the weight of {name!r} is {value!r}, not a number")
        if not 0.0 <= value <= 1.0:
            raise PresetError(f"{where}: the weight of {name!r} is {value:g}, outside [0, 1]")
        vector[index] = value
    return vector


def builtin_vector(name: str) -> np.ndarray:
    """The built-in preset ``name`` as float32 ``(52,)``."""
    return weights_vector(BUILTIN[name], f"preset {name!r}")


def load_preset(path: str | Path) -> tuple[str, np.ndarray]:
    """A user preset file -> (its name, the file's stem; float32 ``(52,)``); a PresetError naming the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise PresetError(f"{path}: not a preset JSON file ({error})") from error
    if not isinstance(data, dict) or not data:
        raise PresetError(
            f"{path}: a preset is a non-empty JSON object of ARKit names to weights in [0, 1], "
            f'e.g. {{"mouthSmileLeft": 0.5}}'
        )
    name = path.stem.lower()
    if name in BUILTIN:
        raise PresetError(f"{path}: the name {name!r} is a built-in preset; rename the file")
    return name, weights_vector(data, str(path))


class PresetLibrary:
    """The built-in presets plus user ones, looked up by name (case-insensitive)."""

    def __init__(self, user: Mapping[str, np.ndarray] | None = None) -> None:
        self._vectors = {name: builtin_vector(name) for name in EMOTIONS}
        for name, vector in (user or {}).items():
            array = np.asarray(vector, dtype=np.float32)
            if array.shape != (len(ARKIT_NAMES),):
                raise PresetError(f"preset {name!r}: expected {len(ARKIT_NAMES)} ARKit weights")
            self._vectors[name.lower()] = array

    @classmethod
    def from_files(cls, paths: list[str | Path] | tuple[str | Path, ...]) -> PresetLibrary:
        """The built-ins plus each file's preset."""
        return cls(dict(load_preset(p) for p in paths))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._vectors)

    def vector(self, name: str) -> np.ndarray:
        """The preset called ``name``: float32 ``(52,)`` (a copy)."""
        try:
            return self._vectors[name.strip().lower()].copy()
        except KeyError:
            raise PresetError(
                f"unknown emotion preset {name!r}; choose one of {', '.join(self._vectors)} "
                "(or load a user preset JSON file)"
            ) from None
