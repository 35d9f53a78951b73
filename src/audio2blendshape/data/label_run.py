"""``data label`` over a corpus: the quality gate, worker processes, resuming, and the report.

Per clip: the language and dictionary checks run in the parent before any audio is read; then a worker
loads the audio, aligns it (``align.py``), measures and judges the alignment (``label_gate.py``), and
labels and writes it (``transcribed.write_labelled``). Workers write only their own utterances, by id,
and ``corpus.write_utterance`` is atomic per utterance, so they never race; the parent alone writes the
report and the manifest.

A rerun resumes: clips already in the dataset are skipped (``corpus.has_utterance``), and so are clips an
earlier run rejected (``label_report.tsv``) unless ``retry_rejected``.

Without a gate (``LabelOptions.gate=None``) every clip that aligns is written, and one that cannot be
labelled stops the run (unknown words before any audio is read) unless ``skip_oov`` / ``skip_failed``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from audio2blendshape.audio.decode import AudioError, load_audio, require_signal
from audio2blendshape.data.align import Aligner, AlignmentError, OutOfVocabularyError
from audio2blendshape.data.corpus import SPLITS, CorpusError, build_manifest, has_utterance
from audio2blendshape.data.label_gate import (
    REJECTED,
    WRITTEN,
    Gate,
    ReportRow,
    is_english,
    judge,
    measure,
    read_report,
    write_report,
)
from audio2blendshape.data.transcribed import (
    MAX_LISTED,
    LabelError,
    Transcribed,
    VocabularyError,
    write_labelled,
)
from audio2blendshape.data.workers import unordered_map

REPORT_EVERY = 50  # outcomes between report writes, so a killed run keeps most of its verdicts
HARD_REASONS = ("oov", "unreadable", "alignment")  # a clip that cannot be labelled at all


@dataclass(frozen=True)
class LabelOptions:
    """How ``label_transcribed`` labels."""

    fps: float = 100.0  # curve frame rate
    seed: int = 0  # seeds the labeler's per-utterance style
    gate: Gate | None = field(default_factory=Gate)  # None: no quality check (see the module docstring)
    skip_oov: bool = False  # without a gate: drop clips with unknown words instead of failing
    skip_failed: bool = False  # without a gate: drop unreadable or unalignable clips instead of failing
    retry_rejected: bool = False  # try again the clips an earlier run rejected
    workers: int = 1  # processes (one aligner each)
    dictionary: Path | None = None  # extra pronunciations (CMUdict lines)
    letter_to_sound: bool = True  # words no dictionary knows get eSpeak NG's pronunciation (else: oov)


@dataclass
class LabelSummary:
    """What a labelling run did."""

    written: list[str] = field(default_factory=list)  # utterance ids written by this run
    seconds: dict[str, float] = field(default_factory=dict)  # audio written by this run, per split
    rejected: dict[str, list[str]] = field(default_factory=dict)  # reason -> ids rejected by this run
    existing: list[str] = field(default_factory=list)  # already in the dataset, left alone
    kept_rejected: list[str] = field(default_factory=list)  # rejected by an earlier run, not retried
    other_split: list[str] = field(default_factory=list)  # existing ids in another split than asked
    dataset_seconds: dict[str, float] = field(default_factory=dict)  # the whole dataset afterwards
    report: Path | None = None  # the report file written
    wall_seconds: float = 0.0


@dataclass(frozen=True)
class _Job:
    item: Transcribed
    split: str
    out: Path
    options: LabelOptions


@dataclass(frozen=True)
class Outcome:
    """One clip's verdict."""

    utt_id: str
    split: str
    reason: str  # "" when written
    detail: str
    seconds: float = 0.0  # audio written

    def line(self) -> str:
        """How the progress log shows it."""
        if not self.reason:
            return f"{self.utt_id} ({self.split}): {self.detail}"
        return f"{self.utt_id}: rejected ({self.reason}): {self.detail}"


@lru_cache(maxsize=4)
def _aligner(dictionary: Path | None, letter_to_sound: bool = True) -> Aligner:
    # One per process: building one loads the model, and a decoder is not safe to share.
    return Aligner(dictionary, letter_to_sound=letter_to_sound)


def _screen(aligner: Aligner, item: Transcribed) -> tuple[str, str, tuple[str, ...]] | None:
    """``(reason, detail, missing words)`` for a clip rejected before its audio is read, else None."""
    if not is_english(item.language):
        return "language", f"language {item.language!r}: the aligner speaks English only", ()
    try:
        aligner.words(item.text, item.where)
    except OutOfVocabularyError as error:
        return "oov", "not in the dictionary: " + ", ".join(repr(w) for w in error.words), error.words
    except AlignmentError:
        return "empty", f"the transcript {item.text!r} holds no word", ()
    return None


def _existing_split(out: Path, utt_id: str) -> str | None:
    try:
        split = json.loads((out / "meta" / f"{utt_id}.json").read_text(encoding="utf-8")).get("split")
    except (OSError, ValueError, AttributeError):
        return None
    return split if isinstance(split, str) else None


