"""The optional head rotation channel: checking a track, formatting it for CSV/JSON, reading it back.

A head track is float32 ``(T, 3)``: yaw, pitch, roll in radians per frame, the unit and signs the Live Link
Face app uses for ``HeadYaw/HeadPitch/HeadRoll``. Axes are ARKit's face frame (right-handed; x the
character's own left, y up, z out of the face, the way it looks): yaw > 0 turns the head to the
character's own left, pitch > 0 nods it down (chin to chest), roll > 0 tilts it toward the character's own
right shoulder; the rotation from the rest pose is ``R_y(yaw) R_x(pitch) R_z(roll)``. ``Animation.head``
and ``StreamFrames.head`` hold one (or None); the writers and live sinks carry it (``docs/animate.md``,
``docs/live.md``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HEAD_COLUMNS: tuple[str, ...] = ("yaw", "pitch", "roll")  # columns of a head track, radians
CSV_HEAD_COLUMNS: tuple[str, ...] = ("HeadYaw", "HeadPitch", "HeadRoll")  # the Live Link Face names
SIDECAR_SUFFIX = ".head.npy"  # ``out.npy`` -> ``out.head.npy``: an NPY animation's head track


def check_head(head: object, frames: int, where: str) -> np.ndarray | None:
    """A head track as float32 C-contiguous ``(frames, 3)``, or None; a ValueError naming ``where`` else.

    NaN or inf are refused, not zeroed: a head that silently snaps to rest is a worse failure than an
    error naming the frame.
    """
    if head is None:
        return None
    array = np.asarray(head)
    if array.dtype.kind not in "iuf":
        raise ValueError(f"{where}: head must hold numbers (yaw, pitch, roll), got dtype {array.dtype}")
    if array.shape != (frames, 3):
        raise ValueError(
            f"{where}: head has shape {array.shape}, expected ({frames}, 3): yaw, pitch, roll "
            "in radians, one row per frame"
        )
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        frame, column = (int(v) for v in np.argwhere(~np.isfinite(array))[0])
        raise ValueError(
            f"{where}: head {HEAD_COLUMNS[column]} at frame {frame} is not a finite number of radians"
        )
    return array


def format_head_rows(head: np.ndarray, separator: str = ",") -> list[bytes]:
    """Each row of ``head (t, 3)`` as ``y,p,r`` bytes with 6 decimals (``-0.000000`` never appears)."""
    # Adding 0.0 after rounding turns -0.0 into 0.0, so a tiny negative angle prints as 0.000000.
    rounded = np.round(head.astype(np.float64), 6) + 0.0
    return [separator.join(f"{v:.6f}" for v in row).encode() for row in rounded.tolist()]


def head_from_rows(rows: object, frames: int) -> np.ndarray:
    """A JSON ``"head"`` value (a list of ``frames`` rows of 3 numbers) as float32 ``(frames, 3)``."""
    if not isinstance(rows, list) or len(rows) != frames:
        count = len(rows) if isinstance(rows, list) else type(rows).__name__
        raise ValueError(f"'head' is not a list of {frames} rows (one per frame), got {count}")
    if not all(isinstance(r, list) and len(r) == 3 for r in rows):
        raise ValueError("'head' rows must each be [yaw, pitch, roll]")
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for r in rows for v in r):
        raise ValueError("'head' holds values that are not numbers")
    values = np.array(rows, dtype=np.float64).reshape(frames, 3)
    with np.errstate(over="ignore"):  # beyond float32 becomes inf, refused by check_head
        head = check_head(values.astype(np.float32), frames, "'head'")
    assert head is not None
    return head


def sidecar_path(path: str | Path) -> Path:
    """Where an NPY animation's head track lives: ``out.npy`` -> ``out.head.npy``."""
    path = Path(path)
    return path.with_name(path.stem + SIDECAR_SUFFIX)


def read_npy_head(path: str | Path, frames: int | None = None) -> np.ndarray | None:
    """The head track saved beside the NPY animation ``path`` (float32 ``(T, 3)``), or None if none was.

    Raises ValueError naming the sidecar when it is not a ``(T, 3)`` array of finite numbers, or not
    ``frames`` rows when given (the animation's length: a sidecar left from another take).
    """
    side = sidecar_path(path)
    if not side.exists():
        return None
    try:
        array = np.load(side, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"{side}: not a head track .npy ({error})") from error
    rows = array.shape[0] if array.ndim >= 1 else 0
    return check_head(array, rows if frames is None else frames, str(side))
