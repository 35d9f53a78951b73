"""``data label``: transcribed English speech -> forced alignment -> labelled ARKit curves in a dataset.

One clip (``AUDIO --text "..."``) or a list (``--transcripts FILE``: lines ``path<TAB>text`` or
``path<TAB>text<TAB>speaker``, paths relative to FILE, ``#`` comments and blank lines ignored). Each clip is
aligned with pocketsphinx (``align.py``), labelled by ``labels.label_utterance`` and written with
``corpus.write_utterance`` (language ``en-us``); the manifest is rebuilt at the end, also after an error,
so the utterances already written are usable.

Every transcript is checked against the dictionary before any audio is read, so one run reports all
missing words at once instead of failing hours in.
"""

from __future__ import annotations

import re
import sys
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audio2blendshape.data.align import Aligner, AlignmentError, OutOfVocabularyError
from audio2blendshape.audio.decode import AudioError, load_audio, require_signal
from audio2blendshape.data.corpus import SPLITS, CorpusError, build_manifest, has_utterance, write_utterance
from audio2blendshape.data.labels import label_utterance
from audio2blendshape.names import ARKIT_NAMES

LANGUAGE = "en-us"  # the only language pocketsphinx's bundled model speaks
MAX_LISTED = 20  # transcript lines named in one out-of-vocabulary error; the rest are counted


