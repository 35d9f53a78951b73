"""Forced alignment (align.py) and the ``data label`` command (label_cli.py), on real eSpeak NG speech.

eSpeak reports the sample at which each phoneme starts, which gives a ground truth to check the aligner's
phone boundaries against.
"""

from __future__ import annotations

import argparse
import itertools
import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import soundfile

from audio2blendshape.audio.constants import SAMPLE_RATE
from audio2blendshape.audio.decode import AudioError, prepare_waveform
from audio2blendshape.cli.data import register_label as register
from audio2blendshape.data.align import SILENCE, Aligner, AlignmentError, OutOfVocabularyError
from audio2blendshape.data.espeak import SpeechSettings, synthesize
from audio2blendshape.data.transcribed import LabelError, read_transcripts, utterance_id
from audio2blendshape.names import ARKIT_NAMES

PAD = 0.25  # seconds of digital silence around each clip


@cache
def _speech(text: str) -> tuple[np.ndarray, tuple[float, ...]]:
    """16 kHz speech of ``text`` padded with silence, and eSpeak's phoneme start times in it."""
    spoken = synthesize(text, SpeechSettings("en-us"))
    samples = prepare_waveform(spoken.samples, spoken.sample_rate, "espeak")
    pad = np.zeros(int(PAD * SAMPLE_RATE), np.float32)
    starts = tuple(PAD + e.sample / spoken.sample_rate for e in spoken.events if e.symbol)
    return np.concatenate([pad, samples, pad]), starts


@pytest.fixture(scope="module")
def aligner() -> Aligner:
    return Aligner()


def test_mama_papa_phones_in_order_with_silence_at_both_ends(aligner: Aligner) -> None:
    audio, starts = _speech("mama papa")
    phones = aligner.align(audio, "mama papa", "mama.wav")
    assert [p.symbol for p in phones] == [SILENCE, "M", "AA", "M", "AH", "P", "AA", "P", "AH", SILENCE]
    duration = len(audio) / SAMPLE_RATE
    assert phones[0].start == 0.0 and phones[-1].end == pytest.approx(duration)
    for before, after in itertools.pairwise(phones):
        assert before.end == pytest.approx(after.start) and before.end > before.start
    # The leading and trailing pads are silence; speech starts within 50 ms of eSpeak's first phoneme.
    assert phones[0].end == pytest.approx(starts[0], abs=0.05)
    assert phones[-1].start <= duration - PAD + 0.05


