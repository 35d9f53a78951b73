"""Splits by speaker for ``data label``: a speaker's clips all go to one of train, val and test.

Speakers are held out by name (``val``, ``test``) and/or by a hash of their id: with a held-out fraction
``F``, a speaker whose hash (a number in [0, 1) from SHA-256 of the id) is under ``F`` is held out. The
hash fills only the splits not given by name: both named, it picks nobody; one named, it picks ``F`` of
the speakers for the other; none named, ``F / 2`` each for val and test. The hash does not depend on the
other speakers, so adding a source never moves a speaker between splits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass


def speaker_hash(speaker: str) -> float:
    """A number in [0, 1) fixed by ``speaker``'s id, the same on every machine and Python version."""
    return int.from_bytes(hashlib.sha256(speaker.encode("utf-8")).digest()[:8], "big") / 2.0**64


@dataclass(frozen=True)
class SpeakerSplits:
    """Which split each speaker goes to."""

    val: frozenset[str] = frozenset()
    test: frozenset[str] = frozenset()
    held_out_fraction: float = 0.0

    def __post_init__(self) -> None:
        both = sorted(self.val & self.test)
        if both:
            raise ValueError(f"speaker(s) {', '.join(both)} named for both val and test")
        if not 0.0 <= self.held_out_fraction < 1.0:
            raise ValueError(f"the held-out fraction must be in [0, 1), got {self.held_out_fraction}")

    @classmethod
    def named(cls, val: Iterable[str], test: Iterable[str], held_out_fraction: float = 0.0) -> SpeakerSplits:
        """From lists of names (blank names dropped)."""
        return cls(
            frozenset(v.strip() for v in val if v.strip()),
            frozenset(t.strip() for t in test if t.strip()),
            held_out_fraction,
        )

    def split(self, speaker: str) -> str:
        """``train``, ``val`` or ``test`` for ``speaker``."""
        if speaker in self.test:
            return "test"
        if speaker in self.val:
            return "val"
        hashed = [name for name, given in (("val", self.val), ("test", self.test)) if not given]
        position = speaker_hash(speaker)
        if not hashed or position >= self.held_out_fraction:
            return "train"
        return hashed[int(position / self.held_out_fraction * len(hashed))]
