"""Direction over time: emotion cues (time, preset, intensity, ramp) and the eased expression they give.

A cue says "from ``time`` on, move to ``preset`` at ``intensity`` over ``ramp`` seconds". The move starts
from wherever the face is at that moment (so a cue that interrupts a ramp continues smoothly from it) and
follows a cosine ease-in-out; the face then holds until the next cue. This is how an animator directs a
take: the expression holds between marks and changes around them, instead of a slow cross-fade from one
keyframe to the next. A constant emotion (``--emotion happy=0.6``) is one cue at 0 s with no ramp; a live
change is a cue at the current stream time.

Track files, with times in seconds from the start of the audio:

* JSON: a list of ``{"time": 1.5, "preset": "happy", "intensity": 0.6, "ramp": 0.4}`` (or ``{"cues":
  [...]}``); ``intensity`` defaults to 1 and ``ramp`` to ``DEFAULT_RAMP_S``.
* CSV: a header naming ``time,preset,intensity`` and optionally ``ramp``, then one cue per row.

Cues are sorted by time (stable: of two cues at one time the later line wins).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audio2blendshape.expression.presets import PresetError, PresetLibrary

DEFAULT_RAMP_S = 0.4  # s; a change of expression takes this long unless the cue says otherwise
MAX_RAMP_S = 30.0  # s; longer ramps are almost surely a unit mistake (ms for s)


class TrackError(ValueError):
    """A track file or cue that cannot be used; names the file and the cue."""


@dataclass(frozen=True)
class Cue:
    """Move to ``preset`` at ``intensity`` from ``time`` on, over ``ramp`` seconds."""

    time: float  # s from the start of the audio
    preset: str  # a preset name (built-in or user)
    intensity: float = 1.0  # 0..1, the share of the preset's weights
    ramp: float = DEFAULT_RAMP_S  # s; 0 switches at once

    def __post_init__(self) -> None:
        for name, value, low, high in (("time", self.time, 0.0, math.inf),
                                       ("intensity", self.intensity, 0.0, 1.0),
                                       ("ramp", self.ramp, 0.0, MAX_RAMP_S)):  # fmt: skip
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise TrackError(f"cue {self.preset!r}: {name} is {value!r}, not a finite number")
            if not low <= value <= high:
                raise TrackError(f"cue {self.preset!r}: {name} {value:g} is outside {low:g}..{high:g}")
        if not isinstance(self.preset, str) or not self.preset.strip():
            raise TrackError(f"cue at {self.time!r} s: preset must be a name, got {self.preset!r}")


def parse_emotion(spec: str) -> Cue:
    """``"happy=0.6"`` (or ``"happy"``, full intensity) -> a constant cue at 0 s with no ramp."""
    name, _, value = spec.partition("=")
    try:
        intensity = float(value) if value.strip() else 1.0
    except ValueError:
        raise TrackError(f"emotion {spec!r}: expected NAME=INTENSITY, e.g. happy=0.6") from None
    try:
        return Cue(0.0, name.strip(), intensity, 0.0)
    except TrackError as error:
        raise TrackError(f"emotion {spec!r}: {error}") from None


def _cue(item: Any, where: str) -> Cue:
    if not isinstance(item, dict):
        raise TrackError(f"{where}: expected an object with time, preset, intensity, got {item!r}")
    unknown = set(item) - {"time", "preset", "intensity", "ramp"}
    if unknown:
        raise TrackError(
            f"{where}: unknown keys {', '.join(sorted(unknown))} (time, preset, intensity, ramp)"
        )
    if "time" not in item or "preset" not in item:
        raise TrackError(f"{where}: a cue needs a time and a preset")
    try:
        return Cue(item["time"], item["preset"], item.get("intensity", 1.0), item.get("ramp", DEFAULT_RAMP_S))
    except TrackError as error:
        raise TrackError(f"{where}: {error}") from None


def _csv_cues(text: str, path: Path) -> list[Cue]:
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    if not {"time", "preset"} <= set(fields):
        raise TrackError(f"{path}: the CSV header must name time,preset,intensity[,ramp], got {fields}")
    cues = []
    for line, row in enumerate(reader, start=2):
        item: dict[str, Any] = {}
        for key, value in row.items():
            key = (key or "").strip().lower()
            value = (value or "").strip() if isinstance(value, str) else value
            if key == "preset":
                item[key] = value
            elif value:
                try:
                    item[key] = float(value)
                except (TypeError, ValueError):
                    raise TrackError(f"{path}, line {line}: {key} {value!r} is not a number") from None
        cues.append(_cue(item, f"{path}, line {line}"))
    return cues


def read_track(path: str | Path) -> list[Cue]:
    """The cues of a ``.json`` or ``.csv`` track file, sorted by time; a TrackError naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise TrackError(f"{path}: cannot read the emotion track ({error})") from error
    if path.suffix.lower() == ".csv":
        cues = _csv_cues(text, path)
    else:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as error:
            raise TrackError(f"{path}: not a JSON emotion track ({error})") from error
        items = data.get("cues") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise TrackError(f'{path}: expected a list of cues or {{"cues": [...]}}')
        cues = [_cue(item, f"{path}, cue {i}") for i, item in enumerate(items)]
    if not cues:
        raise TrackError(f"{path}: the emotion track holds no cues")
    return sorted(cues, key=lambda c: c.time)


