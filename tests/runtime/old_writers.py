"""The CSV and JSON writers as they were before ``runtime.row_format``, kept verbatim as a specification.

``tests/runtime/test_row_format.py`` checks the writers against them byte for byte, and
``bench/runtime/bench_writers.py`` times them beside the writers. Per-row timecodes, ``fixed6`` digit by
digit in int64, rows as a list of bytes, written ``block_rows`` at a time.
"""

from __future__ import annotations

import json
from typing import BinaryIO

import numpy as np

from audio2blendshape.runtime.head import format_head_rows
from audio2blendshape.runtime.writers import (
    LIVE_LINK_COUNT,
    LIVE_LINK_EXTRA,
    LIVE_LINK_HEADER,
    LIVE_LINK_NAMES,
    Animation,
)

OLD_BLOCK_ROWS = 8192  # rows formatted at a time, as the old writers did


def old_fixed6(values: np.ndarray) -> np.ndarray:
    """``(...)`` values -> ``(..., 8)`` uint8 ``d.dddddd``, clipped to [0, 1]."""
    micro = np.rint(np.clip(values.astype(np.float64), 0.0, 1.0) * 1e6).astype(np.int64)
    out = np.empty((*values.shape, 8), dtype=np.uint8)
    out[..., 0] = ord("0") + micro // 1_000_000
    out[..., 1] = ord(".")
    for i in range(6):
        out[..., 2 + i] = ord("0") + (micro // 10 ** (5 - i)) % 10
    return out


def old_format_rows(values: np.ndarray) -> list[bytes]:
    """``(rows, columns)`` values -> one comma-joined bytes row each."""
    rows, columns = values.shape
    if rows == 0:
        return []
    cells = np.empty((rows, columns, 9), dtype=np.uint8)
    cells[..., :8] = old_fixed6(values)
    cells[..., 8] = ord(",")
    width = columns * 9 - 1
    flat = np.ascontiguousarray(cells.reshape(rows, columns * 9)[:, :width])
    return list(flat.view(f"S{width}").ravel())


def old_timecode(frame: int, fps: int) -> str:
    seconds, within = divmod(frame, fps)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours:02d}:{minute:02d}:{second:02d}:{within:02d}.000"


def old_csv(animation: Animation, handle: BinaryIO, block_rows: int = OLD_BLOCK_ROWS) -> None:
    """``CsvWriter.write_result`` before ``row_format``."""
    keys = [n.lower() for n in animation.names]
    columns = [keys.index(n.lower()) for n in LIVE_LINK_NAMES]
    fps = round(animation.fps)
    count = f",{LIVE_LINK_COUNT},".encode()
    tail = ("," + ",".join(["0.000000"] * len(LIVE_LINK_EXTRA)) + "\n").encode()
    eyes = ("," + ",".join(["0.000000"] * (len(LIVE_LINK_EXTRA) - 3)) + "\n").encode()
    handle.write((LIVE_LINK_HEADER + "\n").encode())
    for first in range(0, animation.frames, block_rows):
        rows = old_format_rows(animation.weights[first : first + block_rows][:, columns])
        if animation.head is None:
            tails = [tail] * len(rows)
        else:
            heads = format_head_rows(animation.head[first : first + len(rows)])
            tails = [b"," + head + eyes for head in heads]
        lines = (
            old_timecode(first + i, fps).encode() + count + row + end
            for i, (row, end) in enumerate(zip(rows, tails, strict=True))
        )
        handle.write(b"".join(lines))


def old_json(animation: Animation, handle: BinaryIO, block_rows: int = OLD_BLOCK_ROWS) -> None:
    """``JsonWriter.write_result`` before ``row_format``."""
    fps: float | int = int(animation.fps) if animation.fps == int(animation.fps) else animation.fps
    head = {"names": list(animation.names), "fps": fps, "duration": round(animation.duration, 6)}
    handle.write(json.dumps(head)[:-1].encode() + b', "frames": [')
    for first in range(0, animation.frames, block_rows):
        rows = old_format_rows(animation.weights[first : first + block_rows])
        handle.write((b"\n[" if first == 0 else b",\n[") + b"],\n[".join(rows) + b"]")
    if animation.head is not None:
        handle.write(b'\n], "head": [')
        for first in range(0, animation.frames, block_rows):
            rows = format_head_rows(animation.head[first : first + block_rows])
            handle.write((b"\n[" if first == 0 else b",\n[") + b"],\n[".join(rows) + b"]")
    handle.write(b"\n]}\n")
