"""``data label`` inputs: transcript lists and tables of English speech, and labelling one clip.

One clip (``AUDIO --text "..."``) or transcript files (``--transcripts FILE``), in one of two forms:

- a list: lines ``path<TAB>text`` or ``path<TAB>text<TAB>speaker``, paths relative to FILE, ``#`` comments
  and blank lines ignored; the speaker defaults to FILE's stem;
- a table: a header line naming at least the columns ``id`` and ``text`` (and optionally ``speaker`` and
  ``language``), tab-separated with CSV quoting (a text holding quotes is quoted, its quotes doubled); row
  ``id``'s audio is ``<id>.flac`` or ``<id>.wav`` beside FILE, and the speaker defaults to FILE's folder.

A clip is aligned with pocketsphinx (``align.py``), labelled by ``labels.label_utterance`` and written with
``corpus.write_utterance`` (language ``en-us``). Running a whole corpus, with its quality gate, workers and
report, is ``label_run.py``.
"""

from __future__ import annotations

import csv
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audio2blendshape.audio.constants import SAMPLE_RATE
from audio2blendshape.audio.decode import load_audio, require_signal
from audio2blendshape.data.align import Aligner
from audio2blendshape.data.corpus import write_utterance
from audio2blendshape.data.labels import label_utterance
from audio2blendshape.data.visemes import PhonemeSpan
from audio2blendshape.names import ARKIT_NAMES

LANGUAGE = "en-us"  # the only language pocketsphinx's bundled model speaks
# pocketsphinx's phone boundaries come early. Aligned against eSpeak speech whose phoneme timing is exact
# (57 English utterances of the generated test and validation voices), the mouth openness labelled from its
# spans leads the one labelled from the true spans by 9 ms (median; 6-13 ms interquartile), so aligned
# spans are moved this much later before labelling.
ALIGNER_LEAD_S = 0.009
MAX_LISTED = 20  # transcript lines named in one out-of-vocabulary error; the rest are counted
AUDIO_EXTENSIONS = (".flac", ".wav")  # tried in this order for a table row's id


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
    language: str = ""  # a table's language column; "" when the input does not say (taken as English)


def utterance_id(relative: Path) -> str:
    """A dataset id from an audio path: its folders and stem joined by ``_``, unsafe characters as ``_``."""
    parts = [p for p in relative.with_suffix("").parts if p not in ("..", ".", relative.anchor)]
    if relative.is_absolute():
        parts = parts[-1:]  # an absolute path's folders say where the disk is, not what the clip is
    name = re.sub(r"[^A-Za-z0-9_.\-]+", "_", "_".join(parts)).lstrip("_.-")
    return name or "utt"


def read_transcripts(path: Path, speaker: str | None = None) -> list[Transcribed]:
    """Parse a transcript list or table (see the module docstring) into clips to label.

    ``speaker``, when given, is every clip's speaker whatever the file says.
    """
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise LabelError(f"{path}: cannot read the transcript list ({error})") from error
    start = _table_start(lines)
    items = _read_list(path, lines, speaker) if start is None else _read_table(path, lines, start, speaker)
    if not items:
        raise LabelError(f"{path}: the transcript list holds no lines")
    check_unique(items)
    return items


def _table_start(lines: Sequence[str]) -> int | None:
    """The index of a table's header line, or None for a headerless list."""
    for index, line in enumerate(lines):
        if line.strip() and not line.lstrip().startswith("#"):
            columns = {c.strip().lower() for c in line.split("\t")}
            return index if {"id", "text"} <= columns else None
    return None


def is_table(path: Path) -> bool:
    """Whether ``path`` is a transcript table (a header naming ``id`` and ``text``), not a list."""
    try:
        return _table_start(path.read_text(encoding="utf-8-sig").splitlines()) is not None
    except (OSError, UnicodeDecodeError):
        return False


def _read_list(path: Path, lines: Sequence[str], speaker: str | None) -> list[Transcribed]:
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
    return items


def _table_rows(path: Path, lines: Sequence[str], start: int) -> Iterator[tuple[str, dict[str, str]]]:
    """``(where, {column: cell})`` for each row of a table whose header is ``lines[start]``."""
    # CSV quoting: a text with quotes in it is written quoted, its own quotes doubled (LJSpeech's
    # '"old style" letters' is '"...""old style"" letters."' in realspeech's tables).
    rows = csv.reader(lines[start:], delimiter="\t", strict=True)
    header = [name.strip().lower() for name in next(rows)]
    try:
        for row in rows:
            where = f"{path}:{start + rows.line_num}"
            if not any(cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
                continue
            if len(row) != len(header) or any("\n" in cell for cell in row):
                raise LabelError(
                    f"{where}: {len(row)} tab-separated field(s) but the header has {len(header)}, or a "
                    "field runs over several lines (a tab in a text, or an unclosed quote?)"
                )
            yield where, {name: cell.strip() for name, cell in zip(header, row, strict=True)}
    except csv.Error as error:
        raise LabelError(f"{path}:{start + rows.line_num}: {error} (an unclosed quote?)") from error


def _read_table(path: Path, lines: Sequence[str], start: int, speaker: str | None) -> list[Transcribed]:
    items: list[Transcribed] = []
    for where, row in _table_rows(path, lines, start):
        name = row["id"]
        if not name:
            raise LabelError(f"{where}: the id is empty")
        beside = [path.parent / f"{name}{extension}" for extension in AUDIO_EXTENSIONS]
        items.append(
            Transcribed(
                audio=next((p for p in beside if p.is_file()), beside[0]),
                text=row["text"],  # may be empty: the run rejects it, and the rest of the table is labelled
                utt_id=utterance_id(Path(name)),
                speaker=speaker or row.get("speaker", "") or path.parent.name,
                where=f"{where} ({name})",
                language=row.get("language", ""),
            )
        )
    return items


def check_unique(items: Sequence[Transcribed]) -> None:
    """Refuse two clips that would get the same utterance id."""
    seen: dict[str, str] = {}
    for item in items:
        if item.utt_id in seen:
            raise LabelError(
                f"{item.where} and {seen[item.utt_id]} both become utterance id {item.utt_id!r}; "
                "rename one of the audio files"
            )
        seen[item.utt_id] = item.where


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
    return write_labelled(item, audio, spans, out, split, fps, seed)


def delay_spans(spans: Sequence[PhonemeSpan], seconds: float, duration: float) -> list[PhonemeSpan]:
    """``spans`` moved ``seconds`` later; one starting at 0 keeps its start, none ends past ``duration``."""
    return [
        PhonemeSpan(s.start + seconds if s.start > 0 else 0.0, min(s.end + seconds, duration), s.symbol)
        for s in spans
    ]


def write_labelled(
    item: Transcribed,
    audio: np.ndarray,
    spans: Sequence[PhonemeSpan],
    out: Path,
    split: str,
    fps: float,
    seed: int,
) -> dict[str, Any]:
    """Label an aligned clip and write it into the dataset at ``out``; returns its record.

    The aligner's spans are first moved ``ALIGNER_LEAD_S`` later: its boundaries come early (see there).
    """
    spans = delay_spans(spans, ALIGNER_LEAD_S, len(audio) / SAMPLE_RATE)
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
