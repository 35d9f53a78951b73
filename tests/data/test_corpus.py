"""The corpus layout (write, read, manifest), training windows over it, ``data stats`` and ``data check``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import audio2blendshape.atomic as atomic
import audio2blendshape.data.corpus as corpus
from audio2blendshape.data.corpus import (
    CorpusError,
    build_manifest,
    has_utterance,
    load_curves,
    load_mel,
    read_manifest,
    read_names,
    resample_curves,
    write_utterance,
)
from audio2blendshape.data.corpus_windows import SILENCE_MEL, CorpusSequences, CorpusWindows, window_starts
from audio2blendshape.data.inspect import check, stats
from audio2blendshape.data.visemes import PhonemeSpan
from audio2blendshape.data.windows import WindowDataset, collate

NAMES = ("jawOpen", "mouthClose", "browInnerUp")
RATE = 16000


def tone(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(int(seconds * RATE))).astype(np.float32)


def ramp_curves(seconds: float, fps: float) -> np.ndarray:
    """Column 0 is time in units of 10 s, so resampled values can be checked against time exactly."""
    frames = round(seconds * fps)
    t = np.arange(frames) / fps
    return np.stack([t / 10.0, np.full(frames, 0.5), 0.5 + 0.5 * np.sin(t)], axis=1).astype(np.float32)


def write(root: Path, utt_id: str, seconds: float = 1.0, fps: float = 30.0, **kw: object) -> dict:
    options: dict = {"language": "en", "speaker": "s1", "split": "train", **kw}
    return write_utterance(root, utt_id, tone(seconds), ramp_curves(seconds, fps), NAMES, fps, **options)


def test_write_utterance_round_trip(tmp_path: Path) -> None:
    spans = [PhonemeSpan(0.0, 0.2, "h"), PhonemeSpan(0.2, 0.5, "ə")]
    record = write(tmp_path, "utt_1", text="hello", phonemes=spans, source="unit")
    assert record["frames"] == 30 and record["duration"] == pytest.approx(1.0)
    assert record["phonemes"] == [[0.0, 0.2, "h"], [0.2, 0.5, "ə"]]
    assert has_utterance(tmp_path, "utt_1") and not has_utterance(tmp_path, "utt_2")
    assert read_names(tmp_path) == NAMES
    assert json.loads((tmp_path / "meta" / "utt_1.json").read_text()) == record
    curves = load_curves(tmp_path, record)
    assert curves.dtype == np.float32 and np.allclose(curves, ramp_curves(1.0, 30.0))
    audio = corpus.load_utterance_audio(tmp_path, record)
    assert audio.shape == (RATE,) and np.max(np.abs(audio - tone(1.0))) < 1e-4  # PCM_16 quantisation
    assert not [p for p in tmp_path.rglob(".*")], "temp files left behind"


def test_write_rejects_bad_input(tmp_path: Path) -> None:
    bad = ramp_curves(1.0, 30.0)
    bad[7, 1] = np.nan
    with pytest.raises(CorpusError, match=r"frame 7, column 'mouthClose'"):
        write_utterance(tmp_path, "a", tone(1.0), bad, NAMES, 30.0, language="en", speaker="s", split="train")
    big = ramp_curves(1.0, 30.0)
    big[3, 2] = 1.5
    with pytest.raises(CorpusError, match=r"outside \[0, 1\].*frame 3, column 'browInnerUp'"):
        write_utterance(tmp_path, "a", tone(1.0), big, NAMES, 30.0, language="en", speaker="s", split="train")
    with pytest.raises(CorpusError, match="differ by more than one frame"):
        write_utterance(tmp_path, "a", tone(1.2), ramp_curves(1.0, 30), NAMES, 30, language="en", speaker="s",
                        split="train")  # fmt: skip
    with pytest.raises(CorpusError, match="split 'dev'"):
        write(tmp_path, "a", split="dev")
    with pytest.raises(CorpusError, match="not usable as a file name"):
        write(tmp_path, "../evil")
    assert not (tmp_path / "meta").exists(), "a rejected utterance must leave no record"


def test_small_overshoot_is_clipped_and_one_frame_slack_allowed(tmp_path: Path) -> None:
    curves = ramp_curves(1.0, 30.0)[:29]  # one frame short of the audio: still within a frame
    curves[0, 0] = -0.005
    curves[1, 2] = 1.004
    record = write_utterance(tmp_path, "a", tone(1.0), curves, NAMES, 30.0, language="en", speaker="s",
                             split="val")  # fmt: skip
    stored = load_curves(tmp_path, record)
    assert stored[0, 0] == 0.0 and stored[1, 2] == 1.0


def test_names_must_match_existing_dataset(tmp_path: Path) -> None:
    write(tmp_path, "a")
    with pytest.raises(CorpusError, match=r"column 1: 'mouthClose' vs 'mouthFunnel'"):
        write_utterance(tmp_path, "b", tone(1.0), ramp_curves(1.0, 30), ("jawOpen", "mouthFunnel", "x"), 30,
                        language="en", speaker="s", split="train")  # fmt: skip


def test_manifest_is_sorted_and_skips_incomplete_utterances(tmp_path: Path) -> None:
    for utt_id in ("c", "a", "b"):
        write(tmp_path, utt_id)
    (tmp_path / "meta" / "b.json").unlink()  # as if killed before meta was written
    records = build_manifest(tmp_path)
    assert [r["id"] for r in records] == ["a", "c"]
    assert read_manifest(tmp_path) == records


def test_read_manifest_names_the_bad_line(tmp_path: Path) -> None:
    write(tmp_path, "a")
    build_manifest(tmp_path)
    with (tmp_path / "manifest.jsonl").open("a") as handle:
        handle.write("{not json\n")
    with pytest.raises(CorpusError, match=r"manifest.jsonl, line 2"):
        read_manifest(tmp_path)


def test_atomic_write_leaves_old_file_when_writer_fails(tmp_path: Path) -> None:
    target = tmp_path / "x.txt"
    atomic.atomic_write_text(target, "old")

    def explode(handle: object) -> None:
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic.atomic_write(target, explode)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["x.txt"]


def test_mel_is_cached_and_invalidated_on_rewrite(tmp_path: Path) -> None:
    record = write(tmp_path, "a")
    mel = load_mel(tmp_path, record)
    cache = tmp_path / "mel" / "a.npy"
    assert mel.shape == (100, 80) and cache.is_file()
    np.save(cache, np.zeros((100, 80), np.float32))
    assert np.all(load_mel(tmp_path, record) == 0)  # read from the cache, not recomputed
    write(tmp_path, "a")
    assert not cache.exists()


def test_resample_curves_interpolates_in_time() -> None:
    curves = ramp_curves(2.0, 30.0)
    out = resample_curves(curves, 30.0, 200)
    t = np.arange(200) / 100.0
    inside = t <= 59 / 30
    assert np.allclose(out[inside, 0], t[inside] / 10.0, atol=1e-6)
    assert np.allclose(out[~inside, 0], curves[-1, 0])  # held after the last frame


def test_window_starts_cover_the_tail() -> None:
    assert window_starts(10, 4, 3).tolist() == [0, 3, 6]
    assert window_starts(11, 4, 3).tolist() == [0, 3, 6, 7]
    with pytest.raises(ValueError):
        window_starts(3, 4, 1)


def make_corpus(root: Path) -> None:
    write(root, "long", seconds=4.0, fps=60.0)
    write(root, "short", seconds=1.5, fps=30.0)
    write(root, "held", seconds=4.0, fps=30.0, split="val")
    build_manifest(root)


def test_corpus_windows_align_curves_with_mel(tmp_path: Path) -> None:
    make_corpus(tmp_path)
    windows = CorpusWindows(tmp_path, "train", window_frames=300, hop_frames=50)
    assert isinstance(windows, WindowDataset) and windows.names == NAMES
    # long: 400 frames -> starts 0, 50, 100 ; short: 150 frames padded to one window
    assert len(windows) == 4 and [windows.utterance(i) for i in range(4)] == ["long"] * 3 + ["short"]
    window = windows[1]
    assert window.mel.shape == (300, 80) and window.curves.shape == (300, 3)
    t = (50 + np.arange(300)) / 100.0
    assert np.allclose(window.curves[:, 0].numpy(), t / 10.0, atol=1e-6)
    assert torch.equal(window.mel, torch.from_numpy(load_mel(tmp_path, read_manifest(tmp_path)[1])[50:350]))
    padded = windows[3]
    assert torch.all(padded.mel[150:] == SILENCE_MEL)
    assert torch.all(padded.curves[150:] == padded.curves[149])
    batch = collate(windows, torch.tensor([3, 0, 1]))
    assert batch.mel.shape == (3, 300, 80) and batch.curves.shape == (3, 300, 3)
    assert torch.equal(batch.curves[2], windows[1].curves) and torch.equal(batch.mel[0], windows[3].mel)


def test_corpus_windows_skip_short_and_sequences(tmp_path: Path) -> None:
    make_corpus(tmp_path)
    windows = CorpusWindows(tmp_path, "train", pad_short=False)
    assert windows.skipped == ["short"] and {windows.utterance(i) for i in range(len(windows))} == {"long"}
    sequences = CorpusSequences(tmp_path, ("train", "val"), window_frames=200)
    assert sequences.hop_frames == 200 and len(sequences) == 2 + 1 + 2
    with pytest.raises(CorpusError, match="no utterances in split"):
        CorpusWindows(tmp_path, "test")


def test_stats_and_check(tmp_path: Path) -> None:
    make_corpus(tmp_path)
    result = stats(tmp_path)
    assert result["by"]["split"] == pytest.approx({"train": 5.5 / 3600, "val": 4.0 / 3600})
    mouth = result["shapes"][1]
    assert mouth["name"] == "mouthClose" and mouth["mean"] == pytest.approx(0.5) and mouth["active"] == 1.0
    CorpusWindows(tmp_path, "train")  # caches the log-mel, which check then validates too
    assert check(tmp_path) == []
    np.save(tmp_path / "mel" / "short.npy", np.zeros((149, 80), np.float32))
    curves = np.load(tmp_path / "curves" / "long.npy")
    curves[5, 0] = np.nan
    np.save(tmp_path / "curves" / "long.npy", curves)
    (tmp_path / "audio" / "held.wav").unlink()
    with (tmp_path / "manifest.jsonl").open("a") as handle:
        handle.write(json.dumps({**read_manifest(tmp_path)[2], "split": "dev"}) + "\n")
    problems = "\n".join(check(tmp_path))
    assert "long.npy: 1 values are NaN" in problems
    assert "held.wav: missing" in problems
    assert "short.npy: cached log-mel has shape (149, 80), expected finite values in (150, 80)" in problems
    assert "split 'dev'" in problems and "appears twice" in problems
