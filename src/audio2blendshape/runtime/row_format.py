"""Text rows of the CSV and JSON writers, formatted with numpy a block at a time instead of value by value.

``f"{v:.6f}"`` per value and a per-row timecode cost more than the model on long audio (36,000 rows of 61
values at 60 fps took ~0.3 s). Here every field is built as uint8 digit columns of a ``(rows, width)``
array: weights in [0, 1] are fixed-width ``d.dddddd``; fields whose width varies from row to row (a
sign, a timecode's hours past 99, frames past 99 at rates above 100 fps, head angles of several integer
digits) get the widest width and a mask of the bytes to drop, so the bytes are exactly those of the
per-value formatting they replace (``tests/runtime/test_row_format.py`` checks this against it):

* weights: ``rint(clip(v, 0, 1) * 1e6)`` micro-units (ties to even), as ``fixed6`` always did;
* signed values (head angles in radians): ``f"{round(v, 6) + 0.0:.6f}"`` as ``head.format_head_rows``
  writes them, so ``-0.000000`` never appears; magnitudes of 1e9 or more go through that very function;
* timecodes: ``timecode(frame, fps)``, ``HH:MM:SS:FF.000`` with at least two digits per field.
"""

from __future__ import annotations

import numpy as np

from audio2blendshape.runtime.head import format_head_rows

MICRO = 1_000_000  # units of the sixth decimal
SIGNED_LIMIT = 1e9  # |values| at or above this are formatted by Python: micro-units would pass 2**53
ZERO, DOT, MINUS = ord("0"), ord("."), ord("-")

Field = tuple[np.ndarray, np.ndarray | None]  # uint8 (rows, width) and a keep mask of its bytes, or None


def timecode(frame: int, fps: int) -> str:
    """Live Link Face timecode ``HH:MM:SS:FF.mmm`` of frame ``frame`` at an integer ``fps``."""
    seconds, within = divmod(frame, fps)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours:02d}:{minute:02d}:{second:02d}:{within:02d}.000"