def ease(x: np.ndarray) -> np.ndarray:
    """Cosine ease-in-out of ``x`` clipped to [0, 1]."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0.0, 1.0))


class EmotionTimeline:
    """The expression weights over time from cues given in advance and cues added while it runs.

    ``values(times)`` must be asked for non-decreasing times; cues are applied in time order.
    """

    def __init__(self, library: PresetLibrary, cues: list[Cue] | tuple[Cue, ...] = ()) -> None:
        self.library = library
        self._pending: list[tuple[Cue, np.ndarray]] = []
        for cue in cues:
            self.add(cue)
        self._from = np.zeros(len(library.vector("neutral")), np.float64)
        self._to, self._start, self._ramp = self._from.copy(), 0.0, 0.0

    def add(self, cue: Cue) -> None:
        """Schedule ``cue``; its preset is checked now (a PresetError for an unknown name)."""
        target = self.library.vector(cue.preset).astype(np.float64) * cue.intensity
        self._pending.append((cue, target))
        self._pending.sort(key=lambda pair: pair[0].time)

    @property
    def active(self) -> bool:
        """Whether any expression is or will be shown."""
        return bool(self._pending) or bool(self._to.any()) or bool(self._from.any())

    def _at(self, times: np.ndarray) -> np.ndarray:
        if self._ramp <= 0.0:
            mix = (times >= self._start).astype(np.float64)
        else:
            mix = ease((times - self._start) / self._ramp)
        return self._from[None] + (self._to - self._from)[None] * mix[:, None]

    def values(self, times: np.ndarray) -> np.ndarray:
        """Expression weights ``(len(times), 52)`` at ``times`` (seconds, non-decreasing)."""
        out = np.empty((len(times), len(self._from)), np.float64)
        i = 0
        while i < len(times):
            if self._pending and self._pending[0][0].time <= times[i]:
                cue, target = self._pending.pop(0)
                self._from = self._at(np.array([cue.time]))[0]
                self._to, self._start, self._ramp = target, cue.time, cue.ramp
                continue
            stop = len(times)
            if self._pending:
                stop = i + int(np.searchsorted(times[i:], self._pending[0][0].time, side="left"))
            out[i:stop] = self._at(times[i:stop])
            i = stop
        return out


def check_cues(cues: list[Cue] | tuple[Cue, ...], library: PresetLibrary, where: str) -> None:
    """A PresetError naming ``where`` when a cue names a preset the library lacks."""
    for cue in cues:
        try:
            library.vector(cue.preset)
        except PresetError as error:
            raise PresetError(f"{where}: cue at {cue.time:g} s: {error}") from None
