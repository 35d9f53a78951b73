"""Reading Live Link Face CSV takes: ``Timecode,BlendshapeCount,EyeBlinkLeft,...`` with one row per frame.

Columns are found by name, case-insensitively, never by position: the app's order is not the ARKit order
(``JawRight`` before ``JawLeft``), other tools add columns or spell ``BlendShapeCount``. The timecode is
``HH:MM:SS:FF.mmm`` where ``FF`` counts frames within the second and ``.mmm`` is a fraction of a frame.
The frame rate is given, or inferred as the largest ``FF`` plus one, rounded up to a standard rate.
The curves come out on a uniform grid at that rate starting at the first row (dropped frames are filled by
linear interpolation); time zero is the first row's timecode. Rows more than ``MAX_GAP_S`` apart and rates
above ``MAX_FPS`` are errors: the grid would otherwise grow without bound from a two-row file.
``HeadYaw/HeadPitch/HeadRoll`` (radians), when present, come back in ``extra`` and together as
``LiveLinkTake.head``, so a capture's head motion is kept (``runtime.head`` gives their signs).
"""

from __future__ import annotations

import csv
import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from audio2blendshape.names import ARKIT_NAMES
from audio2blendshape.runtime.head import CSV_HEAD_COLUMNS

STANDARD_RATES: tuple[int, ...] = (24, 25, 30, 48, 50, 60, 72, 90, 100, 120, 240)
COUNT_COLUMNS = ("blendshapecount",)  # ignored: the count is implied by the header
KNOWN_EXTRA = (
    "HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
    "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
)  # fmt: skip
RANGE_TOLERANCE = 0.01  # matches the corpus: a hair outside [0, 1] is clipped later, more is an error
MAX_GAP_S = 2.0  # rows further apart are missing data, not dropped frames to interpolate over
MAX_FPS = 1000.0  # no face capture runs faster; above it a frame field is damaged
# Bounded digits: Python refuses to convert integers of thousands of digits, and floats of hundreds are inf.
_TIMECODE = re.compile(r"^\s*(\d{1,6}):(\d{1,2}):(\d{1,2})[:;](\d{1,6}(?:\.\d{0,9})?)\s*$")


class LiveLinkCsvError(ValueError):
    """A Live Link Face CSV that cannot be read; the message names the file, the line and the problem."""


@dataclass(frozen=True)
class LiveLinkTake:
    """One CSV take on a uniform frame grid."""

    curves: np.ndarray  # (frames, 52) float32 in ARKit canonical order, frame i at time i / fps
    fps: float
    start: float  # seconds of day of the first row's timecode (the take's time zero)
    source: str
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # other numeric columns, (frames,) each
    names: tuple[str, ...] = ARKIT_NAMES

    @property
    def duration(self) -> float:
        """Seconds covered by the frames (frames / fps)."""
        return self.curves.shape[0] / self.fps

    @property
    def head(self) -> np.ndarray | None:
        """Head yaw, pitch, roll in radians, float32 ``(frames, 3)``; None unless all three columns exist."""
        keys = {name.lower(): values for name, values in self.extra.items()}
        columns = [keys.get(name.lower()) for name in CSV_HEAD_COLUMNS]
        if any(c is None for c in columns):
            return None
        return np.stack([c for c in columns if c is not None], axis=1).astype(np.float32)


def parse_timecode(text: str, fps: float | None, where: str) -> tuple[float, float]:
    """``HH:MM:SS:FF.mmm`` -> (whole seconds of day, frame within the second incl. the sub-frame part)."""
    match = _TIMECODE.match(text)
    if match is None:
        raise LiveLinkCsvError(f"{where}: timecode {text!r} is not HH:MM:SS:FF or HH:MM:SS:FF.mmm")
    hours, minutes, seconds = (int(match.group(i)) for i in (1, 2, 3))
    frame = float(match.group(4))
    if minutes >= 60 or seconds >= 60:
        raise LiveLinkCsvError(f"{where}: timecode {text!r} has minutes or seconds of 60 or more")
    if fps is not None and frame >= fps:
        raise LiveLinkCsvError(
            f"{where}: timecode {text!r} has frame {frame:g}, not below the {fps:g} fps given"
        )
    return float(hours * 3600 + minutes * 60 + seconds), frame


