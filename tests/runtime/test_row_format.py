"""The vectorised CSV/JSON rows are byte for byte what the per-value formatting they replaced wrote.

``_reference_csv`` and ``_reference_json`` are the writers' ``write_result`` bodies as they were before
``runtime.row_format`` (per-row timecodes, ``fixed6`` digit by digit, ``head.format_head_rows``), kept
here verbatim as the specification; hypothesis looks for any input the writers accept where the two differ.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import audio2blendshape.runtime.writers as writers
from audio2blendshape.names import ARKIT_NAMES
from audio2blendshape.runtime.head import format_head_rows
from audio2blendshape.runtime.row_format import fixed6, integer_field, join_fields, signed_field, timecode
from audio2blendshape.runtime.writers import (
    LIVE_LINK_COUNT,
    LIVE_LINK_EXTRA,
    LIVE_LINK_HEADER,
    LIVE_LINK_NAMES,
    Animation,
    CsvWriter,
    JsonWriter,
)


def _old_fixed6(values: np.ndarray) -> np.ndarray:
    micro = np.rint(np.clip(values.astype(np.float64), 0.0, 1.0) * 1e6).astype(np.int64)
    out = np.empty((*values.shape, 8), dtype=np.uint8)
    out[..., 0] = ord("0") + micro // 1_000_000
    out[..., 1] = ord(".")
    for i in range(6):
        out[..., 2 + i] = ord("0") + (micro // 10 ** (5 - i)) % 10
    return out


def _old_format_rows(values: np.ndarray) -> list[bytes]:
    rows, columns = values.shape
    if rows == 0:
        return []
    cells = np.empty((rows, columns, 9), dtype=np.uint8)
    cells[..., :8] = _old_fixed6(values)
    cells[..., 8] = ord(",")
    width = columns * 9 - 1
    flat = np.ascontiguousarray(cells.reshape(rows, columns * 9)[:, :width])
    return list(flat.view(f"S{width}").ravel())


def _old_timecode(frame: int, fps: int) -> str:
    seconds, within = divmod(frame, fps)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours:02d}:{minute:02d}:{second:02d}:{within:02d}.000"


def _reference_csv(animation: Animation, first_frame: int = 0) -> bytes:
    keys = [n.lower() for n in animation.names]
    columns = [keys.index(n.lower()) for n in LIVE_LINK_NAMES]
    fps = round(animation.fps)
    count = f",{LIVE_LINK_COUNT},".encode()
    tail = ("," + ",".join(["0.000000"] * len(LIVE_LINK_EXTRA)) + "\n").encode()
    eyes = ("," + ",".join(["0.000000"] * (len(LIVE_LINK_EXTRA) - 3)) + "\n").encode()
    rows = _old_format_rows(animation.weights[:, columns])
    if animation.head is None:
        tails = [tail] * len(rows)
    else:
        tails = [b"," + head + eyes for head in format_head_rows(animation.head)]
    lines = (
        _old_timecode(first_frame + i, fps).encode() + count + row + end
        for i, (row, end) in enumerate(zip(rows, tails, strict=True))
    )
    return (LIVE_LINK_HEADER + "\n").encode() + b"".join(lines)


def _reference_json(animation: Animation) -> bytes:
    fps: float | int = int(animation.fps) if animation.fps == int(animation.fps) else animation.fps
    head = {"names": list(animation.names), "fps": fps, "duration": round(animation.duration, 6)}
    out = json.dumps(head)[:-1].encode() + b', "frames": ['
    if animation.frames:
        out += b"\n[" + b"],\n[".join(_old_format_rows(animation.weights)) + b"]"
    if animation.head is not None:
        out += b'\n], "head": ['
        if animation.frames:
            out += b"\n[" + b"],\n[".join(format_head_rows(animation.head)) + b"]"
    return out + b"\n]}\n"


def _written(writer: type[CsvWriter | JsonWriter], animation: Animation) -> bytes:
    handle = io.BytesIO()
    writer().write_result(animation, handle)
    return handle.getvalue()


# Weights the writers accept ([0, 1] and float noise just outside), with the ends, ties and near-ties
# of the sixth decimal over-represented (odd multiples of 1/128 are the float32 values whose micro-units
# end in exactly .5, rounded to even); head angles of any sign, tiny, around +-1e-6 and large.
TIES = [0.0, 1.0, 0.5, 1e-6, 5e-7, 4.999999e-7, 0.9999995, 0.1234565, -1e-6, 1.000001, 0.0000015]
TIES += [k / 128 for k in (1, 3, 5, 65, 127)]
WEIGHTS = st.one_of(st.sampled_from(TIES), st.floats(-0.0, 1.0, width=32))
ANGLES = st.one_of(
    st.sampled_from([0.0, -0.0, -1e-9, -5e-7, 5e-7, -4.9e-7, 1.5e-6, -2.5e-6, np.pi, -np.pi, 9.9999995]),
    st.sampled_from([k / 128 for k in (-129, -3, -1, 1, 7, 385)]),
    st.floats(-4.0, 4.0, width=32),
    st.floats(-3e9, 3e9, width=32),
    st.floats(width=32, allow_nan=False, allow_infinity=False),
)


@st.composite
def animations(draw: st.DrawFn) -> Animation:
    frames = draw(st.integers(0, 40))
    fps = draw(st.sampled_from([1, 7, 24, 30, 60, 99, 100, 101, 120, 240, 1000]))
    weights = draw(hnp.arrays(np.float32, (frames, 52), elements=WEIGHTS))
    order = draw(st.permutations(range(52)))
    names = tuple(ARKIT_NAMES[i] for i in order)
    head = draw(st.none() | hnp.arrays(np.float32, (frames, 3), elements=ANGLES))
    return Animation(names, float(fps), weights, frames / fps, head=head)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(animations(), st.sampled_from([1, 3, 16, 1024]))
def test_csv_and_json_are_the_old_bytes(animation: Animation, block_rows: int) -> None:
    previous = writers.BLOCK_ROWS
    writers.BLOCK_ROWS = block_rows  # blocks of any size join into the same file
    try:
        assert _written(CsvWriter, animation) == _reference_csv(animation)
        assert _written(JsonWriter, animation) == _reference_json(animation)
    finally:
        writers.BLOCK_ROWS = previous


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 10**12),
    st.integers(1, 50),
    st.sampled_from([1, 24, 25, 30, 60, 100, 120, 999, 1001]),
)
def test_timecodes_of_long_files_and_high_rates(first: int, rows: int, fps: int) -> None:
    # Past 99 hours and past frame 99 of a second the fields widen, as f"{v:02d}" does.
    weights = np.full((rows, 52), 0.25, dtype=np.float32)
    text = writers.csv_rows(first, weights, None, fps).tobytes().decode()
    assert [line.split(",")[0] for line in text.splitlines()] == [
        _old_timecode(first + i, fps) for i in range(rows)
    ]


@settings(max_examples=300, deadline=None)
@given(hnp.arrays(np.float64, st.tuples(st.integers(0, 6), st.integers(1, 4)), elements=ANGLES))
def test_signed_cells_are_format_head_rows(values: np.ndarray) -> None:
    separators = b"," * (values.shape[1] - 1) + b"\n"
    expected = b"".join(row + b"\n" for row in format_head_rows(values))
    assert join_fields([signed_field(values, separators)]).tobytes() == expected


def test_fixed6_and_integer_fields_match_python_formatting() -> None:
    values = np.array([[0.0, 1.0, 0.5, 0.25, 0.1234564, 1.0000001, -1e-8, 0.9999996]])
    assert [bytes(c).decode() for c in fixed6(values)[0]] == [
        "0.000000", "1.000000", "0.500000", "0.250000", "0.123456", "1.000000", "0.000000", "1.000000",
    ]  # fmt: skip
    assert np.array_equal(fixed6(values), _old_fixed6(values))
    numbers = np.array([0, 7, 10, 99, 100, 12345, 10**15])
    text = join_fields([integer_field(numbers, 2), (np.full((7, 1), ord(","), np.uint8), None)])
    assert text.tobytes().decode() == "".join(f"{n:02d}," for n in numbers)
    assert timecode(3661 * 60 + 5, 60) == "01:01:01:05.000"


@pytest.mark.parametrize("fps", [60, 120])
def test_an_hour_past_99_keeps_every_row(fps: int) -> None:
    first = 100 * 3600 * fps - 2  # the hours field goes from 99 to 100 inside this block
    head = np.array([[-1.0, 0.0, 1e-7]] * 4, dtype=np.float32)
    rows = writers.csv_rows(first, np.zeros((4, 52), np.float32), head, fps).tobytes().decode().splitlines()
    assert [r.split(",")[0] for r in rows] == [_old_timecode(first + i, fps) for i in range(4)]
    assert all(r.split(",")[54:57] == ["-1.000000", "0.000000", "0.000000"] for r in rows)