def _plan(
    items: Sequence[Transcribed],
    out: Path,
    split_of: Callable[[Transcribed], str],
    options: LabelOptions,
    report: dict[str, ReportRow],
    summary: LabelSummary,
    log: Callable[[str], None],
) -> list[_Job]:
    """The clips to align, after resuming and the checks that need no audio; records what it drops."""
    aligner = _aligner(options.dictionary, options.letter_to_sound)
    jobs: list[_Job] = []
    gaps: dict[str, tuple[str, ...]] = {}
    for item in items:
        split = split_of(item)
        if split not in SPLITS:
            raise LabelError(f"{item.where}: split {split!r} is not one of {', '.join(SPLITS)}")
        if has_utterance(out, item.utt_id):
            summary.existing.append(item.utt_id)
            if _existing_split(out, item.utt_id) != split:
                summary.other_split.append(item.utt_id)
            report.setdefault(item.utt_id, ReportRow(item.utt_id, WRITTEN, "", "already in the dataset"))
            continue
        earlier = report.get(item.utt_id)
        if earlier is not None and earlier.status == REJECTED and not options.retry_rejected:
            summary.kept_rejected.append(item.utt_id)
            continue
        verdict = _screen(aligner, item)
        if verdict is not None and verdict[0] == "oov" and options.gate is None and not options.skip_oov:
            gaps[item.where] = verdict[2]
        elif verdict is not None:
            outcome = Outcome(item.utt_id, split, verdict[0], verdict[1])
            _record(outcome, report, summary)
            log(outcome.line())
        else:
            jobs.append(_Job(item, split, out, options))
    if gaps:
        raise VocabularyError(gaps)
    absent = [job.item for job in jobs if not job.item.audio.is_file()]
    if absent and options.gate is None and not options.skip_failed:
        listed = "\n".join(f"  {item.where}: no such file {item.audio}" for item in absent[:MAX_LISTED])
        more = f"\n  ... and {len(absent) - MAX_LISTED} more" if len(absent) > MAX_LISTED else ""
        raise LabelError(f"{len(absent)} audio file(s) do not exist:\n{listed}{more}")
    return jobs


def _work(job: _Job) -> Outcome:
    """Load, align, judge, label and write one clip (in a worker process)."""
    item, options = job.item, job.options
    try:
        audio = load_audio(item.audio)
        require_signal(audio, str(item.audio))
        aligner = _aligner(options.dictionary, options.letter_to_sound)
        aligned = aligner.align_scored(audio, item.text, item.where)
    except AudioError as error:
        return Outcome(item.utt_id, job.split, "unreadable", str(error))
    except OutOfVocabularyError as error:
        return Outcome(item.utt_id, job.split, "oov", str(error))
    except AlignmentError as error:
        return Outcome(item.utt_id, job.split, "alignment", str(error))
    measures = measure(audio, aligned)
    verdict = judge(measures, options.gate) if options.gate is not None else None
    if verdict is not None:
        return Outcome(item.utt_id, job.split, verdict[0], f"{verdict[1]}; {measures.describe()}")
    try:
        record = write_labelled(item, audio, aligned.phones, job.out, job.split, options.fps, options.seed)
    except CorpusError as error:
        return Outcome(item.utt_id, job.split, "unreadable", str(error))
    seconds = float(record["duration"])
    return Outcome(item.utt_id, job.split, "", f"{seconds:.2f} s, {measures.describe()}", seconds)


def _record(outcome: Outcome, report: dict[str, ReportRow], summary: LabelSummary) -> None:
    if outcome.reason:
        report[outcome.utt_id] = ReportRow(outcome.utt_id, REJECTED, outcome.reason, outcome.detail)
        summary.rejected.setdefault(outcome.reason, []).append(outcome.utt_id)
    else:
        report[outcome.utt_id] = ReportRow(outcome.utt_id, WRITTEN, "", f"{outcome.split}, {outcome.detail}")
        summary.written.append(outcome.utt_id)
        summary.seconds[outcome.split] = summary.seconds.get(outcome.split, 0.0) + outcome.seconds


def label_transcribed(
    items: Sequence[Transcribed],
    out: Path,
    split_of: Callable[[Transcribed], str] = lambda item: "train",
    options: LabelOptions | None = None,
    log: Callable[[str], None] = print,
) -> LabelSummary:
    """Label ``items`` into the dataset at ``out``; writes ``label_report.tsv`` and the manifest at the end.

    ``split_of`` gives each clip's split. Raises ``VocabularyError`` / ``LabelError`` only without a gate
    (see the module docstring); with one, every clip is written or rejected with a reason.
    """
    options = options or LabelOptions()
    started = time.perf_counter()
    out = Path(out)
    report = read_report(out)
    summary = LabelSummary()
    try:
        jobs = _plan(items, out, split_of, options, report, summary, log)
        for index, outcome in enumerate(unordered_map(_work, jobs, options.workers), 1):
            hard = outcome.reason in HARD_REASONS
            if hard and options.gate is None and not options.skip_failed:
                raise LabelError(outcome.detail)
            _record(outcome, report, summary)
            log(f"[{index}/{len(jobs)}] {outcome.line()}")
            if index % REPORT_EVERY == 0:
                write_report(out, report)
    finally:
        if report:  # also when every clip was rejected: the report is where the reasons are
            summary.report = write_report(out, report)
        if out.is_dir():
            for record in build_manifest(out):
                split = str(record.get("split"))
                summary.dataset_seconds[split] = summary.dataset_seconds.get(split, 0.0) + record["duration"]
        summary.wall_seconds = time.perf_counter() - started
    return summary
