"""Blendshape names: the 52 ARKit shapes in canonical order, and rigs as plain lists of names.

The ARKit order is Apple's ARFaceAnchor / Epic's EARFaceBlendShape order. Every other module takes its
names from here; nothing else in the package may assume there are 52 shapes. A rig that is not ARKit is
just a ``Rig`` with its own names (for example the 116-shape FACEGOOD rig).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ARKIT_NAMES: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft",
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight",
    "jawForward", "jawLeft", "jawRight", "jawOpen",
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight",
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "noseSneerLeft", "noseSneerRight",
    "tongueOut",
)  # fmt: skip

NUM_ARKIT = len(ARKIT_NAMES)

# Face regions, used for per-region metrics and for the perceptual loss weights.
ARKIT_GROUPS: dict[str, tuple[str, ...]] = {
    "eyes": tuple(n for n in ARKIT_NAMES if n.startswith("eye")),
    "jaw": tuple(n for n in ARKIT_NAMES if n.startswith("jaw")),
    "mouth": tuple(n for n in ARKIT_NAMES if n.startswith("mouth")),
    "brows": tuple(n for n in ARKIT_NAMES if n.startswith("brow")),
    "cheeks": tuple(n for n in ARKIT_NAMES if n.startswith("cheek")),
    "nose": tuple(n for n in ARKIT_NAMES if n.startswith("nose")),
    "tongue": tuple(n for n in ARKIT_NAMES if n.startswith("tongue")),
}


def _key(name: str) -> str:
    return name.strip().lower()


class UnknownBlendshapeError(KeyError):
    """A name that is not part of the rig it was looked up in."""

    def __str__(self) -> str:  # KeyError quotes its message; ours is already a sentence
        return str(self.args[0])


@dataclass(frozen=True)
class Rig:
    """An ordered list of blendshape names; the columns of every curve array trained on that rig."""

    names: tuple[str, ...]  # column order of the rig's curves
    label: str = "custom"  # shown in reports and checkpoints ("arkit", "facegood", ...)

    def __post_init__(self) -> None:
        if not self.names:
            raise ValueError("a rig needs at least one blendshape name")
        seen: dict[str, str] = {}
        for name in self.names:
            if not name.strip():
                raise ValueError(f"rig {self.label!r} has an empty blendshape name")
            if _key(name) in seen:
                raise ValueError(
                    f"rig {self.label!r} names {name!r} twice (as {seen[_key(name)]!r}); "
                    "names are compared case-insensitively"
                )
            seen[_key(name)] = name

    def __len__(self) -> int:
        return len(self.names)

    @property
    def is_arkit(self) -> bool:
        return tuple(_key(n) for n in self.names) == tuple(_key(n) for n in ARKIT_NAMES)

    def index(self, name: str) -> int:
        """Column of ``name``, compared case-insensitively (``JawOpen`` finds ``jawOpen``)."""
        wanted = _key(name)
        for i, candidate in enumerate(self.names):
            if _key(candidate) == wanted:
                return i
        raise UnknownBlendshapeError(f"{name!r} is not a blendshape of rig {self.label!r}")

    def get(self, name: str) -> int | None:
        """Column of ``name`` or None when the rig lacks it."""
        try:
            return self.index(name)
        except UnknownBlendshapeError:
            return None

    def canonical(self, name: str) -> str:
        """The rig's own spelling of ``name``."""
        return self.names[self.index(name)]

    @classmethod
    def from_file(cls, path: str | Path, label: str | None = None) -> Rig:
        """A rig from a text file with one name per line (blank lines and ``#`` comments skipped)."""
        path = Path(path)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise ValueError(f"{path}: cannot read blendshape names ({error.strerror})") from error
        names = tuple(s for s in (line.split("#", 1)[0].strip() for line in lines) if s)
        if not names:
            raise ValueError(f"{path}: no blendshape names in the file")
        try:
            return cls(names, label or path.stem)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from error


ARKIT = Rig(ARKIT_NAMES, "arkit")


def arkit_index(name: str) -> int:
    """Index of an ARKit name in canonical order, case-insensitively."""
    return ARKIT.index(name)


def to_pascal(name: str) -> str:
    """ARKit camelCase to the PascalCase used by Live Link Face files (``jawOpen`` -> ``JawOpen``)."""
    return name[:1].upper() + name[1:]