class LabelError(ValueError):
    """A transcript list or option that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Transcribed:
    """One clip to label."""

    audio: Path
    text: str
    utt_id: str  # dataset id (file name stem of its audio, curves and meta)
    speaker: str
    where: str  # how errors name it: "list.tsv:12 (a.wav)" or the audio path


@dataclass
class LabelSummary:
    """What a labelling run did."""

    written: list[str] = field(default_factory=list)  # utterance ids
    seconds: float = 0.0  # audio written
    skipped_oov: list[str] = field(default_factory=list)  # where-strings of dropped clips
    skipped_failed: list[str] = field(default_factory=list)
    skipped_existing: list[str] = field(default_factory=list)


def utterance_id(relative: Path) -> str:
    """A dataset id from an audio path: its folders and stem joined by ``_``, unsafe characters as ``_``."""
    parts = [p for p in relative.with_suffix("").parts if p not in ("..", ".", relative.anchor)]
    if relative.is_absolute():
        parts = parts[-1:]  # an absolute path's folders say where the disk is, not what the clip is
    name = re.sub(r"[^A-Za-z0-9_.\-]+", "_", "_".join(parts)).lstrip("_.-")
    return name or "utt"


def read_transcripts(path: Path, speaker: str | None = None) -> list[Transcribed]:
    """Parse a transcript list (``path<TAB>text[<TAB>speaker]`` per line) into clips to label.

    The default speaker is the list's file stem: one list is usually one speaker or one session.
    """
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise LabelError(f"{path}: cannot read the transcript list ({error})") from error
    items: list[Transcribed] = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.rstrip("\r").split("\t")
        where = f"{path}:{number}"
        if len(fields) not in (2, 3):
            raise LabelError(
                f"{where}: expected 'audio path<TAB>text' (optionally '<TAB>speaker'), got {len(fields)} "
                f"tab-separated field(s): {line[:80]!r}"
            )
        relative = Path(fields[0].strip())
        text = fields[1].strip()
        if not fields[0].strip():
            raise LabelError(f"{where}: the audio path is empty")
        if not text:
            raise LabelError(f"{where} ({relative}): the transcript is empty")
        line_speaker = fields[2].strip() if len(fields) == 3 else ""
        items.append(
            Transcribed(
                audio=path.parent / relative,
                text=text,
                utt_id=utterance_id(relative),
                speaker=speaker or line_speaker or path.stem,
                where=f"{where} ({relative})",
            )
        )
    if not items:
        raise LabelError(f"{path}: the transcript list holds no lines")
    _check_unique(items)
    return items


def _check_unique(items: Sequence[Transcribed]) -> None:
    seen: dict[str, str] = {}
    for item in items:
        if item.utt_id in seen:
            raise LabelError(
                f"{item.where} and {seen[item.utt_id]} both become utterance id {item.utt_id!r}; "
                "rename one of the audio files"
            )
        seen[item.utt_id] = item.where


def check_vocabulary(aligner: Aligner, items: Sequence[Transcribed]) -> dict[str, tuple[str, ...]]:
    """The words each transcript lacks in the dictionary, by ``where``; clips it covers are absent."""
    gaps: dict[str, tuple[str, ...]] = {}
    for item in items:
        try:
            aligner.words(item.text, item.where)
        except OutOfVocabularyError as error:
            gaps[item.where] = error.words
    return gaps


class VocabularyError(LabelError):
    """Transcripts with words the dictionary lacks; ``gaps`` maps each clip to its missing words."""

    def __init__(self, gaps: dict[str, tuple[str, ...]]) -> None:
        self.gaps = gaps
        words = sorted({w for missing in gaps.values() for w in missing})
        lines = [f"  {where}: {', '.join(repr(w) for w in missing)}" for where, missing in gaps.items()]
        if len(lines) > MAX_LISTED:
            lines[MAX_LISTED:] = [f"  ... and {len(lines) - MAX_LISTED} more"]
        super().__init__(
            f"{len(gaps)} transcript(s) use {len(words)} word(s) the pronunciation dictionary lacks: "
            f"{', '.join(repr(w) for w in words[:50])}{' ...' if len(words) > 50 else ''}\n"
            + "\n".join(lines)
            + "\nSpell numbers and symbols out, add pronunciations with --dict FILE "
            "(lines 'word PH1 PH2 ...'), or drop these utterances with --skip-oov"
        )


def label_one(
    aligner: Aligner, item: Transcribed, out: Path, split: str, fps: float, seed: int
) -> dict[str, Any]:
    """Load, align, label and write one clip; returns its dataset record."""
    audio = load_audio(item.audio)
    require_signal(audio, str(item.audio))
    spans = aligner.align(audio, item.text, item.where)
    # A per-id seed varies the labeler's style between utterances yet gives the same curves on a rerun.
    curves = label_utterance(audio, spans, fps=fps, seed=(seed + zlib.crc32(item.utt_id.encode())) % 2**31)
    return write_utterance(
        out,
        item.utt_id,
        audio,
        curves,
        ARKIT_NAMES,
        fps,
        language=LANGUAGE,
        speaker=item.speaker,
        split=split,
        text=item.text,
        phonemes=spans,
        source=str(item.audio),
    )


def label_corpus(
    items: Sequence[Transcribed],
    out: Path,
    *,
    aligner: Aligner | None = None,
    split: str = "train",
    fps: float = 100.0,
    seed: int = 0,
    skip_oov: bool = False,
    skip_failed: bool = False,
    skip_existing: bool = False,
    log: Callable[[str], None] = print,
) -> LabelSummary:
    """Align, label and write ``items`` into the dataset at ``out``; rebuilds its manifest at the end.

    Raises ``VocabularyError`` (before any audio is read) unless ``skip_oov``, and the first clip's
    ``AudioError`` / ``AlignmentError`` / ``CorpusError`` unless ``skip_failed``; skipped clips are
    warned about on stderr and listed in the summary.
    """
    if split not in SPLITS:
        raise LabelError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    aligner = aligner or Aligner()
    summary = LabelSummary()
    gaps = check_vocabulary(aligner, items)
    if gaps and not skip_oov:
        raise VocabularyError(gaps)
    for where, missing in gaps.items():
        summary.skipped_oov.append(where)
        _warn(f"{where}: skipped, words not in the dictionary: {', '.join(repr(w) for w in missing)}")
    kept = [item for item in items if item.where not in gaps]
    absent = [item for item in kept if not item.audio.is_file()]
    if absent and not skip_failed:
        listed = "\n".join(f"  {item.where}: no such file {item.audio}" for item in absent[:MAX_LISTED])
        more = f"\n  ... and {len(absent) - MAX_LISTED} more" if len(absent) > MAX_LISTED else ""
        raise LabelError(f"{len(absent)} audio file(s) do not exist:\n{listed}{more}")
    try:
        for index, item in enumerate(kept, 1):
            if skip_existing and has_utterance(out, item.utt_id):
                summary.skipped_existing.append(item.where)
                continue
            try:
                record = label_one(aligner, item, out, split, fps, seed)
            except (AudioError, AlignmentError, CorpusError) as error:
                if not skip_failed:
                    raise
                summary.skipped_failed.append(item.where)
                _warn(f"skipped: {error}")
                continue
            summary.written.append(item.utt_id)
            summary.seconds += float(record["duration"])
            phones = len(record["phonemes"])
            log(f"[{index}/{len(kept)}] {item.utt_id}: {record['duration']:.2f} s, {phones} phones")
    finally:
        if out.is_dir():
            build_manifest(out)
    return summary


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)