def infer_fps(max_frame: float) -> float:
    """The frame rate implied by the largest ``FF`` seen: the smallest standard rate above it."""
    needed = math.floor(max_frame) + 1
    return float(next((r for r in STANDARD_RATES if r >= needed), needed))


def _closest_hint(wanted: str, candidates: list[str]) -> str:
    match = difflib.get_close_matches(wanted.lower(), [c.lower() for c in candidates], n=1, cutoff=0.6)
    if not match:
        return ""
    original = next(c for c in candidates if c.lower() == match[0])
    return f"; did you mean the column {original!r}?"


def _map_header(header: list[str], path: Path) -> tuple[int, list[int], dict[str, int]]:
    """Column of the timecode, columns of the 52 ARKit names in canonical order, other numeric columns."""
    where = f"{path}, line 1"
    lowered = [h.strip().lower() for h in header]
    for i, name in enumerate(lowered):
        if name and lowered.index(name) != i:
            raise LiveLinkCsvError(f"{where}: column {header[i].strip()!r} appears twice")
    if "timecode" not in lowered:
        raise LiveLinkCsvError(f"{where}: no 'Timecode' column{_closest_hint('Timecode', header)}")
    time_col = lowered.index("timecode")
    arkit_keys = {n.lower() for n in ARKIT_NAMES}
    unknown = [
        h.strip() for h in header if h.strip().lower() not in arkit_keys | {"timecode", *COUNT_COLUMNS}
    ]
    columns: list[int] = []
    for name in ARKIT_NAMES:
        if name.lower() not in lowered:
            pascal = name[:1].upper() + name[1:]
            raise LiveLinkCsvError(
                f"{where}: the column {pascal!r} is missing{_closest_hint(pascal, unknown)}"
            )
        columns.append(lowered.index(name.lower()))
    extra = {h.strip(): i for i, h in enumerate(header) if h.strip() in unknown and h.strip()}
    return time_col, columns, extra


def _parse_rows(
    rows: list[tuple[int, list[str]]], header: list[str], path: Path, time_col: int, numeric: list[int]
) -> tuple[list[tuple[float, float]], np.ndarray]:
    """Timecodes and the numeric columns of every data row; each bad cell named by line and column."""
    stamps: list[tuple[float, float]] = []
    values = np.empty((len(rows), len(numeric)), dtype=np.float64)
    for r, (line, cells) in enumerate(rows):
        if len(cells) < len(header):
            raise LiveLinkCsvError(
                f"{path}, line {line}: {len(cells)} fields but the header has {len(header)} columns"
            )
        stamps.append(parse_timecode(cells[time_col], None, f"{path}, line {line}"))
        for c, col in enumerate(numeric):
            text = cells[col].strip()
            try:
                value = float(text)
            except ValueError:
                raise LiveLinkCsvError(
                    f"{path}, line {line}: column {header[col].strip()!r} holds {text!r}, not a number"
                ) from None
            if not math.isfinite(value):
                raise LiveLinkCsvError(f"{path}, line {line}: column {header[col].strip()!r} is {text}")
            values[r, c] = value
    return stamps, values


def _times(stamps: list[tuple[float, float]], fps: float, lines: list[int], path: Path) -> np.ndarray:
    """Seconds since the first row; rejects timecodes that repeat or go backwards, naming the line."""
    for (_, frame), line in zip(stamps, lines, strict=True):
        if frame >= fps:
            raise LiveLinkCsvError(f"{path}, line {line}: frame {frame:g} is not below {fps:g} fps")
    absolute = np.array([sec + frame / fps for sec, frame in stamps])
    steps = np.diff(absolute)
    tiny = 1e-3 / fps  # sub-frame fields carry milliseconds of a frame; anything closer is the same frame
    for k in np.flatnonzero(steps <= tiny):
        kind = "repeats" if abs(steps[k]) <= tiny else "goes backwards from"
        raise LiveLinkCsvError(
            f"{path}, line {lines[k + 1]}: the timecode {kind} the previous row's "
            f"(line {lines[k]}); duplicate or out-of-order frames"
        )
    for k in np.flatnonzero(steps > MAX_GAP_S):
        raise LiveLinkCsvError(
            f"{path}, line {lines[k + 1]}: the timecode jumps {steps[k]:.3f} s past the previous row's "
            f"(line {lines[k]}); rows over {MAX_GAP_S:g} s apart are a gap in the take, not dropped frames"
        )
    return np.asarray(absolute - absolute[0])


