"""Degraded copies of a corpus: the conditions real recordings come in, with the clean labels kept.

``data augment SRC --out DST --condition C --copies N`` writes, for each utterance of the chosen splits, N
copies whose audio went through condition C; the curves, phoneme timing, text, speaker and split are the
source's (no damage moves speech in time, see ``augment.py`` and ``degrade.py``). Three uses:

* training: ``mixed`` draws a different chain per copy (reverb, noise at 0-30 dB SNR, band-limiting, level,
  then sometimes a telephone line or a lossy codec), so a small real corpus is seen in many recordings;
* evaluation by condition: ``noisy10``, ``reverb``, ``telephone`` and ``codec`` apply one fixed kind of
  damage, so a model is scored on the same held-out speech clean and degraded;
* training: ``speed`` plays each utterance 0.9 or 1.1 times as fast (``speed.py``; copy k of an utterance
  gets the factor after copy k - 1's), the one condition whose curves and phoneme spans move with the audio.

Each copy is seeded by its id, so a rerun writes the same audio; copies already present are skipped
(resumable), and every file is written atomically by ``corpus.write_utterance``.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audio2blendshape.audio.constants import SAMPLE_RATE
from audio2blendshape.data import augment, degrade
from audio2blendshape.data.corpus import (
    SPLITS,
    CorpusError,
    build_manifest,
    has_utterance,
    load_curves,
    load_utterance_audio,
    read_manifest,
    read_names,
    record_phonemes,
    write_utterance,
)
from audio2blendshape.data.speed import SPEED_FACTORS, change_speed
from audio2blendshape.data.visemes import PhonemeSpan

CONDITIONS = ("clean", "mixed", "noisy10", "reverb", "telephone", "codec", "speed")
MIXED = augment.AugmentConfig(  # real recordings: always some noise, often a room, a phone now and then
    reverb_probability=0.5, noise_probability=0.8, snr_db=(0.0, 30.0), band_probability=0.2
)
TELEPHONE_SHARE = 0.15  # of mixed copies, sent through a telephone line
CODEC_SHARE = 0.25  # of mixed copies, through MP3 or Opus at a low bit rate


def _codec(audio: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    name = str(rng.choice(["mp3", "opus"]))
    bitrate = int(rng.choice([16_000, 24_000, 32_000] if name == "mp3" else [8_000, 12_000, 16_000]))
    return degrade.codec(audio, name, bitrate), {"codec": name, "bitrate": bitrate}


def degrade_audio(
    audio: np.ndarray, condition: str, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, Any]]:
    """``audio`` (16 kHz mono) under ``condition``; returns the new audio and what was applied."""
    if condition == "clean":
        return audio, {}
    if condition == "noisy10":
        return augment.add_noise(audio, 10.0, rng, float(rng.choice([0.0, 1.0, 2.0])), 0.3), {"snr_db": 10.0}
    if condition == "reverb":
        rt60 = float(rng.uniform(0.4, 0.8))
        impulse = augment.room_impulse(np.array([rt60]), np.array([0.6]), rng, SAMPLE_RATE)
        return augment.reverberate(audio, impulse), {"rt60": round(rt60, 3), "mix": 0.6}
    if condition == "telephone":
        return degrade.telephone(audio), {"telephone": True}
    if condition == "codec":
        return _codec(audio, rng)
    if condition != "mixed":
        raise ValueError(f"unknown condition {condition!r}: one of {', '.join(CONDITIONS)}")
    out, (applied,) = augment.augment(audio, rng, MIXED)
    draw = rng.random()
    if draw < TELEPHONE_SHARE:
        out, applied = degrade.telephone(out), {**applied, "telephone": True}
    elif draw < TELEPHONE_SHARE + CODEC_SHARE:
        out, extra = _codec(out, rng)
        applied = {**applied, **extra}
    return augment.limit_peak(out), applied


def _copy(
    source: Path, record: dict[str, Any], condition: str, copy: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, list[PhonemeSpan] | None, dict[str, Any]]:
    """Copy ``copy`` of one utterance: audio (16 kHz), curves, phoneme spans, and what was applied."""
    audio, curves = load_utterance_audio(source, record), load_curves(source, record)
    if condition == "speed":  # the utterance's first factor is drawn from its id, later copies take the next
        first = zlib.crc32(str(record["id"]).encode()) % len(SPEED_FACTORS)
        factor = SPEED_FACTORS[(first + copy) % len(SPEED_FACTORS)]
        moved = change_speed(audio, curves, float(record["fps"]), record_phonemes(record), factor)
        return (*moved, {"speed": factor})
    damaged, applied = degrade_audio(audio, condition, rng)
    return damaged, curves, record_phonemes(record), applied


@dataclass
class AugmentSummary:
    written: list[str] = field(default_factory=list)  # new utterance ids
    skipped: int = 0  # copies already present
    seconds: float = 0.0  # audio written


def augment_corpus(
    source: Path,
    out: Path,
    condition: str,
    copies: int = 1,
    splits: Sequence[str] = SPLITS,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> AugmentSummary:
    """Write ``copies`` degraded copies of every utterance of ``splits`` in ``source`` into ``out``."""
    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}: one of {', '.join(CONDITIONS)}")
    if copies < 1:
        raise ValueError(f"--copies must be at least 1, got {copies}")
    if condition == "speed" and copies > len(SPEED_FACTORS):
        raise ValueError(f"--copies {copies}: speed has one copy per factor {SPEED_FACTORS}")
    if Path(out).resolve() == Path(source).resolve():
        raise CorpusError(f"{out}: write the copies to another dataset than their source")
    names = read_names(source)
    records = [r for r in read_manifest(source) if r["split"] in splits]
    summary = AugmentSummary()
    try:
        for index, record in enumerate(records, 1):
            for copy in range(copies):
                utt_id = f"{record['id']}-{condition}{copy}"
                if has_utterance(out, utt_id):
                    summary.skipped += 1
                    continue
                rng = np.random.default_rng([seed, zlib.crc32(utt_id.encode())])
                audio, curves, phonemes, applied = _copy(source, record, condition, copy, rng)
                written = write_utterance(
                    out, utt_id, audio, curves, names, float(record["fps"]),
                    language=record["language"], speaker=record["speaker"], split=record["split"],
                    text=record.get("text"), phonemes=phonemes,
                    source=f"{source}/{record['id']} {condition} {applied}",
                )  # fmt: skip
                summary.written.append(utt_id)
                summary.seconds += float(written["duration"])
            if index % 50 == 0:
                log(f"[{index}/{len(records)}] {summary.seconds / 3600:.2f} h written")
    finally:
        if Path(out).is_dir():
            build_manifest(out)
    return summary