def _put_digits(out: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Write the last ``out.shape[-1]`` decimal digits of ``values`` into ``out``; returns what is left."""
    for i in range(out.shape[-1] - 1, -1, -1):
        quotient = values // 10
        out[..., i] = values - quotient * 10 + ZERO
        values = quotient
    return values


def fixed6(values: np.ndarray) -> np.ndarray:
    """Values ``(T, K)`` in [0, 1] as ASCII ``d.dddddd``: uint8 ``(T, K, 8)``, rounded to 6 decimals."""
    out = np.empty((*values.shape, 8), dtype=np.uint8)
    _unit_cells(out, values)
    return out


def _unit_cells(out: np.ndarray, values: np.ndarray) -> None:
    """``d.dddddd`` of ``values`` (clipped to [0, 1]) into ``out[..., :8]``."""
    micro = np.rint(np.clip(values.astype(np.float64), 0.0, 1.0) * MICRO).astype(np.uint32)
    ones = micro >= MICRO
    fraction = micro - ones * np.uint32(MICRO)
    # Three pairs of digits in uint8 and uint16 arithmetic: several times faster than uint32 digit by digit.
    high = fraction // np.uint32(10_000)
    rest = (fraction - high * np.uint32(10_000)).astype(np.uint16)
    middle = rest // np.uint16(100)
    low = rest - middle * np.uint16(100)
    for position, pair in ((2, high), (4, middle), (6, low)):
        pair = pair.astype(np.uint8)
        tens = pair // np.uint8(10)
        out[..., position] = tens + np.uint8(ZERO)
        out[..., position + 1] = pair - tens * np.uint8(10) + np.uint8(ZERO)
    out[..., 0] = ones + np.uint8(ZERO)
    out[..., 1] = DOT


def unit_field(values: np.ndarray, separators: bytes) -> Field:
    """Cells ``(t, k)`` in [0, 1], each ``d.dddddd`` followed by its byte of ``separators`` (k bytes)."""
    rows, columns = values.shape
    cells = np.empty((rows, columns, 9), dtype=np.uint8)
    _unit_cells(cells, values)
    cells[..., 8] = np.frombuffer(separators, dtype=np.uint8)
    return cells.reshape(rows, columns * 9), None


def integer_field(values: np.ndarray, min_digits: int) -> Field:
    """Non-negative integers ``(t,)`` zero-padded to ``min_digits``, as ``f"{v:0{min_digits}d}"``."""
    values = values.astype(np.uint64)
    largest = int(values.max()) if len(values) else 0
    width = max(min_digits, len(str(largest)))
    digits = np.empty((len(values), width), dtype=np.uint8)
    _put_digits(digits, values)
    if width == min_digits:
        return digits, None
    needed = np.maximum(min_digits, _digit_count(values))
    return digits, np.arange(width, 0, -1) <= needed[:, None]


def _digit_count(values: np.ndarray) -> np.ndarray:
    """Decimal digits of non-negative integers (1 for 0)."""
    count = np.ones(values.shape, dtype=np.int64)
    power = 10
    while (values >= power).any():
        count += values >= power
        power *= 10
    return count


def signed_field(values: np.ndarray, separators: bytes) -> Field:
    """Finite cells ``(t, k)`` of any size as ``f"{round(v, 6) + 0.0:.6f}"``, each then its separator."""
    rows, columns = values.shape
    values = values.astype(np.float64)
    if rows and np.abs(values).max() >= SIGNED_LIMIT:
        return _python_field(values, separators)
    # As np.round(v, 6) rounds, so micro / 1e6 prints as these digits (exact far beyond 1e9 rad).
    micro = np.rint(values * MICRO)
    negative = micro < 0
    magnitude = np.abs(micro).astype(np.uint64)
    whole = magnitude // MICRO
    width = len(str(int(whole.max()))) if rows else 1
    cell = 1 + width + 8  # sign, integer digits, ".dddddd", separator
    cells = np.empty((rows, columns, cell), dtype=np.uint8)
    cells[..., 0] = MINUS
    _put_digits(cells[..., 1 + width + 1 : cell - 1], magnitude)
    _put_digits(cells[..., 1 : 1 + width], whole)
    cells[..., 1 + width] = DOT
    cells[..., cell - 1] = np.frombuffer(separators, dtype=np.uint8)
    keep = np.ones((rows, columns, cell), dtype=bool)
    keep[..., 0] = negative
    if width > 1:
        keep[..., 1:width] = np.arange(width - 1, 0, -1) < _digit_count(whole)[..., None]
    return cells.reshape(rows, columns * cell), keep.reshape(rows, columns * cell)


def _python_field(values: np.ndarray, separators: bytes) -> Field:
    """``signed_field`` through ``head.format_head_rows`` value by value, for magnitudes it cannot do."""
    texts = [
        [text + separators[i : i + 1] for i, text in enumerate(format_head_rows(row[:, None], ","))]
        for row in values
    ]
    array = np.array([b"".join(row) for row in texts], dtype=bytes)
    cells = array.view(np.uint8).reshape(len(values), -1)
    return cells, cells != 0


def const_field(text: bytes, rows: int) -> Field:
    """The same bytes on every row."""
    return np.broadcast_to(np.frombuffer(text, dtype=np.uint8), (rows, len(text))), None


def timecode_fields(first: int, rows: int, fps: int) -> list[Field]:
    """``timecode(first + i, fps)`` for ``i < rows``, as fields."""
    frames = np.arange(first, first + rows, dtype=np.int64)
    seconds, within = np.divmod(frames, fps)
    minutes, second = np.divmod(seconds, 60)
    hours, minute = np.divmod(minutes, 60)
    colon = const_field(b":", rows)
    return [
        integer_field(hours, 2), colon, integer_field(minute, 2), colon, integer_field(second, 2),
        colon, integer_field(within, 2), const_field(b".000", rows),
    ]  # fmt: skip


def join_fields(fields: list[Field]) -> np.ndarray:
    """The rows of ``fields`` side by side, row after row, with the bytes their masks drop left out.

    A flat uint8 array, written to files as it is (its buffer), without a copy to ``bytes``.
    """
    if not fields or not len(fields[0][0]):
        return np.zeros(0, dtype=np.uint8)
    text = np.concatenate([array for array, _ in fields], axis=1)
    if all(keep is None for _, keep in fields):
        return text.ravel()
    keep = np.concatenate(
        [np.broadcast_to(True, array.shape) if mask is None else mask for array, mask in fields], axis=1
    )
    return text[keep]
