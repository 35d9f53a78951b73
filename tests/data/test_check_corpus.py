"""``data check-corpus``: the reserved HTS voice reads a corpus's texts into a test-only corpus."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from audio2blendshape.cli.data_check import register_check_corpus
from audio2blendshape.data import festival
from audio2blendshape.data.check_corpus import plan_jobs, run_check_corpus
from audio2blendshape.data.corpus import (
    build_manifest,
    load_curves,
    load_utterance_audio,
    read_manifest,
    write_utterance,
)
from audio2blendshape.data.festival import FestivalError
from audio2blendshape.names import ARKIT_NAMES

VOICE = "slt_hts"


def _have_voice() -> bool:
    if shutil.which("festival") is None:
        return False
    return festival.RESERVED_VOICES[VOICE].function in festival.installed_voices()


needs_hts = pytest.mark.skipif(
    not _have_voice(),
    reason="festival's reserved voice is not installed "
    f"(CI installs {festival.RESERVED_VOICES[VOICE].package})",
)
CLOSE, JAW = ARKIT_NAMES.index("mouthClose"), ARKIT_NAMES.index("jawOpen")


def _source(root: Path) -> Path:
    """Silent clips whose texts are what matters: two English test ones, one Italian, one train."""
    rows = [("a", "en-us", "test", "Mama bought a map."), ("b", "en-us", "test", "Pat saw the big tent."),
            ("c", "it", "test", "Buon giorno."), ("d", "en-us", "train", "Never read.")]  # fmt: skip
    for utt_id, language, split, text in rows:
        write_utterance(
            root, utt_id, np.zeros(16000, np.float32), np.zeros((100, 52), np.float32), ARKIT_NAMES, 100.0,
            language=language, speaker=f"s{utt_id}", split=split, text=text,
        )  # fmt: skip
    build_manifest(root)
    return root


def test_the_reserved_voice_never_passes_the_training_gate(tmp_path: Path) -> None:
    with pytest.raises(FestivalError, match="reserved for independent checks"):
        festival.check_voice(VOICE)
    with pytest.raises(FestivalError, match="'kal' is not a reserved check voice"):
        festival.reserved_voice("kal")
    jobs, unreadable = plan_jobs(_source(tmp_path / "src"), "test", VOICE, tmp_path / "out")
    assert [j.source_id for j in jobs] == ["a", "b"] and unreadable == 1  # the Italian text
    assert [j.utt_id for j in jobs] == ["slt_hts-a", "slt_hts-b"] and len({j.seed for j in jobs}) == 2
    with pytest.raises(ValueError, match="no utterances in split 'val'"):
        plan_jobs(tmp_path / "src", "val", VOICE, tmp_path / "out")
    with pytest.raises(ValueError, match="must not be written into its source"):
        run_check_corpus(tmp_path / "src", "test", VOICE, tmp_path / "src")


@needs_hts
def test_a_check_corpus_holds_the_texts_spoken_with_exact_timing_in_the_test_split(tmp_path: Path) -> None:
    source, out = _source(tmp_path / "src"), tmp_path / "check"
    parser = argparse.ArgumentParser()
    register_check_corpus(parser.add_subparsers())
    args = parser.parse_args(["check-corpus", str(source), "--out", str(out), "--workers", "1"])
    assert args.func(args) == 0
    records = read_manifest(out)
    assert [(r["id"], r["text"], r["split"]) for r in records] == [
        ("slt_hts-a", "Mama bought a map.", "test"), ("slt_hts-b", "Pat saw the big tent.", "test"),
    ]  # fmt: skip
    for record in records:
        assert record["speaker"] == "festival-slt_hts" and json.loads(record["source"])["voice"] == VOICE
        audio, curves = load_utterance_audio(out, record), load_curves(out, record)
        assert curves.shape == (audio.shape[0] // 160, 52)
        phonemes = record["phonemes"]
        assert phonemes[0][0] == 0.0 and phonemes[-1][1] == pytest.approx(record["duration"], abs=1e-3)
    mama = records[0]
    curves = load_curves(out, mama)
    bilabials = [(s, e) for s, e, symbol in mama["phonemes"] if symbol in ("m", "b", "p")]
    assert len(bilabials) == 5  # m m b m p, as the diphone voices say it
    for start, end in bilabials:
        middle = curves[int((start + end) * 50)]
        assert middle[JAW] - middle[CLOSE] < 0.05
    # Speech sits where the spans say: the audio is louder inside the words than in the leading pause.
    audio = load_utterance_audio(out, mama)
    lead = int(mama["phonemes"][0][1] * 16000)
    assert np.sqrt(np.mean(audio[lead : lead + 1600] ** 2)) > 10 * np.sqrt(
        np.mean(audio[: lead // 2] ** 2) + 1e-12
    )
    rerun = run_check_corpus(source, "test", VOICE, out, workers=1)
    assert (rerun.written, rerun.skipped, rerun.unreadable) == (0, 2, 1)
