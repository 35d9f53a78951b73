"""``data check-corpus``: a reserved voice reads another corpus's texts, into a test-only corpus.

The independent check of issue 11: festival's HTS voice (``festival.RESERVED_VOICES``) was never near any
training run, and it gives exact phone timing. Reading the texts of the real held-out speakers, it makes
a test set with the same words as the real one, but with timing that no aligner estimated and a sound
that no training voice had (statistical parametric synthesis, neither eSpeak's formants nor festival's
diphones). Comparing the two says how much of a figure on real speech comes from the voices and how much
from the aligner's spans.

Every utterance is in the ``test`` split, so a training run that lists the corpus takes nothing from it.
Labels come from ``labels.label_utterance``, exactly as ``data synth`` makes them; the audio is left
clean (``data augment`` makes damaged copies). Resumable: finished utterances are skipped on a rerun.
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from audio2blendshape.data.corpus import build_manifest, has_utterance, read_manifest, write_utterance
from audio2blendshape.data.festival import (
    FestivalError,
    FestivalSettings,
    check_installed,
    reserved_voice,
)
from audio2blendshape.data.labels import label_utterance
from audio2blendshape.data.synth_festival import speak
from audio2blendshape.data.workers import unordered_map
from audio2blendshape.names import ARKIT_NAMES

FPS = 100.0  # label frames per second, as every corpus here
SPLIT = "test"  # the only split a check corpus has


@dataclass(frozen=True)
class CheckJob:
    """One utterance to make: the text of ``source_id`` read by ``voice``."""

    utt_id: str
    source_id: str
    text: str
    voice: str
    seed: int  # the labeler's per-utterance style
    out: Path


@dataclass(frozen=True)
class CheckSummary:
    """What one run did."""

    planned: int  # texts read from the source split
    skipped: int  # already made by an earlier run
    written: int  # made by this run
    unreadable: int  # source utterances without text, or in a language the voice does not read
    failed: tuple[str, ...]  # error messages of utterances festival could not speak
    wall_seconds: float
    total_hours: float  # hours in the corpus afterwards


def plan_jobs(source: Path, split: str, voice: str, out: Path) -> tuple[list[CheckJob], int]:
    """The jobs for ``split`` of corpus ``source``, and how many of its utterances the voice cannot read."""
    reads = reserved_voice(voice).reads
    records = [r for r in read_manifest(source) if r.get("split") == split]
    if not records:
        raise ValueError(f"{source}: no utterances in split {split!r}")
    jobs = []
    for record in records:
        text = str(record.get("text") or "").strip()
        if not text or record.get("language") not in reads:
            continue
        utt_id = f"{voice}-{record['id']}"
        # As data label seeds it: the style varies between utterances and a rerun gives the same curves.
        jobs.append(
            CheckJob(utt_id, str(record["id"]), text, voice, zlib.crc32(utt_id.encode()) % 2**31, out)
        )
    return jobs, len(records) - len(jobs)


def make_check_utterance(job: CheckJob) -> None:
    """Speak, label and write one utterance (clean audio, split ``test``)."""
    audio, spans, source = speak(job.text, FestivalSettings(job.voice))
    curves = label_utterance(audio, spans, fps=FPS, seed=job.seed)
    source["text_of"] = job.source_id
    write_utterance(
        job.out, job.utt_id, audio, curves, ARKIT_NAMES, FPS,
        language="en-us", speaker=f"festival-{job.voice}", split=SPLIT, text=job.text,
        phonemes=spans, source=json.dumps(source, separators=(",", ":")),
    )  # fmt: skip


def _work(job: CheckJob) -> str:
    try:
        make_check_utterance(job)
    except (FestivalError, ValueError, OSError) as error:
        return f"{job.utt_id} (text {job.text[:50]!r}): {error}"
    return ""


def run_check_corpus(source: Path, split: str, voice: str, out: Path, workers: int = 2) -> CheckSummary:
    """Make (or finish) the check corpus ``out`` from ``split`` of ``source``; rebuilds its manifest."""
    started = time.perf_counter()
    source, out = Path(source), Path(out)
    if out.resolve() == source.resolve():
        raise ValueError(f"{out}: the check corpus must not be written into its source corpus")
    jobs, unreadable = plan_jobs(source, split, voice, out)
    check_installed((voice,))
    out.mkdir(parents=True, exist_ok=True)
    todo = [job for job in jobs if not has_utterance(out, job.utt_id)]
    failed = tuple(error for error in unordered_map(_work, todo, workers, chunksize=2) if error)
    records = build_manifest(out)
    total = sum(float(r.get("duration", 0.0)) for r in records) / 3600.0
    return CheckSummary(
        len(jobs), len(jobs) - len(todo), len(todo) - len(failed), unreadable, failed,
        time.perf_counter() - started, total,
    )  # fmt: skip