def _frame_rms(audio: np.ndarray) -> np.ndarray:
    frames = audio[: len(audio) // 160 * 160].reshape(-1, 160).astype(np.float64)
    return np.sqrt(np.mean(frames**2, axis=1))  # (n // 160,) at 100 frames per second


@pytest.mark.parametrize("text", ["mama papa", "my baby bought a big blue balloon"])
def test_bilabials_sit_where_the_energy_dips(aligner: Aligner, text: str) -> None:
    audio, _ = _speech(text)
    phones = aligner.align(audio, text)
    rms = _frame_rms(audio)
    checked = 0
    for before, lips, after in zip(phones, phones[1:], phones[2:], strict=False):
        if lips.symbol not in ("M", "P", "B") or SILENCE in (before.symbol, after.symbol):
            continue
        # Closed lips damp the sound: between the middles of the neighbouring phones the quietest 10 ms
        # frame must fall inside the bilabial's span.
        lo, hi = round(50 * (before.start + before.end)), round(50 * (after.start + after.end))
        quietest = (lo + int(np.argmin(rms[lo:hi]))) / 100
        assert lips.start - 0.011 <= quietest <= lips.end + 0.011, (lips, quietest)
        checked += 1
    assert checked >= 3


@pytest.mark.parametrize(
    "text", ["my baby bought a big blue balloon", "the quick brown fox jumps over the lazy dog"]
)
def test_phone_starts_match_espeak_within_tens_of_ms(aligner: Aligner, text: str) -> None:
    audio, starts = _speech(text)
    spoken = [p for p in aligner.align(audio, text) if p.symbol != SILENCE]
    assert len(spoken) == len(starts)  # these texts have one ARPAbet phone per eSpeak phoneme
    errors = np.abs(np.array([p.start for p in spoken]) - np.array(starts))
    assert np.median(errors) < 0.03 and np.percentile(errors, 90) < 0.07, errors


def test_words_follow_the_transcript_with_their_dictionary_phones(aligner: Aligner) -> None:
    text = "My baby bought a BIG, blue balloon!"
    audio, _ = _speech("my baby bought a big blue balloon")
    words = [w for w in aligner.align_words(audio, text) if w.word != "<sil>"]
    assert [w.word for w in words] == ["my", "baby", "bought", "a", "big", "blue", "balloon"]
    for word in words:
        spoken = " ".join(p.symbol for p in word.phones)
        alternatives = {aligner.pronunciation(word.word), aligner.pronunciation(f"{word.word}(2)")}
        assert spoken in alternatives
        assert word.phones[0].start == word.start and word.phones[-1].end == word.end


def test_reused_aligner_gives_the_same_answer_as_a_fresh_one(aligner: Aligner) -> None:
    audio, _ = _speech("the quick brown fox jumps over the lazy dog")
    other, _ = _speech("mama papa")
    first = aligner.align(audio, "the quick brown fox jumps over the lazy dog")
    aligner.align(other, "mama papa")
    assert aligner.align(audio, "the quick brown fox jumps over the lazy dog") == first
    assert Aligner().align(audio, "the quick brown fox jumps over the lazy dog") == first


def test_text_is_normalised_before_lookup(aligner: Aligner) -> None:
    assert aligner.words("“Mama,” PAPA! -- forty-two Dr. Smith's") == [
        "mama", "papa", "forty", "two", "dr.", "smith's",
    ]  # fmt: skip


def test_missing_words_are_all_listed_with_the_file() -> None:
    audio, _ = _speech("mama papa")
    with pytest.raises(OutOfVocabularyError) as caught:  # eSpeak would read both words
        Aligner(letter_to_sound=False).align(audio, "mama zzyzxq papa blorftz zzyzxq", "clip7.wav")
    assert caught.value.words == ("zzyzxq", "blorftz")
    assert "clip7.wav" in str(caught.value) and "'blorftz'" in str(caught.value)


def test_empty_transcript_is_an_error(aligner: Aligner) -> None:
    audio, _ = _speech("mama papa")
    with pytest.raises(AlignmentError, match=r"clip\.wav: the transcript is empty"):
        aligner.align(audio, " -- ... ", "clip.wav")


def test_a_transcript_the_audio_cannot_hold_fails_naming_the_file(aligner: Aligner) -> None:
    audio, _ = _speech("mama papa")
    text = "the quick brown fox jumps over the lazy dog " * 3
    with pytest.raises(AlignmentError, match=r"fox\.wav: alignment failed"):
        aligner.align(audio, text, "fox.wav")


def test_unusable_audio_is_rejected(aligner: Aligner) -> None:
    with pytest.raises(AudioError, match=r"quiet\.wav: the audio is silent"):
        aligner.align(np.zeros(SAMPLE_RATE, np.float32), "mama", "quiet.wav")
    with pytest.raises(AudioError, match=r"blip\.wav: .* too short"):
        aligner.align(np.ones(100, np.float32), "mama", "blip.wav")


def test_extra_dictionary_adds_words(tmp_path: Path) -> None:
    extra = tmp_path / "extra.dict"
    extra.write_text(";; made-up names\nZzyzxq M AA1 M AH0\n")
    custom = Aligner(extra)
    audio, _ = _speech("mama papa")
    phones = [p.symbol for p in custom.align(audio, "zzyzxq papa")]
    assert phones == [SILENCE, "M", "AA", "M", "AH", "P", "AA", "P", "AH", SILENCE]
    (tmp_path / "bad.dict").write_text("blorft QQ X\n")
    with pytest.raises(AlignmentError, match=r"bad\.dict: cannot add 'blorft'"):
        Aligner(tmp_path / "bad.dict")


# ---------------------------------------------------------------------------------------------- data label


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def _write_wav(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), _speech(text)[0], SAMPLE_RATE, subtype="PCM_16")


def _manifest(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]


