"""Festival's diphone voices: phone table, timing against the audio, labels, ``data synth --engine``."""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from audio2blendshape.cli.data import register_synth
from audio2blendshape.data import festival
from audio2blendshape.data.corpus import (
    load_curves,
    load_mel,
    load_utterance_audio,
    read_manifest,
    read_names,
)
from audio2blendshape.data.espeak import PAUSE
from audio2blendshape.data.festival import (
    PHONES,
    VOICES,
    FestivalError,
    FestivalSettings,
    read_segs,
    scheme_string,
    segment_spans,
    synthesize,
)
from audio2blendshape.data.labels import label_utterance, pitch_and_energy
from audio2blendshape.data.synth import SynthConfig, iter_plan
from audio2blendshape.data.visemes import symbol_visemes, unknown_symbol_counts
from audio2blendshape.names import ARKIT_NAMES

HAVE_FESTIVAL = shutil.which("festival") is not None
needs_festival = pytest.mark.skipif(
    not HAVE_FESTIVAL, reason=f"festival is not installed (CI installs it: {festival.APT_COMMAND})"
)
CLOSE = ARKIT_NAMES.index("mouthClose")
JAW = ARKIT_NAMES.index("jawOpen")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    register_synth(parser.add_subparsers())
    return parser


# --- the phone table, checked against the visemes and against festival's own phone sets ---


def test_every_mapped_phone_has_a_viseme_and_only_pauses_are_silent() -> None:
    before = dict(unknown_symbol_counts())
    for phoneset, table in PHONES.items():
        for phone, ipa in table.items():
            visemes = symbol_visemes(ipa)
            silent = visemes == ("sil",)
            assert silent == (ipa == PAUSE), (phoneset, phone, ipa, visemes)
    assert unknown_symbol_counts() == before  # no phone reached the viseme table's fallback
    assert symbol_visemes(PHONES["radio"]["m"]) == ("PP",) and symbol_visemes(PHONES["italian"]["nf"]) == (
        "FF",
    )
    assert symbol_visemes(PHONES["italian"]["r"]) == symbol_visemes(PHONES["radio"]["r"]) == ("RR",)


@needs_festival
@pytest.mark.parametrize("name", sorted(VOICES))
def test_the_table_covers_every_phone_of_each_voice_phoneset(name: str) -> None:
    voice = VOICES[name]
    script = (
        f"(voice_{voice.function})\n(print (mapcar car (car (cdr (assoc 'phones (PhoneSet.description))))))\n"
    )
    done = subprocess.run(["festival", "--pipe"], input=script.encode(), capture_output=True, timeout=60)
    phones = done.stdout.decode("latin-1").strip().strip("()").split()
    assert len(phones) > 30, done.stdout
    assert set(phones) <= set(PHONES[voice.phoneset]), set(phones) - set(PHONES[voice.phoneset])


def test_unknown_phones_and_bad_timing_are_errors_naming_them(tmp_path: Path) -> None:
    segs = tmp_path / "x.segs"
    segs.write_text("separator ;\nnfields 1\n#\n0.1 100 pau\n0.2 100 qq\n", encoding="latin-1")
    with pytest.raises(FestivalError, match=r"voice 'kal' produced phone 'qq'"):
        read_segs(segs, "kal")
    segs.write_text("#\n0.1 100 pau\n0.25 100 m\n", encoding="latin-1")
    rows = read_segs(segs, "kal")
    assert rows == [(0.1, PAUSE), (0.25, "m")]
    spans = segment_spans(rows, 0.4, "kal")  # the waveform's tail after the last segment is a pause
    assert [(s.start, s.end, s.symbol) for s in spans] == [
        (0.0, 0.1, PAUSE),
        (0.1, 0.25, "m"),
        (0.25, 0.4, PAUSE),
    ]
    with pytest.raises(FestivalError, match=r"after the 0\.150 s waveform"):
        segment_spans(rows, 0.15, "kal")


def test_scheme_strings_escape_quotes_backslashes_and_control_characters() -> None:
    assert scheme_string('say "hi" \\ now\nplease') == '"say \\"hi\\" \\\\ now please"'


def test_reserved_and_unknown_voices_are_refused() -> None:
    for name in ("cmu_us_slt_arctic_hts", "us_slt_hts", "cmu_us_awb_cg", "cmu_us_rms_arctic_clunits"):
        with pytest.raises(FestivalError, match="reserved for independent checks"):
            festival.check_voice(name)
    with pytest.raises(FestivalError, match="unknown festival voice 'bob'"):
        festival.check_voice("bob")


def test_a_missing_festival_names_the_apt_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(festival.shutil, "which", lambda _: None)
    with pytest.raises(FestivalError, match=r"apt-get install .*festival festvox-kallpc16k"):
        festival.check_installed(("kal",))


# --- speech from festival ---


