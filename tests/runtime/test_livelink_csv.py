"""Reading Live Link Face CSV: columns by name, timecodes, frame rate, errors naming line and column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audio2blendshape.names import ARKIT_NAMES, to_pascal
from audio2blendshape.runtime.livelink_csv import (
    LiveLinkCsvError,
    infer_fps,
    parse_timecode,
    read_livelink_csv,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
HEAD = ["HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
        "RightEyeYaw", "RightEyePitch", "RightEyeRoll"]  # fmt: skip


def livelink_order() -> list[str]:
    """The app's column order: ARKit's, except JawRight before JawLeft and MouthRight before MouthLeft."""
    names = [to_pascal(n) for n in ARKIT_NAMES]
    for left, right in (("JawLeft", "JawRight"), ("MouthLeft", "MouthRight")):
        i, j = names.index(left), names.index(right)
        names[i], names[j] = names[j], names[i]
    return names


def value(name: str, frame: int) -> float:
    """A distinct weight per (shape, frame), so a column read from the wrong place is noticed."""
    return round((ARKIT_NAMES.index(name[:1].lower() + name[1:]) + 1) / 100 + frame * 1e-4, 6)


def timecode(frame: int, fps: int = 60, base_seconds: int = 11 * 3600 + 2 * 60 + 59, sub: int = 0) -> str:
    """``HH:MM:SS:FF.mmm`` of ``frame``; the take starts at 11:02:59 so it crosses a minute boundary."""
    seconds = base_seconds + frame // fps
    clock = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return f"{clock}:{frame % fps:02d}.{sub:03d}"


def write_csv(
    path: Path,
    frames: int = 130,
    columns: list[str] | None = None,
    count_name: str = "BlendshapeCount",
    stamps: list[str] | None = None,
) -> Path:
    shapes = columns if columns is not None else livelink_order()
    header = ["Timecode", count_name, *shapes, *HEAD]
    lines = [",".join(header)]
    for f in range(frames):
        stamp = stamps[f] if stamps else timecode(f)
        values = [
            str(value(n, f)) if n.lower() in {a.lower() for a in ARKIT_NAMES} else "0.25" for n in shapes
        ]
        lines.append(",".join([stamp, str(len(shapes) + 9), *values, *["0.1"] * 9]))
    path.write_text("\n".join(lines) + "\n")
    return path


def expected(frames: int) -> np.ndarray:
    return np.array([[value(to_pascal(n), f) for n in ARKIT_NAMES] for f in range(frames)], dtype=np.float32)


def test_columns_are_mapped_by_name_into_arkit_order(tmp_path: Path) -> None:
    take = read_livelink_csv(write_csv(tmp_path / "take.csv"))
    assert take.fps == 60.0 and take.curves.shape == (130, 52)
    assert np.allclose(take.curves, expected(130), atol=1e-6)
    assert take.curves[0, ARKIT_NAMES.index("jawLeft")] == pytest.approx(value("JawLeft", 0))
    assert set(take.extra) == set(HEAD) and take.extra["HeadYaw"].shape == (130,)


def test_shared_header_file_reads(tmp_path: Path) -> None:
    header_file = SHARED / "formats" / "live_link_face_header.csv"
    if not header_file.is_file():
        pytest.skip(f"{header_file} is not available")
    header = header_file.read_text().strip().split(",")
    shapes = header[2:-9]
    assert write_csv(tmp_path / "t.csv", columns=shapes).read_text().split("\n")[0] == ",".join(header)
    take = read_livelink_csv(tmp_path / "t.csv")
    assert np.allclose(take.curves, expected(130), atol=1e-6)


def test_other_tools_spelling_extra_columns_and_reordering(tmp_path: Path) -> None:
    columns = [*reversed(livelink_order()), "EmotionHappy", "EmotionSad"]
    take = read_livelink_csv(write_csv(tmp_path / "t.csv", columns=columns, count_name="BlendShapeCount"))
    assert np.allclose(take.curves, expected(130), atol=1e-6)
    assert np.all(take.extra["EmotionHappy"] == 0.25)


def test_fps_inference_and_override(tmp_path: Path) -> None:
    assert infer_fps(59.9) == 60 and infer_fps(29) == 30 and infer_fps(23) == 24 and infer_fps(300) == 301
    stamps = [timecode(f, fps=30) for f in range(70)]
    take = read_livelink_csv(write_csv(tmp_path / "t.csv", frames=70, stamps=stamps))
    assert take.fps == 30.0 and take.curves.shape[0] == 70
    with pytest.raises(LiveLinkCsvError, match="not below 25 fps"):
        read_livelink_csv(tmp_path / "t.csv", fps=25)


def test_dropped_frames_are_interpolated(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", frames=130)
    lines = path.read_text().splitlines()
    del lines[1 + 40]  # frame 40 never arrived
    path.write_text("\n".join(lines) + "\n")
    take = read_livelink_csv(path)
    assert take.curves.shape[0] == 130
    assert np.allclose(take.curves[40], (expected(130)[39] + expected(130)[41]) / 2, atol=1e-5)


def test_misspelt_column_suggests_the_closest_name(tmp_path: Path) -> None:
    columns = ["JawOpn" if c == "JawOpen" else c for c in livelink_order()]
    message = r"t\.csv, line 1: the column 'JawOpen' is missing; did you mean the column 'JawOpn'\?"
    with pytest.raises(LiveLinkCsvError, match=message):
        read_livelink_csv(write_csv(tmp_path / "t.csv", columns=columns))
    columns = [c for c in livelink_order() if c != "TongueOut"]
    with pytest.raises(LiveLinkCsvError, match="'TongueOut' is missing"):
        read_livelink_csv(write_csv(tmp_path / "u.csv", columns=columns))


def corrupt(path: Path, line: int, column: str, text: str) -> None:
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[line - 1].split(",")
    cells[header.index(column)] = text
    lines[line - 1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


def test_bad_values_name_line_and_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv")
    corrupt(path, 12, "MouthPucker", "nan")
    with pytest.raises(LiveLinkCsvError, match=r"t\.csv, line 12: column 'MouthPucker' is nan"):
        read_livelink_csv(path)
    path = write_csv(tmp_path / "t.csv")
    corrupt(path, 5, "CheekPuff", "abc")
    with pytest.raises(LiveLinkCsvError, match=r"line 5: column 'CheekPuff' holds 'abc', not a number"):
        read_livelink_csv(path)
    path = write_csv(tmp_path / "t.csv")
    corrupt(path, 7, "JawOpen", "3.5")
    with pytest.raises(LiveLinkCsvError, match=r"line 7 \(0\.0\d+ s\): column 'JawOpen' is 3\.5, outside"):
        read_livelink_csv(path)
    corrupt(path, 7, "Timecode", "11:02:5x:05")
    with pytest.raises(LiveLinkCsvError, match=r"line 7: timecode '11:02:5x:05' is not"):
        read_livelink_csv(path)


def test_backwards_and_duplicate_timecodes(tmp_path: Path) -> None:
    stamps = [timecode(f) for f in range(100)]
    stamps[50] = stamps[48]
    with pytest.raises(
        LiveLinkCsvError, match=r"line 52: the timecode goes backwards from the previous row's"
    ):
        read_livelink_csv(write_csv(tmp_path / "t.csv", frames=100, stamps=stamps))
    stamps = [timecode(f) for f in range(100)]
    stamps[30] = stamps[29]
    with pytest.raises(
        LiveLinkCsvError, match=r"line 32: the timecode repeats the previous row's \(line 31\)"
    ):
        read_livelink_csv(write_csv(tmp_path / "t.csv", frames=100, stamps=stamps))


def test_timecode_parsing_and_empty_files(tmp_path: Path) -> None:
    assert parse_timecode("01:02:03:04.500", 60, "x") == (3723.0, 4.5)
    assert parse_timecode("01:02:03;04", None, "x") == (3723.0, 4.0)
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(LiveLinkCsvError, match=r"e\.csv: the file is empty"):
        read_livelink_csv(tmp_path / "e.csv")
    with pytest.raises(LiveLinkCsvError, match="at least two frames"):
        read_livelink_csv(write_csv(tmp_path / "one.csv", frames=1))


def test_sub_frame_part_shifts_time(tmp_path: Path) -> None:
    # every row is half a frame late except the first: the grid at i / 60 s interpolates halfway back
    stamps = [timecode(f, sub=0 if f == 0 else 500) for f in range(61)]
    take = read_livelink_csv(write_csv(tmp_path / "t.csv", frames=61, stamps=stamps))
    assert take.curves.shape[0] == 61 and take.start == pytest.approx(11 * 3600 + 2 * 60 + 59)
    truth = expected(61)
    assert np.allclose(take.curves[1], truth[0] + (truth[1] - truth[0]) / 1.5, atol=1e-6)


def test_head_columns_of_a_capture_are_kept(tmp_path: Path) -> None:
    take = read_livelink_csv(write_csv(tmp_path / "take.csv", frames=20))
    assert take.head is not None and take.head.shape == (20, 3) and take.head.dtype == np.float32
    assert np.allclose(take.head, 0.1)
    shapes = livelink_order()
    lines = [",".join(["Timecode", "BlendshapeCount", *shapes])]
    lines += [",".join([timecode(f), "52", *["0.5"] * 52]) for f in range(3)]
    (tmp_path / "bare.csv").write_text("\n".join(lines) + "\n")
    assert read_livelink_csv(tmp_path / "bare.csv").head is None
