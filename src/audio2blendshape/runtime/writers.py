"""Animations and the files they are written to: Live Link Face CSV, JSON and NPY.

One writer class per format, in the style of Whisper's ``ResultWriter``: ``writer(animation, path)``
writes the file atomically (a temporary file beside it, then ``os.replace``), so no half-written output ever
exists, and rows are formatted and written in blocks so hours of animation need little memory.

* ``csv``: exactly the layout of the Live Link Face iPhone app, which Unreal's and Blender's importers
  read unchanged: ``Timecode,BlendshapeCount,`` then the 52 PascalCase names in Live Link's order
  (``JawRight`` before ``JawLeft``, ``MouthRight`` before ``MouthLeft``), then 9 head/eye rotation columns:
  ``HeadYaw, HeadPitch, HeadRoll`` hold ``Animation.head`` (radians) when there is one, else 0, and the 6
  eye rotations are 0 (eye motion is in the eyeLook shapes). Rows are ``HH:MM:SS:FF.mmm,61,<61 values>``;
  frame ``k`` at ``fps`` has timecode ``k // fps`` seconds and ``FF = k % fps`` (``.mmm``, the sub-frame,
  is 000). Only ARKit rigs at an integer frame rate can be written this way.
* ``json``: ``{"names": [...], "fps": F, "duration": D, "frames": [[K values], ...]}``, one frame a line,
  plus ``"head": [[yaw, pitch, roll], ...]`` (radians) after ``frames`` when the animation has a head.
* ``npy``: the float32 ``(T, K)`` weights; the column names are the checkpoint's (ARKit order for ARKit).
  A head goes to a sidecar ``<stem>.head.npy``, float32 ``(T, 3)`` (``runtime.head.read_npy_head``), so
  the main file stays the plain array every reader expects; writing without a head removes a stale
  sidecar of that name, which would otherwise pair an old head with new weights.

CSV and JSON values are written with 6 decimals (1e-6 resolution, far below what a rig shows; for head
angles 1e-6 rad). Without a head every file is byte for byte what it was before the head channel existed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, ClassVar

import numpy as np

from audio2blendshape.atomic import atomic_write
from audio2blendshape.names import ARKIT_NAMES, to_pascal
from audio2blendshape.runtime.head import check_head, head_from_rows, read_npy_head, sidecar_path
from audio2blendshape.runtime.row_format import (
    Field,
    const_field,
    join_fields,
    signed_field,
    timecode_fields,
    unit_field,
)

# Live Link Face's column order: ARKit's, except that the app writes right before left for jaw and mouth.
_SWAPS = {"jawLeft": "jawRight", "jawRight": "jawLeft", "mouthLeft": "mouthRight", "mouthRight": "mouthLeft"}
LIVE_LINK_NAMES: tuple[str, ...] = tuple(_SWAPS.get(name, name) for name in ARKIT_NAMES)
LIVE_LINK_EXTRA: tuple[str, ...] = (
    "HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
    "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
)  # fmt: skip
LIVE_LINK_HEADER = ",".join(
    ("Timecode", "BlendshapeCount", *(to_pascal(n) for n in LIVE_LINK_NAMES), *LIVE_LINK_EXTRA)
)
LIVE_LINK_COUNT = len(LIVE_LINK_NAMES) + len(LIVE_LINK_EXTRA)  # 61, the app's BlendshapeCount
BLOCK_ROWS = 1024  # frames formatted and written at a time (small blocks stay in the CPU cache)
RANGE_SLACK = 1e-6  # weights this far outside [0, 1] are float noise and are clipped, not rejected


class WriterError(ValueError):
    """An animation that cannot be written in the requested format; the message names the file."""


@dataclass(frozen=True)
class Animation:
    """Blendshape weights on a uniform frame grid: frame ``k`` at ``k / fps`` seconds.

    ``head`` (optional) is the head rotation per frame, float32 ``(T, 3)``: yaw, pitch, roll in radians, as
    the Live Link Face app writes ``HeadYaw/HeadPitch/HeadRoll``. Axes are ARKit's face frame
    (right-handed; x the character's own left, y up, z out of the face): yaw > 0 turns the head to the
    character's own left, pitch > 0 nods it down (chin to chest), roll > 0 tilts it toward the character's
    own right shoulder; the rotation is ``R_y(yaw) R_x(pitch) R_z(roll)`` from the rest pose. None (the
    default) leaves every output exactly as without a head.
    """

    names: tuple[str, ...]  # the K column names, the checkpoint's rig order
    fps: float  # frames per second
    weights: np.ndarray  # float32 (T, K), T = floor(duration * fps)
    duration: float  # seconds of audio animated
    head: np.ndarray | None = None  # float32 (T, 3) yaw, pitch, roll in radians, or None

    def __post_init__(self) -> None:
        weights = np.asarray(self.weights)
        if weights.ndim != 2 or weights.shape[1] != len(self.names):
            raise ValueError(
                f"Animation: weights {weights.shape} do not match {len(self.names)} names (T, K)"
            )
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"Animation: fps must be a positive number, got {self.fps}")
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "weights", np.ascontiguousarray(weights, dtype=np.float32))
        object.__setattr__(self, "head", check_head(self.head, len(weights), "Animation"))

    @property
    def frames(self) -> int:
        """Number of frames T."""
        return int(self.weights.shape[0])

    @property
    def times(self) -> np.ndarray:
        """Frame times in seconds, float64 ``(T,)``: ``k / fps``."""
        return np.arange(self.frames, dtype=np.float64) / self.fps

    def write(self, path: str | Path, format: str | None = None) -> Path:
        """Write to ``path`` as ``format`` (default: from the suffix: csv, json, npy); returns the path."""
        path = Path(path)
        return get_writer(format or format_from_suffix(path))(self, path)


class ResultWriter:
    """Writes an :class:`Animation` to one file format; subclasses implement ``write_result``."""

    format: ClassVar[str]  # name used by ``--format``
    extension: ClassVar[str]  # suffix of its files, with the dot

    def __call__(self, animation: Animation, path: str | Path) -> Path:
        """Check, then write ``animation`` to ``path`` atomically; returns ``path``."""
        path = Path(path)
        self.check(animation, path)
        atomic_write(path, lambda handle: self.write_result(animation, handle))
        self.write_sidecars(animation, path)
        return path

    def write_sidecars(self, animation: Animation, path: Path) -> None:
        """Files beside ``path`` that the format has no room for (none by default)."""

    def check(self, animation: Animation, path: Path) -> None:
        """Raise :class:`WriterError` naming ``path`` when ``animation`` cannot be written in this format."""
        if not np.isfinite(animation.weights).all():
            frame, column = (int(v) for v in np.argwhere(~np.isfinite(animation.weights))[0])
            raise WriterError(
                f"{path}: weight of {animation.names[column]!r} at frame {frame} is not a finite number"
            )

    def write_result(self, animation: Animation, handle: BinaryIO) -> None:
        raise NotImplementedError


def _blocks(animation: Animation, columns: list[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(first frame, weights ``(t, K)``) blocks of at most ``BLOCK_ROWS`` frames, columns reordered."""
    for first in range(0, animation.frames, BLOCK_ROWS):
        block = animation.weights[first : first + BLOCK_ROWS]
        yield first, block if columns is None else block[:, columns]


def _check_range(animation: Animation, path: Path) -> None:
    weights = animation.weights
    bad = (weights < -RANGE_SLACK) | (weights > 1.0 + RANGE_SLACK)
    if bad.any():
        frame, column = (int(v) for v in np.argwhere(bad)[0])
        raise WriterError(
            f"{path}: weight of {animation.names[column]!r} at frame {frame} is "
            f"{weights[frame, column]:g}, outside the blendshape range [0, 1]"
        )


_CSV_COUNT = f",{LIVE_LINK_COUNT},".encode()
_CSV_EYES = b"0.000000," * (len(LIVE_LINK_EXTRA) - 4) + b"0.000000\n"  # the eye rotations, always 0
_CSV_TAIL = b"0.000000," * 3 + _CSV_EYES  # no head: its three columns are 0 too


def csv_rows(first: int, block: np.ndarray, head: np.ndarray | None, fps: int) -> np.ndarray:
    """Live Link Face rows of frames ``first ..`` as uint8 text: weights ``(t, 52)`` in Live Link order,
    head ``(t, 3)``."""
    rows = len(block)
    fields = timecode_fields(first, rows, fps)
    fields += [const_field(_CSV_COUNT, rows), unit_field(block, b"," * block.shape[1])]
    if head is None:
        fields.append(const_field(_CSV_TAIL, rows))
    else:
        fields += [signed_field(head, b",,,"), const_field(_CSV_EYES, rows)]
    return join_fields(fields)


def json_rows(first: int, cells: Field) -> np.ndarray:
    """JSON rows ``[...]`` of frames ``first ..`` as uint8 text, one a line, comma-separated: ``cells`` end
    with ``]``."""
    text = join_fields([const_field(b",\n[", len(cells[0])), cells])
    return text[1:] if first == 0 else text


class CsvWriter(ResultWriter):
    """Live Link Face CSV (see the module docstring); ARKit rigs at integer frame rates only."""

    format = "csv"
    extension = ".csv"

    def check(self, animation: Animation, path: Path) -> None:
        super().check(animation, path)
        keys = [n.lower() for n in animation.names]
        missing = [n for n in ARKIT_NAMES if n.lower() not in keys]
        if missing or len(keys) != len(ARKIT_NAMES):
            lacks = f", lacking {', '.join(map(repr, missing[:3]))}{' ...' if len(missing) > 3 else ''}"
            raise WriterError(
                f"{path}: Live Link Face CSV holds the {len(ARKIT_NAMES)} ARKit blendshapes, but this "
                f"animation's rig has {len(keys)} shapes{lacks if missing else ''} "
                f"(first: {animation.names[0]!r}); write JSON or NPY instead, which take any rig"
            )
        if animation.fps != round(animation.fps):
            raise WriterError(
                f"{path}: Live Link Face timecodes count whole frames per second, so the CSV needs an "
                f"integer frame rate, not {animation.fps:g} fps; use e.g. 30 or write JSON or NPY"
            )
        _check_range(animation, path)

    def write_result(self, animation: Animation, handle: BinaryIO) -> None:
        keys = [n.lower() for n in animation.names]
        columns = [keys.index(n.lower()) for n in LIVE_LINK_NAMES]
        handle.write((LIVE_LINK_HEADER + "\n").encode())
        for first, block in _blocks(animation, columns):
            head = None if animation.head is None else animation.head[first : first + len(block)]
            handle.write(csv_rows(first, block, head, round(animation.fps)).data)


class JsonWriter(ResultWriter):
    """``{"names", "fps", "duration", "frames"}``, one frame a line; any rig."""

    format = "json"
    extension = ".json"

    def check(self, animation: Animation, path: Path) -> None:
        super().check(animation, path)
        _check_range(animation, path)

    def write_result(self, animation: Animation, handle: BinaryIO) -> None:
        fps: float | int = int(animation.fps) if animation.fps == int(animation.fps) else animation.fps
        head = {"names": list(animation.names), "fps": fps, "duration": round(animation.duration, 6)}
        handle.write(json.dumps(head)[:-1].encode() + b', "frames": [')
        for first, block in _blocks(animation):
            width = block.shape[1]  # a rig of no shapes still gets one empty [] per frame
            cells = unit_field(block, b"," * (width - 1) + b"]") if width else const_field(b"]", len(block))
            handle.write(json_rows(first, cells).data)
        if animation.head is not None:
            handle.write(b'\n], "head": [')
            for first in range(0, animation.frames, BLOCK_ROWS):
                head_block = animation.head[first : first + BLOCK_ROWS]
                handle.write(json_rows(first, signed_field(head_block, b",,]")).data)
        handle.write(b"\n]}\n")


class NpyWriter(ResultWriter):
    """The float32 ``(T, K)`` weights as ``.npy``; any rig, any values."""

    format = "npy"
    extension = ".npy"

    def write_result(self, animation: Animation, handle: BinaryIO) -> None:
        np.save(handle, animation.weights, allow_pickle=False)

    def write_sidecars(self, animation: Animation, path: Path) -> None:
        side = sidecar_path(path)
        head = animation.head
        if head is None:
            side.unlink(missing_ok=True)
        else:
            atomic_write(side, lambda handle: np.save(handle, head, allow_pickle=False))


def read_npy_animation(path: str | Path, names: tuple[str, ...], fps: float) -> Animation:
    """Read back a file written by :class:`NpyWriter` with its head sidecar, if any.

    The ``.npy`` holds no names or rate, so the caller gives them (duration = frames / fps).
    """
    path = Path(path)
    try:
        weights = np.load(path, allow_pickle=False)
        head = read_npy_head(path, len(weights))
        return Animation(tuple(names), fps, weights, len(weights) / fps, head=head)
    except (OSError, ValueError) as error:
        raise WriterError(f"{path}: not an animation .npy ({error})") from error


WRITERS: dict[str, type[ResultWriter]] = {w.format: w for w in (CsvWriter, JsonWriter, NpyWriter)}
FORMATS: tuple[str, ...] = tuple(WRITERS)


def get_writer(format: str) -> ResultWriter:
    """The writer of ``format`` (``csv``, ``json`` or ``npy``)."""
    try:
        return WRITERS[format.lower()]()
    except KeyError:
        raise WriterError(f"unknown output format {format!r}; choose one of {', '.join(FORMATS)}") from None


def format_from_suffix(path: str | Path) -> str:
    """The format a path's suffix names (``out.csv`` -> ``csv``), or a WriterError naming the path."""
    suffix = Path(path).suffix.lower()
    for name, writer in WRITERS.items():
        if writer.extension == suffix:
            return name
    raise WriterError(
        f"{path}: cannot tell the output format from the suffix {suffix or '(none)'!r}; "
        f"use {', '.join(w.extension for w in WRITERS.values())} or give the format"
    )


def read_json_animation(path: str | Path) -> Animation:
    """Read back a file written by :class:`JsonWriter` (duration defaults to frames / fps).

    Any other content is a :class:`WriterError` naming the file and what is wrong with it.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, RecursionError, ValueError) as error:
        raise WriterError(f"{path}: not an animation JSON file ({error})") from error
    try:
        return _animation_from_json(data)
    except KeyError as error:
        raise WriterError(f"{path}: not an animation JSON file (no {error.args[0]!r} key)") from error
    except (ValueError, TypeError) as error:
        raise WriterError(f"{path}: not an animation JSON file ({error})") from error


def _number(data: dict[str, object], key: str) -> float:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{key!r} is {value!r}, not a finite number")
    return float(value)


def _animation_from_json(data: object) -> Animation:
    if not isinstance(data, dict):
        raise TypeError(f"expected an object with names, fps and frames, got {type(data).__name__}")
    names = data["names"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise TypeError("'names' is not a list of strings")
    fps = _number(data, "fps")
    if fps <= 0:
        raise ValueError(f"'fps' is {fps:g}, not positive")
    frames = data["frames"]
    if not isinstance(frames, list) or not all(isinstance(f, list) and len(f) == len(names) for f in frames):
        raise ValueError(f"'frames' is not a list of rows of {len(names)} values, one per name")
    values = np.array(frames) if frames else np.zeros((0, len(names)))
    if values.ndim != 2 or values.dtype.kind not in "iuf":  # numpy would convert strings and booleans
        kinds = {"U": "text", "b": "true/false", "O": "null or mixed"}
        kind = "nested list" if values.ndim != 2 else kinds.get(values.dtype.kind, values.dtype.name)
        raise ValueError(f"'frames' holds {kind} values, not numbers")
    with np.errstate(over="ignore"):  # values beyond float32 become inf, reported below
        weights = values.astype(np.float32)
    if not np.isfinite(weights).all():
        frame, column = (int(v) for v in np.argwhere(~np.isfinite(weights))[0])
        raise ValueError(
            f"frame {frame}, {names[column]!r}: {frames[frame][column]!r} is not a finite float32"
        )
    duration = _number(data, "duration") if "duration" in data else len(weights) / fps
    if duration < 0:
        raise ValueError(f"'duration' is {duration:g}, negative")
    head = head_from_rows(data["head"], len(weights)) if data.get("head") is not None else None
    return Animation(tuple(names), fps, weights, duration, head=head)
