"""``data import rig`` / ``data import livelink``: datasets made right, splits, and nothing half-written."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import soundfile

import audio2blendshape.data.corpus as corpus
from audio2blendshape.cli.data import register_import
from audio2blendshape.data.corpus import read_manifest, read_names
from audio2blendshape.data.inspect import check
from audio2blendshape.names import ARKIT_NAMES, to_pascal

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
RATE = 16000


def run(*argv: str | Path) -> int:
    parser = argparse.ArgumentParser()
    register_import(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args([str(a) for a in argv])
    result: int = args.func(args)
    return result


def wav(path: Path, seconds: float, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    soundfile.write(path, (0.1 * rng.standard_normal(int(seconds * RATE))).astype(np.float32), RATE)
    return path


def rig_pair(folder: Path, stem: str, seconds: float, fps: float = 30.0, width: int = 4) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(stem))
    np.save(folder / f"{stem}.npy", rng.uniform(0, 1, (round(seconds * fps), width)).astype(np.float32))
    wav(folder / f"{stem}.wav", seconds)


def rig_dir(folder: Path) -> Path:
    for stem, seconds in (("take_a", 1.0), ("take_b", 1.5), ("take c", 0.8)):
        rig_pair(folder, stem, seconds)
    (folder / "names.txt").write_text("lipA\nlipB\njaw\nbrow\n")
    return folder


def no_stage_left(parent: Path) -> bool:
    return not [p for p in parent.iterdir() if ".import-" in p.name]


def test_rig_directory_import(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    src = rig_dir(tmp_path / "src")
    assert run("import", "rig", src, "--fps", "30", "--out", out, "--language", "zh", "--val", "take_b") == 0
    records = read_manifest(out)
    assert [r["id"] for r in records] == ["take_a", "take_b", "take_c"]  # space made safe
    assert [r["split"] for r in records] == ["train", "val", "train"]
    assert {r["language"] for r in records} == {"zh"} and read_names(out) == ("lipA", "lipB", "jaw", "brow")
    assert np.array_equal(corpus.load_curves(out, records[0]), np.load(src / "take_a.npy"))
    assert check(out) == [] and no_stage_left(tmp_path)


def test_rig_file_form_and_adding_to_a_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ds"
    src = rig_dir(tmp_path / "src")
    names = src / "names.txt"
    assert run("import", "rig", "--curves", src / "take_a.npy", "--audio", src / "take_a.wav",
               "--names", names, "--fps", "30", "--out", out) == 0  # fmt: skip
    assert run("import", "rig", "--curves", src / "take_b.npy", "--names", names, "--fps", "30",
               "--out", out, "--split", "test") == 0  # fmt: skip
    assert [(r["id"], r["split"]) for r in read_manifest(out)] == [("take_a", "train"), ("take_b", "test")]
    assert (
        run("import", "rig", "--curves", src / "take_a.npy", "--names", names, "--fps", "30", "--out", out)
        == 1
    )
    assert "already holds 1 of these ids (take_a); pass --replace" in capsys.readouterr().out
    assert run("import", "rig", "--curves", src / "take_a.npy", "--names", names, "--fps", "30", "--out", out,
               "--split", "val", "--replace") == 0  # fmt: skip
    assert [r["split"] for r in read_manifest(out)] == ["val", "test"] and check(out) == []


def test_failed_import_leaves_nothing_behind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = rig_dir(tmp_path / "src")
    wav(src / "take_b.wav", 2.0)  # curves still 1.5 s
    out = tmp_path / "ds"
    assert run("import", "rig", src, "--fps", "30", "--out", out) == 1
    message = capsys.readouterr().out
    assert "take_b.wav lasts 2.000 s but" in message and "differ by more than one frame" in message
    assert not out.exists() and no_stage_left(tmp_path)
    # into an existing dataset: the earlier utterances stay as they were
    good = rig_dir(tmp_path / "good")
    assert run("import", "rig", good, "--fps", "30", "--out", out) == 0
    before = read_manifest(out)
    (src / "take_a.wav").write_bytes(b"RIFF garbage")
    assert run("import", "rig", src, "--fps", "30", "--out", out, "--prefix", "x_") == 1
    assert "take_a.wav: not a readable audio file" in capsys.readouterr().out
    assert read_manifest(out) == before and check(out) == [] and no_stage_left(tmp_path)


def test_other_rig_and_bad_split_names_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ds"
    assert run("import", "rig", rig_dir(tmp_path / "src"), "--fps", "30", "--out", out) == 0
    other = tmp_path / "other"
    rig_pair(other, "z", 1.0, width=4)
    (other / "names.txt").write_text("a\nb\nc\nd\n")
    assert run("import", "rig", other, "--fps", "30", "--out", out) == 1
    assert "holds a different rig" in capsys.readouterr().out
    assert run("import", "rig", other, "--fps", "30", "--out", tmp_path / "new", "--val", "nope") == 1
    assert "--val 'nope' matches none of the files" in capsys.readouterr().out
    assert (
        run("import", "rig", other, "--fps", "30", "--out", tmp_path / "new", "--names", other / "z.wav") == 1
    )


def livelink_csv(path: Path, frames: int, fps: int = 60, start: int = 0) -> Path:
    """A CSV in the app's column order (JawRight before JawLeft) whose jawOpen is the frame number / 1000."""
    names = [to_pascal(n) for n in ARKIT_NAMES]
    names[15], names[16] = names[16], names[15]
    rows = ["Timecode,BlendshapeCount," + ",".join(names)]
    for f in range(start, start + frames):
        second = 10 + f // fps
        weights = ["0.2"] * 52
        weights[names.index("JawOpen")] = f"{f / 1000:.4f}"
        rows.append(f"01:00:{second:02d}:{f % fps:02d}.000,52," + ",".join(weights))
    path.write_text("\n".join(rows) + "\n")
    return path


