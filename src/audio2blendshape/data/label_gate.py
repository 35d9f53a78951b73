"""The quality gate of ``data label`` and its report: which transcribed clips are fit to label, and why not.

A transcript that does not match its audio still aligns more often than not: pocketsphinx stretches the
words it was given over speech nobody transcribed, or squeezes words that were never said into a few
frames. The labels would then move the lips at the wrong times. The gate turns each clip into a verdict
with one reason:

- ``language``: the table says the clip is not English (the aligner's model and dictionary are English);
- ``empty``: the transcript holds no word;
- ``oov``: words the pronunciation dictionary lacks, after numbers are spelled out (``spell.py``);
- ``unreadable``: the audio is missing, not decodable, silent or too short;
- ``alignment``: pocketsphinx found no path through the transcript;
- ``rate``: phones per second of aligned speech outside ``[min_rate, max_rate]`` (squeezed or stretched
  words), or the phones cover less than ``min_coverage`` of the audible frames (speech left untranscribed
  is aligned as silence);
- ``score``: the phone pass's mean acoustic score per frame (``align.Aligned.score``) under ``min_score``.

Every clip's verdict goes to ``DIR/label_report.tsv`` (``id, status, reason, detail``), written atomically.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audio2blendshape.atomic import atomic_write_text
from audio2blendshape.audio.constants import SAMPLE_RATE
from audio2blendshape.data.align import SILENCE, Aligned

REASONS = ("language", "empty", "oov", "unreadable", "alignment", "rate", "score")
REPORT_FILE = "label_report.tsv"
REPORT_COLUMNS = ("id", "status", "reason", "detail")
WRITTEN, REJECTED = "written", "rejected"
HOP = SAMPLE_RATE // 100  # 10 ms frames, the aligner's
AUDIBLE_DB = 30.0  # a frame within this many dB of the clip's loud frames (95th percentile) is audible


@dataclass(frozen=True)
class Gate:
    """Thresholds of the gate (docs/data.md says how they were chosen on the real speech corpus)."""

    min_rate: float = 4.0  # phones per second of speech; the real clips run at 7-18
    max_rate: float = 25.0  # a phone lasts at least 3 frames (30 ms), so 33/s is the aligner's ceiling
    # Chosen on data/realspeech (docs/data.md): every human transcript of the dctts reader passes with room
    # to spare (coverage >= 0.93, score >= -24.5), and so does every LibriSpeech clip Whisper was sure of
    # (score >= -26.4); what falls below is speech the transcript lacks (untranscribed words, cut-offs,
    # laughter).
    min_coverage: float = 0.6  # share of audible frames that lie inside phones
    min_score: float = -28.0  # mean acoustic score per frame


@dataclass(frozen=True)
class Measures:
    """What the gate looks at in one aligned clip."""

    phones: int  # spoken phones (silence aside)
    rate: float  # phones per second of the time they span
    coverage: float  # share of the audible 10 ms frames inside spoken phones
    score: float  # mean acoustic score per frame

    def describe(self) -> str:
        """One line for the report."""
        return (
            f"{self.phones} phones, {self.rate:.1f} phones/s, phones cover {self.coverage:.0%} of the "
            f"audible audio, score {self.score:.1f}/frame"
        )


def is_english(language: str) -> bool:
    """Whether a language tag ("", "en", "en-US", "eng") is English; an empty tag is taken as English."""
    return language.strip().lower().replace("_", "-").split("-")[0] in ("", "en", "eng")


def measure(audio: np.ndarray, aligned: Aligned) -> Measures:
    """Speaking rate, coverage of the audible audio, and acoustic score of ``audio``'s alignment."""
    spoken = [p for p in aligned.phones if p.symbol != SILENCE]
    speech = sum(p.end - p.start for p in spoken)
    frames = np.asarray(audio[: len(audio) // HOP * HOP], np.float64).reshape(-1, HOP)
    level = 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    # Relative to the clip's own loud frames, so the level of the recording does not matter; a quiet
    # room's silence falls far below and counts neither way.
    audible = level > np.percentile(level, 95) - AUDIBLE_DB if len(level) else level > 0
    inside = np.zeros(len(level), bool)
    for phone in spoken:
        inside[round(phone.start * 100) : round(phone.end * 100)] = True
    coverage = float(np.sum(audible & inside) / max(int(np.sum(audible)), 1))
    return Measures(len(spoken), len(spoken) / max(speech, 1e-9), coverage, aligned.score)


def judge(measures: Measures, gate: Gate) -> tuple[str, str] | None:
    """``(reason, detail)`` when the clip fails the gate, None when it passes."""
    if not gate.min_rate <= measures.rate <= gate.max_rate:
        return "rate", f"{measures.rate:.1f} phones/s outside {gate.min_rate:g}-{gate.max_rate:g}"
    if measures.coverage < gate.min_coverage:
        return "rate", (
            f"phones cover {measures.coverage:.0%} of the audible audio (< {gate.min_coverage:.0%}): "
            "speech the transcript lacks?"
        )
    if measures.score < gate.min_score:
        return "score", f"acoustic score {measures.score:.1f}/frame < {gate.min_score:g}"
    return None


@dataclass(frozen=True)
class ReportRow:
    """One line of ``label_report.tsv``."""

    id: str
    status: str  # WRITTEN or REJECTED
    reason: str  # one of REASONS, "" when written
    detail: str


def read_report(root: Path) -> dict[str, ReportRow]:
    """The rows of ``root/label_report.tsv`` by id; empty when there is none yet."""
    path = Path(root) / REPORT_FILE
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    if not rows or tuple(rows[0]) != REPORT_COLUMNS:
        raise ValueError(f"{path}: not a label report (expected the header {' '.join(REPORT_COLUMNS)})")
    return {row[0]: ReportRow(*row) for row in rows[1:] if len(row) == len(REPORT_COLUMNS)}


def write_report(root: Path, rows: Mapping[str, ReportRow]) -> Path:
    """Write ``rows`` (sorted by id) to ``root/label_report.tsv`` atomically; returns its path."""
    text = io.StringIO()
    writer = csv.writer(text, delimiter="\t", lineterminator="\n")
    writer.writerow(REPORT_COLUMNS)
    for key in sorted(rows):
        row = rows[key]
        writer.writerow((row.id, row.status, row.reason, " ".join(row.detail.split())))
    path = Path(root) / REPORT_FILE
    atomic_write_text(path, text.getvalue())
    return path