def _uniform(times: np.ndarray, values: np.ndarray, fps: float) -> np.ndarray:
    """Values ``(rows, C)`` at ``times`` resampled to frames ``i / fps`` by linear interpolation."""
    frames = int(np.rint(times[-1] * fps)) + 1
    grid = np.arange(frames) / fps
    out = np.empty((frames, values.shape[1]), dtype=np.float64)
    for c in range(values.shape[1]):
        out[:, c] = np.interp(grid, times, values[:, c])
    return out


def _check_range(curves: np.ndarray, times: np.ndarray, lines: list[int], path: Path) -> None:
    bad = (curves < -RANGE_TOLERANCE) | (curves > 1.0 + RANGE_TOLERANCE)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        name = ARKIT_NAMES[col][:1].upper() + ARKIT_NAMES[col][1:]
        raise LiveLinkCsvError(
            f"{path}, line {lines[row]} ({times[row]:.3f} s): column {name!r} is {curves[row, col]:g}, "
            "outside the blendshape range [0, 1]"
        )


def read_livelink_csv(path: str | Path, fps: float | None = None) -> LiveLinkTake:
    """Read a Live Link Face CSV into a :class:`LiveLinkTake` with curves ``(frames, 52)`` in ARKit order.

    ``fps`` overrides the rate inferred from the timecodes. Raises :class:`LiveLinkCsvError` naming the
    file, the line and the problem for missing/misspelt columns, non-numbers, NaN, bad or backward
    timecodes and duplicate frames.
    """
    path = Path(path)
    if fps is not None and not (math.isfinite(fps) and 0 < fps <= MAX_FPS):
        raise LiveLinkCsvError(f"{path}: fps must be positive and at most {MAX_FPS:g}, got {fps}")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            raw = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise LiveLinkCsvError(f"{path}: cannot read the CSV ({error})") from error
    if not raw:
        raise LiveLinkCsvError(f"{path}: the file is empty")
    header = raw[0]
    time_col, arkit_cols, extra_cols = _map_header(header, path)
    rows = [(n, cells) for n, cells in enumerate(raw[1:], start=2) if any(c.strip() for c in cells)]
    if len(rows) < (1 if fps is not None else 2):  # one frame has no rate of its own: it needs fps given
        needs = "a take needs at least two frames" if fps is None else "a take needs a frame"
        raise LiveLinkCsvError(f"{path}: {len(rows)} data rows; {needs}")
    numeric = arkit_cols + list(extra_cols.values())
    stamps, values = _parse_rows(rows, header, path, time_col, numeric)
    rate = fps if fps is not None else infer_fps(max(frame for _, frame in stamps))
    if rate > MAX_FPS:
        raise LiveLinkCsvError(
            f"{path}: timecode frames reach {rate - 1:g}, so the rate would be {rate:g} fps, above the "
            f"{MAX_FPS:g} fps any capture runs at; the timecodes are damaged"
        )
    lines = [n for n, _ in rows]
    times = _times(stamps, rate, lines, path)
    _check_range(values[:, : len(arkit_cols)], times, lines, path)
    grid = _uniform(times, values, rate)
    curves = np.clip(grid[:, : len(arkit_cols)], 0.0, 1.0).astype(np.float32)
    extra = {name: grid[:, len(arkit_cols) + i].astype(np.float32) for i, name in enumerate(extra_cols)}
    start = stamps[0][0] + stamps[0][1] / rate
    return LiveLinkTake(curves=curves, fps=float(rate), start=start, source=str(path), extra=extra)
