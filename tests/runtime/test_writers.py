"""Writers: Live Link Face CSV exactly as the app writes it, JSON, NPY, atomic output and clear errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_path

import audio2blendshape.atomic as atomic
import audio2blendshape.runtime.writers as writers
from audio2blendshape.names import ARKIT_NAMES
from audio2blendshape.runtime.livelink_csv import read_livelink_csv
from audio2blendshape.runtime.row_format import fixed6, timecode
from audio2blendshape.runtime.writers import (
    LIVE_LINK_HEADER,
    Animation,
    CsvWriter,
    JsonWriter,
    NpyWriter,
    WriterError,
    format_from_suffix,
    get_writer,
    read_json_animation,
)


def _animation(frames: int = 130, fps: float = 60, names: tuple[str, ...] = ARKIT_NAMES) -> Animation:
    weights = np.random.default_rng(frames).random((frames, len(names)), dtype=np.float32)
    weights[0, :2] = (0.0, 1.0)  # the range's ends must survive formatting
    return Animation(names, fps, weights, frames / fps + 0.004)


def test_header_is_the_live_link_face_apps() -> None:
    header = shared_path("formats", "live_link_face_header.csv").read_text(encoding="utf-8").strip()
    assert header == LIVE_LINK_HEADER
    columns = LIVE_LINK_HEADER.split(",")
    assert len(columns) == 2 + 61 and columns.index("JawRight") < columns.index("JawLeft")
    assert columns.index("MouthRight") < columns.index("MouthLeft")


@pytest.mark.parametrize("fps", [24, 25, 30, 50, 60, 100])
def test_csv_round_trips_through_the_live_link_reader(tmp_path: Path, fps: int) -> None:
    animation = _animation(frames=2 * fps + 7, fps=fps)
    path = animation.write(tmp_path / "take.csv")
    take = read_livelink_csv(path)
    assert take.fps == fps and take.curves.shape == animation.weights.shape
    np.testing.assert_allclose(take.curves, animation.weights, atol=5.1e-7, rtol=0)
    assert set(take.extra) == set(LIVE_LINK_HEADER.split(",")[-9:])
    assert all(np.all(column == 0) for column in take.extra.values())


def test_csv_rows_are_what_the_app_writes(tmp_path: Path) -> None:
    animation = _animation(frames=3)
    weights = animation.weights.copy()
    weights[1, ARKIT_NAMES.index("jawLeft")], weights[1, ARKIT_NAMES.index("jawRight")] = 0.25, 0.75
    path = Animation(ARKIT_NAMES, 60, weights, 0.05).write(tmp_path / "take.csv")
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = list(csv.reader(lines))
    assert lines[0] == LIVE_LINK_HEADER and len(rows) == 4
    assert [r[0] for r in rows[1:]] == ["00:00:00:00.000", "00:00:00:01.000", "00:00:00:02.000"]
    assert all(len(r) == 63 and r[1] == "61" for r in rows[1:])
    by_name = dict(zip(rows[0], rows[2], strict=True))
    assert (by_name["JawLeft"], by_name["JawRight"], by_name["HeadYaw"]) == (
        "0.250000",
        "0.750000",
        "0.000000",
    )
    assert rows[1][2] == "0.000000" and rows[1][3] == "1.000000"  # EyeBlinkLeft, EyeLookDownLeft
    assert timecode(3661 * 60 + 5, 60) == "01:01:01:05.000" and timecode(99, 100) == "00:00:00:99.000"


def test_csv_columns_are_found_by_name_whatever_the_rig_order(tmp_path: Path) -> None:
    animation = _animation(frames=70)
    order = np.random.default_rng(1).permutation(52)
    names = tuple(ARKIT_NAMES[i].upper() for i in order)
    shuffled = Animation(names, 60, animation.weights[:, order], animation.duration)
    take = read_livelink_csv(shuffled.write(tmp_path / "shuffled.csv"))
    np.testing.assert_allclose(take.curves, animation.weights, atol=5.1e-7)


def test_csv_refuses_other_rigs_and_fractional_rates(tmp_path: Path) -> None:
    facegood = _animation(names=tuple(f"shape_{i}" for i in range(116)))
    with pytest.raises(WriterError, match=r"take\.csv: .*116 shapes.*JSON or NPY"):
        facegood.write(tmp_path / "take.csv")
    with pytest.raises(WriterError, match=r"integer frame rate, not 29\.97"):
        _animation(fps=29.97).write(tmp_path / "take.csv")
    assert not list(tmp_path.iterdir())  # nothing written, not even a temporary file
    facegood.write(tmp_path / "take.json")
    facegood.write(tmp_path / "take.npy")
    assert read_json_animation(tmp_path / "take.json").names == facegood.names


def test_json_and_npy_hold_names_fps_and_frames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writers, "BLOCK_ROWS", 16)  # several blocks, and a partial last one
    animation = _animation(frames=37, fps=30)
    data = json.loads(animation.write(tmp_path / "a.json").read_text(encoding="utf-8"))
    assert data["names"] == list(ARKIT_NAMES) and data["fps"] == 30 and len(data["frames"]) == 37
    assert data["duration"] == pytest.approx(animation.duration, abs=1e-6)
    np.testing.assert_allclose(np.array(data["frames"]), animation.weights, atol=5.1e-7)
    stored = np.load(animation.write(tmp_path / "a.npy"))
    assert stored.dtype == np.float32 and np.array_equal(stored, animation.weights)
    take = read_livelink_csv(animation.write(tmp_path / "a.csv"))
    np.testing.assert_allclose(take.curves, animation.weights, atol=5.1e-7)
    empty = Animation(ARKIT_NAMES, 60, np.zeros((0, 52), np.float32), 0.01)
    assert json.loads(empty.write(tmp_path / "e.json").read_text())["frames"] == []


def test_fixed6_rounds_to_six_decimals() -> None:
    values = np.array([[0.0, 1.0, 0.5, 0.1234564, 0.1234566, 1.0000001, -1e-8]], dtype=np.float64)
    text = [bytes(cell).decode() for cell in fixed6(values)[0]]
    assert text == ["0.000000", "1.000000", "0.500000", "0.123456", "0.123457", "1.000000", "0.000000"]


def test_writes_are_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "take.csv"
    path.write_text("previous take")
    monkeypatch.setattr(writers, "BLOCK_ROWS", 10)
    calls = {"n": 0}
    real = writers.csv_rows

    def failing(first: int, block: np.ndarray, head: np.ndarray | None, fps: int) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real(first, block, head, fps)

    monkeypatch.setattr(writers, "csv_rows", failing)
    with pytest.raises(OSError, match="disk full"):
        _animation(frames=50).write(path)
    assert path.read_text() == "previous take" and sorted(p.name for p in tmp_path.iterdir()) == ["take.csv"]


def test_deferred_sync_syncs_once_for_many_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: calls.append("fsync"))
    monkeypatch.setattr(atomic.os, "sync", lambda: calls.append("sync"))
    takes = [_animation(frames=10 + i) for i in range(3)]
    with atomic.deferred_sync():
        for i, take in enumerate(takes):
            path = take.write(tmp_path / f"{i}.csv")
            assert len(path.read_text().splitlines()) == 11 + i  # renamed into place at once
        assert calls == []
    assert calls == ["sync"]
    takes[0].write(tmp_path / "alone.csv")  # outside the block: fsynced as before
    assert calls == ["sync", "fsync"]
    assert (tmp_path / "alone.csv").read_bytes() == (tmp_path / "0.csv").read_bytes()
    with atomic.deferred_sync():  # nothing written: nothing to sync
        pass
    assert calls == ["sync", "fsync"]


def test_bad_values_and_formats_are_named(tmp_path: Path) -> None:
    animation = _animation(frames=5)
    weights = animation.weights.copy()
    weights[3, 17] = 1.5
    with pytest.raises(WriterError, match=r"bad\.csv: weight of 'jawOpen' at frame 3 is 1\.5"):
        Animation(ARKIT_NAMES, 60, weights, 1.0).write(tmp_path / "bad.csv")
    weights[3, 17] = np.nan
    with pytest.raises(WriterError, match="not a finite number"):
        NpyWriter()(Animation(ARKIT_NAMES, 60, weights, 1.0), tmp_path / "bad.npy")
    with pytest.raises(WriterError, match=r"take\.txt: cannot tell the output format"):
        animation.write(tmp_path / "take.txt")
    with pytest.raises(WriterError, match="unknown output format 'fbx'"):
        get_writer("fbx")
    assert animation.write(tmp_path / "take.txt", format="json").read_text().startswith('{"names"')
    assert format_from_suffix("a/B.JSON") == "json" and isinstance(get_writer("CSV"), CsvWriter)
    assert JsonWriter.extension == ".json"
    with pytest.raises(ValueError, match="do not match"):
        Animation(ARKIT_NAMES, 60, np.zeros((4, 51), np.float32), 1.0)


# --- the optional head rotation channel ---


def _head(frames: int, seed: int = 1) -> np.ndarray:
    head = np.random.default_rng(seed).uniform(-1.2, 1.2, (frames, 3)).astype(np.float32)
    head[0] = (0.0, -1e-9, np.pi)  # a tiny negative must not print as -0.000000; angles go past 1
    return head


def test_without_a_head_every_file_is_byte_identical(tmp_path: Path) -> None:
    animation = _animation(frames=40)
    explicit = Animation(animation.names, animation.fps, animation.weights, animation.duration, head=None)
    for suffix in (".csv", ".json", ".npy"):
        a = animation.write(tmp_path / f"a{suffix}").read_bytes()
        assert explicit.write(tmp_path / f"b{suffix}").read_bytes() == a
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.csv",
        "a.json",
        "a.npy",
        "b.csv",
        "b.json",
        "b.npy",
    ]
    # The head changes only the three head columns of the CSV.
    with_head = Animation(animation.names, 60, animation.weights, animation.duration, head=_head(40))
    plain = (tmp_path / "a.csv").read_text().splitlines()
    headed = with_head.write(tmp_path / "h.csv").read_text().splitlines()
    assert plain[0] == headed[0] and len(plain) == len(headed)
    for old, new in zip(plain[1:], headed[1:], strict=True):
        assert old.split(",")[:54] == new.split(",")[:54] and old.split(",")[57:] == new.split(",")[57:]


def test_csv_head_columns_round_trip_through_the_reader(tmp_path: Path) -> None:
    head = _head(130)
    animation = Animation(ARKIT_NAMES, 60, _animation(frames=130).weights, 2.2, head=head)
    path = animation.write(tmp_path / "take.csv")
    first = next(csv.DictReader(path.open()))
    assert (first["HeadYaw"], first["HeadPitch"], first["HeadRoll"]) == ("0.000000", "0.000000", "3.141593")
    assert first["LeftEyeYaw"] == "0.000000"
    take = read_livelink_csv(path)
    assert take.head is not None and take.head.shape == (130, 3)
    np.testing.assert_allclose(take.head, head, atol=5.1e-7, rtol=0)
    np.testing.assert_allclose(take.curves, animation.weights, atol=5.1e-7, rtol=0)


def test_json_head_round_trips_and_absent_means_none(tmp_path: Path) -> None:
    head = _head(25)
    animation = Animation(
        ARKIT_NAMES[:4], 30, _animation(frames=25, names=ARKIT_NAMES[:4]).weights, 0.9, head=head
    )
    path = animation.write(tmp_path / "a.json")
    data = json.loads(path.read_text())
    assert list(data) == ["names", "fps", "duration", "frames", "head"] and len(data["head"]) == 25
    back = read_json_animation(path)
    assert back.head is not None and back.head.dtype == np.float32
    np.testing.assert_allclose(back.head, head, atol=5.1e-7, rtol=0)
    assert read_json_animation(_animation(frames=3).write(tmp_path / "b.json")).head is None


@pytest.mark.parametrize(
    ("head", "needle"),
    [
        ("[[0, 0]]", r"rows must each be \[yaw, pitch, roll\]"),
        ("[[0, 0, 0], [0, 0, 0]]", "not a list of 1 rows"),
        ('[[0, "a", 0]]', "not numbers"),
        ("[[0, 1e39, 0]]", "head pitch at frame 0 is not a finite"),
    ],
)
def test_json_with_a_bad_head_is_named(tmp_path: Path, head: str, needle: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"names": ["a", "b"], "fps": 30, "frames": [[0, 1]], "head": ' + head + "}")
    with pytest.raises(WriterError, match=f"bad.json: not an animation JSON file .*{needle}"):
        read_json_animation(path)


def test_npy_keeps_the_plain_weights_and_writes_the_head_beside_them(tmp_path: Path) -> None:
    head = _head(20)
    animation = Animation(ARKIT_NAMES, 60, _animation(frames=20).weights, 0.34, head=head)
    path = animation.write(tmp_path / "take.npy")
    np.testing.assert_array_equal(np.load(path), animation.weights)
    np.testing.assert_array_equal(np.load(tmp_path / "take.head.npy"), head)
    back = writers.read_npy_animation(path, ARKIT_NAMES, 60)
    assert back.head is not None and np.array_equal(back.head, head)
    Animation(ARKIT_NAMES, 60, animation.weights, 0.34).write(path)  # rewritten without a head
    assert not (tmp_path / "take.head.npy").exists()
    assert writers.read_npy_animation(path, ARKIT_NAMES, 60).head is None


@pytest.mark.parametrize(
    ("head", "needle"),
    [
        (np.zeros((4, 3)), r"head has shape \(4, 3\), expected \(5, 3\)"),
        (np.zeros(5), r"head has shape \(5,\), expected \(5, 3\)"),
        (np.array([[0, 0, np.nan]] * 5), "head roll at frame 0 is not a finite number of radians"),
        (np.array([["a", "b", "c"]] * 5), "head must hold numbers"),
    ],
)
def test_a_bad_head_is_a_clear_error(head: np.ndarray, needle: str) -> None:
    with pytest.raises(ValueError, match=f"Animation: {needle}"):
        Animation(ARKIT_NAMES, 60, np.zeros((5, 52), np.float32), 0.1, head=head)
