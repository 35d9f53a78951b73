"""The vectorised CSV/JSON rows are byte for byte what the per-value formatting they replaced wrote.

``runtime.old_writers`` holds the writers' ``write_result`` bodies as they were before ``runtime.row_format``
(per-row timecodes, ``fixed6`` digit by digit, ``head.format_head_rows``), kept verbatim as the
specification; hypothesis looks for any input the writers accept where the two differ.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import BinaryIO

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from runtime.old_writers import old_csv, old_fixed6, old_json, old_timecode

import audio2blendshape.runtime.writers as writers
from audio2blendshape.names import ARKIT_NAMES
from audio2blendshape.runtime.head import format_head_rows
from audio2blendshape.runtime.row_format import fixed6, integer_field, join_fields, signed_field, timecode
from audio2blendshape.runtime.writers import (
    Animation,
    CsvWriter,
    JsonWriter,
)


def _reference(old: Callable[[Animation, BinaryIO], None], animation: Animation) -> bytes:
    handle = io.BytesIO()
    old(animation, handle)
    return handle.getvalue()


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
        assert _written(CsvWriter, animation) == _reference(old_csv, animation)
        assert _written(JsonWriter, animation) == _reference(old_json, animation)
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
        old_timecode(first + i, fps) for i in range(rows)
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
    assert np.array_equal(fixed6(values), old_fixed6(values))
    numbers = np.array([0, 7, 10, 99, 100, 12345, 10**15])
    text = join_fields([integer_field(numbers, 2), (np.full((7, 1), ord(","), np.uint8), None)])
    assert text.tobytes().decode() == "".join(f"{n:02d}," for n in numbers)
    assert timecode(3661 * 60 + 5, 60) == "01:01:01:05.000"


@pytest.mark.parametrize("fps", [60, 120])
def test_an_hour_past_99_keeps_every_row(fps: int) -> None:
    first = 100 * 3600 * fps - 2  # the hours field goes from 99 to 100 inside this block
    head = np.array([[-1.0, 0.0, 1e-7]] * 4, dtype=np.float32)
    rows = writers.csv_rows(first, np.zeros((4, 52), np.float32), head, fps).tobytes().decode().splitlines()
    assert [r.split(",")[0] for r in rows] == [old_timecode(first + i, fps) for i in range(4)]
    assert all(r.split(",")[54:57] == ["-1.000000", "0.000000", "0.000000"] for r in rows)