@needs_festival
def test_mama_bought_a_map_is_timed_and_labelled_where_the_lips_close() -> None:
    speech = synthesize("Mama bought a map.", FestivalSettings("kal"))
    assert speech.sample_rate == 16000 and speech.samples.dtype == np.float32
    starts = [s.start for s in speech.spans]
    assert starts[0] == 0.0 and speech.spans[-1].end == pytest.approx(speech.duration)
    assert all(a.end == b.start and a.start < a.end for a, b in itertools.pairwise(speech.spans))
    symbols = [s.symbol for s in speech.spans]
    assert [s for s in symbols if s in ("m", "b", "p")] == ["m", "m", "b", "m", "p"]
    assert symbols[0] == symbols[-1] == PAUSE
    # The audio agrees with the timing: the leading pause is silent and speech starts near its end.
    rate = int(speech.sample_rate)

    def level(begin: float, end: float) -> float:
        part = speech.samples[int(begin * rate) : int(end * rate)]
        return float(20 * np.log10(np.sqrt(np.mean(part**2)) + 1e-9))

    lead = speech.spans[0]
    assert level(0.0, lead.end - 0.02) < -50 and level(lead.end, lead.end + 0.1) > -35
    curves = label_utterance(speech.samples, speech.spans, seed=0)
    for span in speech.spans:
        middle = curves[int((span.start + span.end) * 50)]
        if span.symbol in ("m", "b", "p"):
            assert middle[JAW] - middle[CLOSE] < 0.05, span  # lips shut
        elif span.symbol in ("ɑ", "ɔ", "æ"):
            assert middle[JAW] - middle[CLOSE] > 0.2, span  # open vowels


@needs_festival
def test_pitch_stretch_and_tract_change_the_voice_and_keep_the_timing() -> None:
    text = "We were away a year ago."
    plain = synthesize(text, FestivalSettings("ked"))
    higher = synthesize(text, FestivalSettings("ked", pitch=1.3))
    slower = synthesize(text, FestivalSettings("ked", stretch=1.4))
    tract = synthesize(text, FestivalSettings("ked", tract=1.1))

    def median_f0(speech: festival.FestivalSpeech) -> float:
        f0, _ = pitch_and_energy(speech.samples)  # 16 kHz speech
        return float(np.median(f0[f0 > 0]))

    assert median_f0(higher) / median_f0(plain) == pytest.approx(1.3, rel=0.1)
    assert slower.duration > 1.25 * plain.duration
    assert tract.sample_rate == pytest.approx(17600.0) and tract.samples.shape == plain.samples.shape
    assert [s.symbol for s in tract.spans] == [s.symbol for s in plain.spans]
    assert tract.spans[-1].end == pytest.approx(plain.spans[-1].end / 1.1)


@needs_festival
def test_awkward_text_is_spoken_without_a_shell_and_italian_gets_its_phones() -> None:
    speech = synthesize('He said "no" \\ (twice); $(rm -rf x) `x`', FestivalSettings("kal"))
    assert speech.duration > 1.0 and sum(s.symbol != PAUSE for s in speech.spans) > 10
    italian = synthesize("La città è bella, gli gnocchi.", FestivalSettings("lp"))
    assert {"ʎ", "ɲ", "tʃ"} <= {s.symbol for s in italian.spans}


# --- data synth --engine ---


def test_mix_keeps_the_held_out_utterances_and_texts_of_the_espeak_plan(tmp_path: Path) -> None:
    espeak = list(itertools.islice(iter_plan(SynthConfig(out=tmp_path, hours=1)), 1500))
    mix = list(itertools.islice(iter_plan(SynthConfig(out=tmp_path, hours=1, engine="mix")), 1500))
    assert [a.text for a in espeak] == [b.text for b in mix]
    fest = [b for b in mix if b.voice.engine == "festival"]
    eligible = [a for a in espeak if a.voice.split == "train" and a.voice.language in ("en-us", "en-gb")]
    assert 0.4 < len(fest) / len(eligible) < 0.6  # the default share, 0.5
    assert all(b.voice.split == "train" and b.voice.language == "en-us" for b in fest)
    assert {b.voice.variant for b in fest} == {"kal", "ked"}
    assert all(a == b for a, b in zip(espeak, mix, strict=True) if a.voice.split != "train")


def test_cli_refuses_hts_voices_and_languages_festival_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = _parser()
    args = ["synth", "--out", str(tmp_path / "d"), "--hours", "0.001", "--engine", "festival"]
    bad = parser.parse_args([*args, "--festival-voices", "kal,cmu_us_slt_arctic_hts"])
    assert bad.func(bad) == 2 and "reserved for independent checks" in capsys.readouterr().err
    bad = parser.parse_args([*args, "--languages", "de"])
    assert bad.func(bad) == 2 and "speaks 'de'" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


@needs_festival
def test_a_festival_corpus_has_the_espeak_layout_and_loads(tmp_path: Path) -> None:
    out = tmp_path / "fest"
    parser = _parser()
    args = parser.parse_args(
        ["synth", "--out", str(out), "--hours", "0.003", "--engine", "festival", "--languages", "en-us,it",
         "--workers", "1", "--no-progress", "--seed", "2"]
    )  # fmt: skip
    assert args.func(args) == 0
    records = read_manifest(out)
    assert 2 <= len(records) <= 4
    assert sorted(p.name for p in out.iterdir()) == [
        "audio", "curves", "manifest.jsonl", "meta", "names.txt", "synth.json",
    ]  # fmt: skip
    assert read_names(out) == ARKIT_NAMES
    for record in records:
        source = json.loads(record["source"])
        assert source["engine"] == "festival" and source["synth"].startswith("festival ")
        assert record["speaker"].startswith(f"{record['language']}+festival-{source['voice']}-t")
        assert record["split"] == "train" and record["language"] in ("en-us", "it")
        audio, curves = load_utterance_audio(out, record), load_curves(out, record)
        assert curves.shape == (audio.shape[0] // 160, 52) and load_mel(out, record).shape[1] == 80
        phonemes = record["phonemes"]
        assert phonemes[0][0] == 0.0 and phonemes[-1][1] == pytest.approx(record["duration"], abs=1e-3)
    assert {r["language"] for r in records} == {"en-us", "it"}