def test_label_one_file_writes_an_aligned_utterance(tmp_path: Path) -> None:
    wav = tmp_path / "take 1.wav"
    _write_wav(wav, "mama papa")
    out = tmp_path / "data"
    assert _run_cli(["label", str(wav), "--text", "Mama papa.", "--out", str(out)]) == 0
    (record,) = _manifest(out)
    assert record["id"] == "take_1" and record["speaker"] == "take 1"
    assert (record["language"], record["split"], record["text"]) == ("en-us", "train", "Mama papa.")
    assert [row[2] for row in record["phonemes"]][1:5] == ["M", "AA", "M", "AH"]
    curves = np.load(out / record["curves"])
    assert curves.shape == (len(_speech("mama papa")[0]) // 160, len(ARKIT_NAMES)) == (record["frames"], 52)
    jaw = curves[:, ARKIT_NAMES.index("jawOpen")]
    aa_start, aa_end = record["phonemes"][2][:2]
    assert jaw[int(aa_start * 100) : int(aa_end * 100)].max() > jaw[:10].max() + 0.05


def test_transcript_list_reports_every_unknown_word_before_reading_audio(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_wav(tmp_path / "wavs" / "a.wav", "mama papa")
    _write_wav(tmp_path / "wavs" / "c.wav", "my baby bought a big blue balloon")
    listing = tmp_path / "anna.tsv"
    listing.write_text(
        "# path\ttext\nwavs/a.wav\tmama papa\nwavs/b.wav\tmama qwxzv\n\n"
        "wavs/c.wav\tmy baby bought a big blue balloon\n"
    )
    out = tmp_path / "data"
    assert _run_cli(["label", "--transcripts", str(listing), "--out", str(out)]) == 1
    error = capsys.readouterr().err
    assert "'qwxzv'" in error and "anna.tsv:3 (wavs/b.wav)" in error and "--skip-oov" in error
    assert not (out / "meta").exists()  # wavs/b.wav does not even exist: nothing was read
    assert (
        _run_cli(["label", "--transcripts", str(listing), "--out", str(out), "--skip-oov", "--split", "val"])
        == 0
    )
    assert "wavs_b: rejected (oov): not in the dictionary: 'qwxzv'" in capsys.readouterr().out
    records = _manifest(out)
    assert [r["id"] for r in records] == ["wavs_a", "wavs_c"]
    assert {(r["speaker"], r["split"]) for r in records} == {("anna", "val")}


def test_unreadable_audio_names_the_file_or_is_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_wav(tmp_path / "good.wav", "mama papa")
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really a wave file")
    listing = tmp_path / "list.tsv"
    listing.write_text("broken.wav\tmama papa\ngood.wav\tmama papa\tbob\n")
    out = tmp_path / "data"
    assert _run_cli(["label", "--transcripts", str(listing), "--out", str(out)]) == 1
    assert "broken.wav: not a readable audio file" in capsys.readouterr().err
    assert _run_cli(["label", "--transcripts", str(listing), "--out", str(out), "--skip-failed"]) == 0
    assert "broken: rejected (unreadable)" in capsys.readouterr().out
    assert [(r["id"], r["speaker"]) for r in _manifest(out)] == [("good", "bob")]


def test_transcript_list_errors_name_the_line(tmp_path: Path) -> None:
    listing = tmp_path / "list.tsv"
    listing.write_text("a.wav\tfine\nb.wav mama papa\n")
    with pytest.raises(LabelError, match=r"list\.tsv:2: expected 'audio path<TAB>text'"):
        read_transcripts(listing)
    listing.write_text("x/a.wav\tmama\nx_a.flac\tpapa\n")
    with pytest.raises(LabelError, match=r"both become utterance id 'x_a'"):
        read_transcripts(listing)
    listing.write_text("a.wav\t  \n")
    with pytest.raises(LabelError, match=r"list\.tsv:1 \(a\.wav\): the transcript is empty"):
        read_transcripts(listing)
    assert utterance_id(Path("../spk 1/utt#3.wav")) == "spk_1_utt_3"


def test_words_missing_from_the_transcript_lower_the_acoustic_score(aligner: Aligner) -> None:
    text = "the quick brown fox jumps over the lazy dog"
    audio, _ = _speech(text)
    whole = aligner.align_scored(audio, text)
    cut = aligner.align_scored(audio, "the quick brown fox")  # the rest is forced into silence
    assert whole.score <= 0 and cut.score < whole.score - 5
    assert whole.phones == aligner.align(audio, text) and whole.words == aligner.align_words(audio, text)


def test_an_inflection_of_a_dictionary_word_gets_its_stems_phones() -> None:
    custom = Aligner()  # learns words: a fresh one keeps the module's aligner as it was
    assert custom.pronunciation("aligner's") is None
    assert custom.words("The aligner's letters, lynches and ripens") == [
        "the", "aligner's", "letters", "lynches", "and", "ripens",
    ]  # fmt: skip
    assert custom.pronunciation("aligner's") == "AH L AY N ER Z"
    assert custom.pronunciation("lynches") == "L IH N CH IH Z"
    assert custom.pronunciation("ripens") == "R AY P AH N Z"
    with pytest.raises(OutOfVocabularyError, match="'zzyzxqs'"):  # no stem, and eSpeak not asked
        Aligner(letter_to_sound=False).words("zzyzxqs")