def test_livelink_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ds"
    csv = livelink_csv(tmp_path / "take1.csv", 120)
    wav(tmp_path / "take1.wav", 2.0)
    assert run("import", "livelink", csv, "--out", out, "--speaker", "ana") == 0
    (record,) = read_manifest(out)
    assert read_names(out) == ARKIT_NAMES and record["fps"] == 60.0 and record["speaker"] == "ana"
    curves = corpus.load_curves(out, record)
    assert curves[:, ARKIT_NAMES.index("jawOpen")] == pytest.approx(np.arange(120) / 1000, abs=1e-6)
    assert np.all(curves[:, ARKIT_NAMES.index("jawLeft")] == pytest.approx(0.2))
    assert check(out) == []
    long_audio = wav(tmp_path / "long.wav", 3.0)
    assert run("import", "livelink", csv, "--audio", long_audio, "--out", out, "--replace") == 1
    assert "--trim cuts both to the overlap" in capsys.readouterr().out
    assert run("import", "livelink", csv, "--audio", long_audio, "--out", out, "--replace", "--trim") == 0
    assert read_manifest(out)[0]["duration"] == pytest.approx(2.0)


def test_livelink_audio_start_offsets_the_curves(tmp_path: Path) -> None:
    # the CSV starts 0.5 s after the audio: the first 0.5 s of audio is dropped so time zero matches
    csv = livelink_csv(tmp_path / "t.csv", 90, start=30)
    wav(tmp_path / "t.wav", 2.0)
    out = tmp_path / "ds"
    assert run("import", "livelink", csv, "--out", out, "--audio-start", "01:00:10:00", "--trim") == 0
    (record,) = read_manifest(out)
    assert record["duration"] == pytest.approx(1.5) and record["frames"] == 90
    assert corpus.load_curves(out, record)[0, ARKIT_NAMES.index("jawOpen")] == pytest.approx(0.030)


def test_import_facegood_file(tmp_path: Path) -> None:
    data = SHARED / "data" / "facegood"
    if not (data / "1114_2_01.npy").is_file():
        pytest.skip(f"{data} is not available")
    out = tmp_path / "fg"
    assert run("import", "rig", "--curves", data / "1114_2_01.npy", "--names", data / "blendshape_names.txt",
               "--fps", "30", "--out", out, "--language", "zh") == 0  # fmt: skip
    (record,) = read_manifest(out)
    assert len(read_names(out)) == 116 and record["frames"] == 3295
    assert record["duration"] == pytest.approx(3295.71 / 30, abs=0.01)
    assert check(out) == []
