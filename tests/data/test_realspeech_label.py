"""``data label`` at scale: transcript tables, spelled-out numbers, the gate, resuming, speaker splits.

Made-up clips come from eSpeak NG; the gate's rate and score checks run on three real clips of
../shared/data/realspeech, whose transcripts are cut short the way Whisper sometimes cut LibriSpeech's.
"""

from __future__ import annotations

import argparse
import csv
import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import shared_path

from audio2blendshape.audio.constants import SAMPLE_RATE
from audio2blendshape.audio.decode import prepare_waveform
from audio2blendshape.cli.data import register_label
from audio2blendshape.data.align import Aligner
from audio2blendshape.data.espeak import SpeechSettings, synthesize
from audio2blendshape.data.label_gate import Gate, Measures, is_english, judge, read_report
from audio2blendshape.data.speaker_splits import SpeakerSplits, speaker_hash
from audio2blendshape.data.spell import spell_out
from audio2blendshape.data.transcribed import LabelError, is_table, read_transcripts

HEADER = "id\tspeaker\tlanguage\tduration_s\ttext\ttranscript_source\tnote\n"


@cache
def _speech(text: str) -> np.ndarray:
    spoken = synthesize(text, SpeechSettings("en-us"))
    pad = np.zeros(SAMPLE_RATE // 4, np.float32)
    return np.concatenate([pad, prepare_waveform(spoken.samples, spoken.sample_rate, "espeak"), pad])


def _wav(path: Path, text: str) -> None:
    soundfile.write(str(path), _speech(text), SAMPLE_RATE, subtype="PCM_16")


def _table(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    """A realspeech-style table: rows of (id, speaker, language, text), written with CSV quoting."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(HEADER)
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        for utt, speaker, language, text in rows:
            writer.writerow((utt, speaker, language, "1.0", text, "human", ""))
    return path


def _label(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    register_label(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["label", *argv])
    result: int = args.func(args)
    return result


def _manifest(root: Path) -> dict[str, dict]:
    lines = (root / "manifest.jsonl").read_text().splitlines()
    return {r["id"]: r for r in map(json.loads, lines)}


# ---------------------------------------------------------------------------------------------- reading


def test_a_table_with_a_header_finds_audio_by_id_and_keeps_speaker_and_language(tmp_path: Path) -> None:
    source = tmp_path / "corpus"
    source.mkdir()
    (source / "a.flac").write_bytes(b"")
    (source / "b.wav").write_bytes(b"")
    table = _table(
        source / "transcripts.tsv",
        [
            ("a", "s1", "en", 'He said "old style" letters, 3 of them.'),
            ("b", "", "sv", "tyst"),
            ("c", "s2", "en", ""),
        ],
    )
    items = read_transcripts(table)
    assert is_table(table)
    assert [(i.utt_id, i.audio.name, i.speaker, i.language) for i in items] == [
        ("a", "a.flac", "s1", "en"), ("b", "b.wav", "corpus", "sv"), ("c", "c.flac", "s2", "en"),
    ]  # fmt: skip
    assert items[0].text == 'He said "old style" letters, 3 of them.' and items[2].text == ""
    assert items[1].where == f"{table}:3 (b)"
    assert [i.speaker for i in read_transcripts(table, "anna")] == ["anna"] * 3
    listing = tmp_path / "list.tsv"
    listing.write_text("# id\ttext\na.wav\tmama\n")  # a commented header keeps a list a list
    assert not is_table(listing) and read_transcripts(listing)[0].utt_id == "a"


def test_a_broken_table_row_names_its_line(tmp_path: Path) -> None:
    table = tmp_path / "t.tsv"
    table.write_text('id\ttext\nok\tfine\nbad\t"never closed\nlast\tline\n')
    with pytest.raises(LabelError, match=r"t\.tsv:\d: .*(unclosed quote|but the header has 2)"):
        read_transcripts(table)


# ---------------------------------------------------------------------------------------------- spelling


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        (
            "In 1850 about 19% of 1,200 men",
            "In eighteen fifty about nineteen percent of one thousand two hundred men",
        ),
        ("the 19th of May, 2nd & 3rd", "the nineteenth of May, second and third"),
        ("3.5 km for $5 or $1", "three point five km for five dollars or one dollar"),
        ("the 1850s, 42 and 7", "the eighteen fifties, forty-two and seven"),
        ("a4 v1.2 stay", "a4 v1.2 stay"),
    ],
)
def test_numbers_and_symbols_are_spelled_out(text: str, spoken: str) -> None:
    assert spell_out(text) == spoken


def test_spelled_numbers_are_in_the_dictionary() -> None:
    words = Aligner().words("On the 19th, 1850, 75% of 2,001 people & 3 dogs came.")
    assert words[:5] == ["on", "the", "nineteenth", "eighteen", "fifty"]
    assert {"percent", "thousand", "and", "three"} <= set(words)


# ---------------------------------------------------------------------------------------------- the gate


def test_the_gate_names_one_reason() -> None:
    gate = Gate(min_rate=4, max_rate=25, min_coverage=0.6, min_score=-28)
    good = Measures(phones=40, rate=11.0, coverage=0.9, score=-14.0)
    assert judge(good, gate) is None
    assert judge(Measures(40, 2.0, 0.9, -14.0), gate)[0] == "rate"  # type: ignore[index]
    assert judge(Measures(40, 30.0, 0.9, -14.0), gate)[0] == "rate"  # type: ignore[index]
    reason, detail = judge(Measures(40, 11.0, 0.3, -14.0), gate)  # type: ignore[misc]
    assert reason == "rate" and "30% of the audible audio" in detail
    assert judge(Measures(40, 11.0, 0.9, -40.0), gate) == ("score", "acoustic score -40.0/frame < -28")
    tags = ("", "en", "en-US", "eng", "en_GB", "sv", "ja")
    assert [is_english(t) for t in tags] == [True] * 5 + [False] * 2


def test_made_up_clips_are_written_or_rejected_with_a_reason_and_a_rerun_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "made"
    source.mkdir()
    _wav(source / "good.wav", "my baby bought a big blue balloon")
    _wav(source / "short.wav", "mama papa")
    (source / "broken.wav").write_bytes(b"RIFF not really a wave file")
    table = _table(
        source / "transcripts.tsv",
        [
            ("good", "kim", "en", "My baby bought a big blue balloon."),
            ("short", "kim", "en", "the quick brown fox jumps over the lazy dog " * 3),
            ("broken", "kim", "en", "mama papa"),
            ("gone", "kim", "en", "mama papa"),
            ("swedish", "kim", "sv", "tyst under denna inspelning"),
            ("unknown", "kim", "en", "mama qwxzv"),
            ("blank", "kim", "en", " -- "),
        ],
    )
    out = tmp_path / "data"
    assert _label("--transcripts", str(table), "--out", str(out), "--workers", "2") == 0
    printed = capsys.readouterr().out
    assert "wrote 1 utterance(s) (train 0.001 h)" in printed
    assert "rejected 6 (language 1, empty 1, oov 1, unreadable 2, alignment 1)" in printed
    report = read_report(out)
    assert {k: (r.status, r.reason) for k, r in report.items()} == {
        "good": ("written", ""), "short": ("rejected", "alignment"), "broken": ("rejected", "unreadable"),
        "gone": ("rejected", "unreadable"), "swedish": ("rejected", "language"),
        "unknown": ("rejected", "oov"), "blank": ("rejected", "empty"),
    }  # fmt: skip
    assert "'qwxzv'" in report["unknown"].detail and "no such audio file" in report["gone"].detail
    assert list(_manifest(out)) == ["good"]
    before = (out / "label_report.tsv").read_text()

    assert _label("--transcripts", str(table), "--out", str(out), "--workers", "1") == 0
    printed = capsys.readouterr().out
    assert "wrote 0 utterance(s)" in printed and "1 already there; 6 rejected by an earlier run" in printed
    assert (out / "label_report.tsv").read_text() == before
    assert _label("--transcripts", str(table), "--out", str(out), "--workers", "1", "--retry-rejected") == 0
    assert "rejected 6 (" in capsys.readouterr().out and list(_manifest(out)) == ["good"]


def test_without_the_gate_a_list_fails_on_the_first_unlabelable_clip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _wav(tmp_path / "good.wav", "mama papa")
    listing = tmp_path / "list.tsv"
    listing.write_text("good.wav\tmama papa\nmissing.wav\tmama papa\n")
    out = tmp_path / "data"
    assert _label("--transcripts", str(listing), "--out", str(out), "--workers", "1") == 1
    assert "1 audio file(s) do not exist" in capsys.readouterr().err and not (out / "meta").exists()
    assert _label("--transcripts", str(listing), "--out", str(out), "--workers", "1", "--gate") == 0
    assert read_report(out)["missing"].reason == "unreadable"


# ---------------------------------------------------------------------------------------------- real speech


def _real_table(tmp_path: Path) -> Path:
    """Three real clips beside a table: one whole transcript, two cut to their first half."""
    realspeech = shared_path("data", "realspeech")
    rows: list[tuple[str, str, str, str]] = []
    for folder, utt, keep in (("dctts", "LJ001-0035", 1.0), ("librispeech", "1688-142285-0008", 0.5),
                              ("librispeech", "1688-142285-0002", 0.5)):  # fmt: skip
        (tmp_path / f"{utt}.flac").symlink_to(realspeech / folder / f"{utt}.flac")
        with (realspeech / folder / "transcripts.tsv").open(encoding="utf-8", newline="") as handle:
            row = next(r for r in csv.DictReader(handle, delimiter="\t") if r["id"] == utt)
        words = row["text"].split()
        rows.append((utt, row["speaker"], "en", " ".join(words[: int(len(words) * keep)])))
    return _table(tmp_path / "transcripts.tsv", rows)


def test_real_clips_whose_transcript_was_cut_are_rejected_by_rate_or_score(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = _real_table(tmp_path)
    out = tmp_path / "data"
    assert _label("--transcripts", str(table), "--out", str(out), "--workers", "1") == 0
    report = read_report(out)
    assert (report["LJ001-0035"].status, report["LJ001-0035"].reason) == ("written", "")
    # Half the words: the rest of the speech is aligned as silence, or squeezed into the words given.
    cut = report["1688-142285-0008"]
    assert cut.reason == "rate" and "of the audible audio" in cut.detail
    assert report["1688-142285-0002"].reason == "score"
    assert "rejected 2 (rate 1, score 1)" in capsys.readouterr().out
    unchecked = tmp_path / "unchecked"
    assert _label("--transcripts", str(table), "--out", str(unchecked), "--workers", "1", "--no-gate") == 0
    assert len(_manifest(unchecked)) == 3


# ---------------------------------------------------------------------------------------------- splits


def test_speaker_splits_never_share_a_speaker() -> None:
    speakers = [f"spk{i}" for i in range(2000)]
    hashed = SpeakerSplits(held_out_fraction=0.2)
    splits = {s: hashed.split(s) for s in speakers}
    assert splits == {s: SpeakerSplits(held_out_fraction=0.2).split(s) for s in speakers}  # deterministic
    shares = {name: sum(v == name for v in splits.values()) / len(speakers) for name in ("val", "test")}
    assert shares["val"] == pytest.approx(0.1, abs=0.025) and shares["test"] == pytest.approx(0.1, abs=0.025)
    named = SpeakerSplits.named(["spk1", " spk2 "], ["spk3"], held_out_fraction=0.1)
    assert [named.split(s) for s in ("spk1", "spk2", "spk3")] == ["val", "val", "test"]
    assert {named.split(s) for s in speakers[4:]} == {"train"}  # both named: the hash picks nobody
    test_named = SpeakerSplits.named([], ["spk3"], held_out_fraction=0.1)
    others = [test_named.split(s) for s in speakers[4:]]  # test named: the hash fills only val
    assert "test" not in others and 0.07 < others.count("val") / len(others) < 0.13
    assert speaker_hash("spk7") == speaker_hash("spk7") and 0.0 <= speaker_hash("") < 1.0
    with pytest.raises(ValueError, match="spk1 named for both val and test"):
        SpeakerSplits.named(["spk1"], ["spk1"])


def test_label_splits_by_speaker_across_several_tables(tmp_path: Path) -> None:
    for name, speakers in (("one", ("ann", "bob")), ("two", ("cid", "dee"))):
        folder = tmp_path / name
        folder.mkdir()
        rows = []
        for speaker in speakers:
            for index, text in enumerate(("mama papa", "my baby bought a big blue balloon")):
                _wav(folder / f"{speaker}{index}.wav", text)
                rows.append((f"{speaker}{index}", speaker, "en", text))
        _table(folder / "transcripts.tsv", rows)
    out = tmp_path / "data"
    tables = [a for n in ("one", "two") for a in ("--transcripts", str(tmp_path / n / "transcripts.tsv"))]
    assert _label(*tables, "--out", str(out), "--workers", "1", "--split-by-speaker",
                  "--val-speakers", "bob", "--test-speakers", "cid,dee") == 0  # fmt: skip
    records = _manifest(out).values()
    by_split: dict[str, set[str]] = {}
    for record in records:
        by_split.setdefault(record["split"], set()).add(record["speaker"])
    assert by_split == {"train": {"ann"}, "val": {"bob"}, "test": {"cid", "dee"}}
    assert _label(*tables, "--out", str(tmp_path / "x"), "--val-speakers", "bob") == 1


def test_aligned_spans_are_moved_past_the_aligners_lead() -> None:
    from audio2blendshape.data.transcribed import ALIGNER_LEAD_S, delay_spans
    from audio2blendshape.data.visemes import PhonemeSpan

    spans = [PhonemeSpan(0.0, 0.2, "SIL"), PhonemeSpan(0.2, 0.5, "AA1"), PhonemeSpan(0.5, 1.0, "M")]
    moved = delay_spans(spans, ALIGNER_LEAD_S, duration=1.004)
    assert [t for s in moved for t in (s.start, s.end)] == pytest.approx(
        [0.0, 0.209, 0.209, 0.509, 0.509, 1.004]
    )
    assert [s.symbol for s in moved] == ["SIL", "AA1", "M"]


def test_letter_to_sound_can_be_switched_off_on_the_command_line(tmp_path: Path) -> None:
    """A word no dictionary has ("voyce") is pronounced by eSpeak by default, and is oov when switched off."""
    hello = Path(__file__).resolve().parents[2] / "examples" / "hello.wav"
    (tmp_path / "hello.wav").write_bytes(hello.read_bytes())
    text = "Hello! My mouth moves with my voyce. Mama and papa bought a big blue boat."
    table = _table(tmp_path / "transcripts.tsv", [("hello", "kim", "en", text)])
    assert _label("--transcripts", str(table), "--out", str(tmp_path / "on")) == 0
    assert read_report(tmp_path / "on")["hello"].status == "written"
    # Off, the only clip is rejected: nothing written is an error status, the verdict is still reported.
    assert _label("--transcripts", str(table), "--out", str(tmp_path / "off"), "--no-letter-to-sound") == 1
    off = read_report(tmp_path / "off")["hello"]
    assert (off.status, off.reason) == ("rejected", "oov") and "'voyce'" in off.detail
