"""``data synth``: deterministic plan, voice-disjoint splits, resumable writes, labels aligned to audio."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile

from audio2blendshape.cli.data import register_synth as register
from audio2blendshape.data.corpus import read_manifest
from audio2blendshape.data.espeak import PAUSE, variant_names
from audio2blendshape.data.synth import (
    HELD_OUT,
    LANGUAGES,
    VARIANTS,
    SynthConfig,
    iter_plan,
    plan_utterances,
    run_synth,
)
from audio2blendshape.data.voice_variants import random_variant
from audio2blendshape.names import ARKIT_NAMES

JAW = ARKIT_NAMES.index("jawOpen")


def _config(out: Path, **changes: object) -> SynthConfig:
    base: dict[str, object] = {
        "out": out,
        "hours": 0.004,
        "languages": ("en-us", "cmn"),
        "seed": 3,
        "workers": 1,
    }
    base.update(changes)
    return SynthConfig(**base)  # type: ignore[arg-type]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_plan_is_deterministic_and_a_prefix_of_longer_plans(tmp_path: Path) -> None:
    short = plan_utterances(_config(tmp_path, hours=0.05))
    again = plan_utterances(_config(tmp_path, hours=0.05))
    longer = plan_utterances(_config(tmp_path, hours=0.2))
    assert short == again
    assert longer[: len(short)] == short and len(longer) > 3 * len(short)
    assert [s.voice.language for s in short[:4]] == ["en-us", "cmn", "en-us", "cmn"]
    assert sum(s.estimate for s in short) >= 0.05 * 3600 > sum(s.estimate for s in short[:-1])
    other_seed = plan_utterances(_config(tmp_path, hours=0.05, seed=4))
    assert [s.text for s in other_seed[:5]] != [s.text for s in short[:5]]


def test_texts_never_repeat_and_splits_never_share_a_voice(tmp_path: Path) -> None:
    languages = tuple(LANGUAGES)
    plan = []
    for spec in iter_plan(_config(tmp_path, languages=languages)):
        plan.append(spec)
        if len(plan) == 3000:
            break
    assert len({s.text for s in plan}) == len(plan)
    by_split: dict[str, set[str]] = {"train": set(), "val": set(), "test": set()}
    for spec in plan:
        by_split[spec.voice.split].add(spec.voice.variant)
    assert not (by_split["train"] & by_split["val"]) and not (by_split["train"] & by_split["test"])
    assert not (by_split["val"] & by_split["test"])
    for split in ("val", "test"):  # every language is evaluated on held-out voices
        assert {s.voice.language for s in plan if s.voice.split == split} == set(languages)
    share = {k: sum(s.voice.split == k for s in plan) / len(plan) for k in by_split}
    assert 0.05 < share["val"] < 0.2 and 0.05 < share["test"] < 0.2
    assert len({s.voice.id for s in plan}) > 500  # many voices: variants x pitch x range x language


def test_every_catalogued_variant_ships_with_espeak() -> None:
    assert set(VARIANTS) <= set(variant_names())
    assert set(HELD_OUT) <= set(VARIANTS)
    assert len(set(VARIANTS)) == len(VARIANTS)


def test_synth_writes_aligned_labelled_utterances_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    summary = run_synth(_config(out), progress=False)
    assert summary.written == summary.planned >= 3 and not summary.failed
    records = read_manifest(out)
    assert len(records) == summary.planned
    assert (out / "names.txt").read_text().split() == list(ARKIT_NAMES)
    for record in records:
        audio, rate = soundfile.read(out / record["audio"], dtype="float32")
        curves = np.load(out / record["curves"])
        assert rate == 16000 and curves.shape == (audio.shape[0] // 160, 52)
        assert record["split"] == HELD_OUT.get(record["speaker"].split("+")[1].split("-p")[0], "train")
        phonemes = record["phonemes"]
        assert phonemes[0][0] == 0.0 and phonemes[-1][1] == pytest.approx(record["duration"], abs=1e-3)
        assert json.loads(record["source"])["voice"].startswith(LANGUAGES[record["language"]][0] + "+")
        # Labels line up with the audio: the jaw is open in vowels and near rest in pauses.
        last = curves.shape[0] - 1
        pauses = [p for p in phonemes if p[2] == PAUSE and p[1] - p[0] > 0.15]
        vowels = [p for p in phonemes if p[2].strip("ˈˌː")[:1] in set("aɑæɐoɔ")]
        assert vowels
        vowel_jaw = np.mean([curves[min(int((p[0] + p[1]) * 50), last), JAW] for p in vowels])
        for p in pauses:
            assert curves[min(int((p[0] + p[1]) * 50), last), JAW] < 0.5 * vowel_jaw
    before = _files(out)

    # A kill mid-utterance leaves audio without meta; the rerun remakes exactly that one, identically.
    victim = records[1]["id"]
    (out / "meta" / f"{victim}.json").unlink()
    (out / "audio" / f"{victim}.wav").write_bytes(b"half a file")
    resumed = run_synth(_config(out), progress=False)
    assert (resumed.written, resumed.skipped) == (1, summary.planned - 1)
    assert _files(out) == before

    with pytest.raises(ValueError, match="use the same --seed"):
        run_synth(_config(out, seed=4), progress=False)


def test_two_workers_make_the_same_corpus_as_one(tmp_path: Path) -> None:
    one = run_synth(_config(tmp_path / "one", hours=0.003, languages=("de",)), progress=False)
    two = run_synth(_config(tmp_path / "two", hours=0.003, languages=("de",), workers=2), progress=False)
    assert one.written == two.written >= 2
    assert _files(tmp_path / "one") == _files(tmp_path / "two")


def test_augmentation_changes_the_audio_but_not_the_curves(tmp_path: Path) -> None:
    clean = run_synth(_config(tmp_path / "clean", hours=0.002, languages=("fr",)), progress=False)
    noisy = run_synth(_config(tmp_path / "aug", hours=0.002, languages=("fr",), augment=1.0), progress=False)
    assert clean.planned == noisy.planned
    for a, b in zip(read_manifest(tmp_path / "clean"), read_manifest(tmp_path / "aug"), strict=True):
        assert a["id"] == b["id"] and a["text"] == b["text"] and a["phonemes"] == b["phonemes"]
        np.testing.assert_array_equal(
            np.load(tmp_path / "clean" / a["curves"]), np.load(tmp_path / "aug" / b["curves"])
        )
        audio_a, _ = soundfile.read(tmp_path / "clean" / a["audio"])
        audio_b, _ = soundfile.read(tmp_path / "aug" / b["audio"])
        assert audio_a.shape == audio_b.shape and not np.allclose(audio_a, audio_b, atol=1e-3)
        assert "augment" in json.loads(b["source"]) and "augment" not in json.loads(a["source"])


def test_cli_registers_synth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(
        ["synth", "--out", str(tmp_path / "d"), "--hours", "0.001", "--languages", "es", "--workers", "1",
         "--no-progress"]
    )  # fmt: skip
    assert args.func(args) == 0
    assert "utterances written" in capsys.readouterr().out
    assert read_manifest(tmp_path / "d")[0]["language"] == "es"
    bad = parser.parse_args(["synth", "--out", str(tmp_path / "e"), "--hours", "1", "--languages", "xx"])
    assert bad.func(bad) == 2
    assert "unknown language" in capsys.readouterr().err


def test_a_text_espeak_crashes_on_is_replaced_by_another_for_the_same_voice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import audio2blendshape.data.synth as synth
    from audio2blendshape.data.espeak import EspeakError

    spec = next(iter_plan(_config(tmp_path)))
    speak = synth.synthesize

    def crashes_on_the_planned_text(text: str, settings: object) -> object:
        if text == spec.text:
            raise EspeakError("the eSpeak child process failed (status 11)")
        return speak(text, settings)  # type: ignore[arg-type]

    monkeypatch.setattr(synth, "synthesize", crashes_on_the_planned_text)
    utt_id, seconds, error = synth._work((spec, tmp_path))
    assert (utt_id, error) == (spec.utt_id, "") and seconds > 0
    meta = json.loads((tmp_path / "meta" / f"{spec.utt_id}.json").read_text(encoding="utf-8"))
    assert meta["text"] != spec.text and meta["speaker"] == spec.voice.id
    again = tmp_path / "again"
    assert synth._work((spec, again))[2] == ""  # the replacement derives from the utterance's seed
    assert (
        json.loads((again / "meta" / f"{spec.utt_id}.json").read_text(encoding="utf-8"))["text"]
        == meta["text"]
    )

    monkeypatch.setattr(
        synth, "synthesize", lambda text, settings: (_ for _ in ()).throw(EspeakError("crash"))
    )
    utt_id, seconds, error = synth._work((spec, tmp_path / "never"))
    assert seconds == 0.0 and spec.utt_id in error and "crash" in error  # after TEXT_ATTEMPTS, reported


def test_random_voices_replace_only_training_voices_and_keep_held_out_utterances(tmp_path: Path) -> None:
    named = plan_utterances(_config(tmp_path, hours=0.5, languages=tuple(LANGUAGES)))
    mixed = plan_utterances(_config(tmp_path, hours=0.5, languages=tuple(LANGUAGES), random_voices=0.5))
    assert [s.text for s in mixed] == [s.text for s in named]
    changed = [b for a, b in zip(named, mixed, strict=True) if a != b]
    assert all(b.voice.split == "train" and b.voice.variant == f"rand{b.voice.random_seed}" for b in changed)
    assert [s for s in mixed if s.voice.split != "train"] == [s for s in named if s.voice.split != "train"]
    train = sum(s.voice.split == "train" for s in named)
    assert 0.35 < len(changed) / train < 0.65
    assert len({s.voice.random_seed for s in changed}) == len(changed)  # a new voice every time


def test_synth_with_random_voices_records_the_voice_and_cleans_up(tmp_path: Path) -> None:
    import tempfile

    def private_folders() -> set[Path]:
        return set(Path(tempfile.gettempdir()).glob("audio2blendshape-espeak-*"))

    before = private_folders()
    config = _config(tmp_path / "two", hours=0.003, languages=("de",), random_voices=1.0, workers=2)
    two = run_synth(config, progress=False)
    assert private_folders() <= before  # the workers removed theirs
    one = run_synth(replace(config, out=tmp_path / "one", workers=1), progress=False)
    assert one.written == two.written >= 2 and _files(tmp_path / "one") == _files(tmp_path / "two")
    for record in read_manifest(tmp_path / "one"):
        source = json.loads(record["source"])
        seed = int(record["speaker"].split("+rand")[1].split("-p")[0]) if record["split"] == "train" else -1
        assert seed < 0 or source["variant_text"] == random_variant(seed)
    with pytest.raises(ValueError, match="random-voices"):
        run_synth(replace(config, random_voices=0.5), progress=False)
