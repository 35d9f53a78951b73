"""Degraded corpus copies: codecs and the telephone keep speech in time, copies keep their labels; speed
copies move speech and labels together."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from audio2blendshape.data.augment_corpus import augment_corpus, degrade_audio
from audio2blendshape.data.corpus import (
    build_manifest,
    check_lengths,
    load_curves,
    read_manifest,
    write_utterance,
)
from audio2blendshape.data.degrade import codec, telephone
from audio2blendshape.data.speed import change_speed
from audio2blendshape.data.visemes import PhonemeSpan
from audio2blendshape.data.windows import MixedWindows, TensorWindows, collate
from audio2blendshape.names import ARKIT_NAMES

RATE = 16_000


def _clicks(seconds: float = 2.0) -> tuple[np.ndarray, list[int]]:
    """Short tone bursts at known samples over quiet noise: where each one lands is easy to see."""
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 0.003, int(seconds * RATE)).astype(np.float32)
    starts = [s for s in (3_000, 11_000, 19_500, 27_000) if s + 920 < len(audio)]
    burst = (0.5 * np.sin(np.arange(320) / 3.0) * np.hanning(320)).astype(np.float32)
    for start in starts:
        audio[start : start + 320] += burst
    return audio, starts


def _burst_centres(audio: np.ndarray, starts: list[int]) -> list[int]:
    energy = np.convolve(audio.astype(np.float64) ** 2, np.ones(160), mode="same")
    return [start - 600 + int(np.argmax(energy[start - 600 : start + 920])) for start in starts]


@pytest.mark.parametrize(("name", "bitrate"), [("mp3", 24_000), ("opus", 12_000)])
def test_codecs_keep_the_timing(name: str, bitrate: int) -> None:
    audio, starts = _clicks()
    out = codec(audio, name, bitrate)
    assert out.shape == audio.shape and out.dtype == np.float32
    shifts = np.subtract(_burst_centres(out, starts), _burst_centres(audio, starts))
    assert np.abs(shifts).max() <= 16, shifts  # within 1 ms: the encoder's delay was taken out
    assert not np.allclose(out, audio, atol=1e-3)  # and it did change the audio


def test_telephone_is_narrowband_and_in_time() -> None:
    audio, starts = _clicks()
    audio += np.sin(2 * np.pi * 6_000 * np.arange(len(audio)) / RATE).astype(np.float32) * 0.1
    out = telephone(audio)
    spectrum = np.abs(np.fft.rfft(out)) ** 2
    freqs = np.fft.rfftfreq(len(out), 1 / RATE)
    assert spectrum[freqs > 4_000].sum() < 1e-3 * spectrum.sum()  # the 6 kHz tone is gone
    shifts = np.subtract(_burst_centres(out, starts), _burst_centres(audio, starts))
    assert np.abs(shifts).max() <= 16


def test_conditions_are_seeded_and_unknown_ones_are_refused() -> None:
    audio, _ = _clicks(1.0)
    first = degrade_audio(audio, "mixed", np.random.default_rng(5))
    again = degrade_audio(audio, "mixed", np.random.default_rng(5))
    np.testing.assert_array_equal(first[0], again[0])
    assert first[1] == again[1]
    noisy, applied = degrade_audio(audio, "noisy10", np.random.default_rng(1))
    assert applied == {"snr_db": 10.0} and np.abs(noisy - audio).std() > 0.001
    for condition in ("reverb", "telephone", "codec"):  # every fixed condition keeps the length
        damaged, applied = degrade_audio(audio, condition, np.random.default_rng(2))
        assert damaged.shape == audio.shape and applied and np.abs(damaged - audio).max() > 0.01
    with pytest.raises(ValueError, match="unknown condition 'loud'"):
        degrade_audio(audio, "loud", np.random.default_rng(0))


def _corpus(root: Path) -> None:
    audio, _ = _clicks(1.5)
    curves = np.random.default_rng(1).uniform(0, 1, (150, 52)).astype(np.float32)
    spans = [PhonemeSpan(0.0, 0.5, "AA1"), PhonemeSpan(0.5, 1.5, "M")]
    for utt, split in (("a", "train"), ("b", "test")):
        write_utterance(root, utt, audio, curves, ARKIT_NAMES, 100.0, language="en", speaker=utt,
                        split=split, text="ah m", phonemes=spans)  # fmt: skip
    build_manifest(root)


def test_copies_keep_labels_split_and_are_resumable(tmp_path: Path) -> None:
    _corpus(tmp_path / "src")
    summary = augment_corpus(
        tmp_path / "src", tmp_path / "out", "mixed", copies=2, splits=["train"], log=print
    )
    assert summary.written == ["a-mixed0", "a-mixed1"] and summary.seconds == pytest.approx(3.0)
    records = {r["id"]: r for r in read_manifest(tmp_path / "out")}
    source = read_manifest(tmp_path / "src")[0]
    for record in records.values():
        assert record["split"] == "train" and record["phonemes"] == source["phonemes"]
        np.testing.assert_array_equal(
            load_curves(tmp_path / "out", record), load_curves(tmp_path / "src", source)
        )
    again = augment_corpus(tmp_path / "src", tmp_path / "out", "mixed", copies=2, splits=["train"])
    assert again.written == [] and again.skipped == 2
    augment_corpus(tmp_path / "src", tmp_path / "other", "mixed", copies=2, splits=["train"])
    for utt in records:  # the same seed gives the same audio, byte for byte
        assert (tmp_path / "out" / "audio" / f"{utt}.wav").read_bytes() == (
            tmp_path / "other" / "audio" / f"{utt}.wav"
        ).read_bytes()


def test_mixed_windows_repeat_a_part_and_batch_like_items() -> None:
    names = ("a", "b")
    small = TensorWindows(torch.zeros(2, 4, 80), torch.full((2, 4, 2), 1.0), names)
    large = TensorWindows(torch.ones(3, 4, 80), torch.full((3, 4, 2), 2.0), names)
    mix = MixedWindows([small, large], [3, 1])
    assert len(mix) == 9
    assert [float(mix[i].curves[0, 0]) for i in range(9)] == [1.0] * 6 + [2.0] * 3
    order = torch.tensor([8, 0, 5, 6, 1])
    batch = collate(mix, order)
    assert torch.equal(batch.curves, torch.stack([mix[int(i)].curves for i in order]))
    with pytest.raises(ValueError, match="same curve names"):
        MixedWindows([small, TensorWindows(torch.ones(1, 4, 80), torch.ones(1, 4, 2), ("a", "c"))])


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_moves_audio_curves_and_spans_together(factor: float) -> None:
    audio, starts = _clicks(2.0)
    curves = np.zeros((200, 2), np.float32)
    curves[120:, 0] = 1.0  # a step at 1.2 s
    curves[:, 1] = np.linspace(0, 1, 200)
    spans = [PhonemeSpan(0.0, 1.2, "AA1"), PhonemeSpan(1.2, 2.0, "M")]
    out, moved, new_spans = change_speed(audio, curves, 100.0, spans, factor)
    assert out.dtype == np.float32 and abs(len(out) - len(audio) / factor) <= 1
    assert moved.shape == (round(len(out) * 100 / RATE), 2)  # as many frames as the new audio lasts
    check_lengths(len(out), moved.shape[0], 100.0, "sped-up copy")
    step = int(np.argmax(moved[:, 0] > 0.5))
    assert abs(step - 120 / factor) <= 1  # the label step lands where its sound now is
    source_frame = np.minimum(np.arange(len(moved)) * factor, 199)  # frame j shows the source at j * factor
    np.testing.assert_allclose(moved[:, 1], source_frame / 199, atol=1e-5)
    centres = _burst_centres(out, [round(s / factor) for s in starts])
    expected = np.array(_burst_centres(audio, starts)) / factor
    assert np.abs(np.array(centres) - expected).max() <= 16  # the sound moves by the same factor, within 1 ms
    assert new_spans == [PhonemeSpan(0.0, 1.2 / factor, "AA1"), PhonemeSpan(1.2 / factor, 2.0 / factor, "M")]
    with pytest.raises(ValueError, match="outside"):
        change_speed(audio, curves, 100.0, spans, 3.0)


def test_speed_copies_take_both_factors_with_their_labels(tmp_path: Path) -> None:
    _corpus(tmp_path / "src")
    summary = augment_corpus(tmp_path / "src", tmp_path / "out", "speed", copies=2, splits=["train"])
    assert summary.written == ["a-speed0", "a-speed1"]
    assert summary.seconds == pytest.approx(1.5 / 0.9 + 1.5 / 1.1, abs=1e-3)
    records = read_manifest(tmp_path / "out")
    ends = sorted(r["phonemes"][-1][1] for r in records)
    assert ends == pytest.approx([1.5 / 1.1, 1.5 / 0.9])
    for record in records:
        assert len(load_curves(tmp_path / "out", record)) == record["frames"]
    with pytest.raises(ValueError, match="one copy per factor"):
        augment_corpus(tmp_path / "src", tmp_path / "more", "speed", copies=3)
