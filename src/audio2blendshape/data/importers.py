"""``data import``: bring Live Link Face CSV takes and any-rig curve arrays into the corpus layout.

An import is all-or-nothing for bad input and safe against a kill: every utterance is first written into a
staging directory beside the target (``.DIR.import-XXXX``); only when all of them are written is the stage
renamed to the target (a new dataset) or merged into it utterance by utterance (an existing one), each
utterance's meta file moved last, and the manifest rebuilt. A failed import removes its stage; a killed one
leaves the target as it was, or (if killed mid-merge) with only complete utterances.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audio2blendshape.atomic import FILE_UMASK
from audio2blendshape.audio.constants import SAMPLE_RATE
from audio2blendshape.audio.decode import load_audio, require_signal
from audio2blendshape.data.corpus import (
    NAMES_FILE,
    SPLITS,
    build_manifest,
    check_names,
    has_utterance,
    read_names,
    write_utterance,
)
from audio2blendshape.runtime.livelink_csv import parse_timecode, read_livelink_csv

Loaded = tuple[np.ndarray, np.ndarray, float]  # audio (n,) at 16 kHz, curves (frames, K), fps


class DataImportError(ValueError):
    """Import input that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Pending:
    """One utterance to import: its id, where it comes from, and how to load it."""

    utt_id: str
    stem: str  # the source file's stem, which --val/--test may name
    source: str  # the input files, for messages and the record
    load: Callable[[], Loaded]


def make_id(stem: str, prefix: str = "") -> str:
    """A corpus id from a file stem: characters a file name cannot safely hold become ``_``."""
    clean = re.sub(r"[^A-Za-z0-9_.\-]", "_", prefix + stem).lstrip("._-")
    if not clean:
        raise DataImportError(f"cannot make an utterance id from {prefix + stem!r}")
    return clean


def assign_splits(
    pending: Sequence[Pending], default: str, val: Sequence[str] = (), test: Sequence[str] = ()
) -> dict[str, str]:
    """Split of every utterance id: ``val``/``test`` name files by stem or id, the rest get ``default``."""
    if default not in SPLITS:
        raise DataImportError(f"--split {default!r} is not one of {', '.join(SPLITS)}")
    splits = {p.utt_id: default for p in pending}
    for split, wanted in (("val", val), ("test", test)):
        for name in wanted:
            hits = [p.utt_id for p in pending if Path(name).stem in (p.stem, p.utt_id) or name == p.utt_id]
            if not hits:
                raise DataImportError(f"--{split} {name!r} matches none of the files being imported")
            for utt_id in hits:
                if splits[utt_id] != default and splits[utt_id] != split:
                    raise DataImportError(f"{name!r} is named for both --val and --test")
                splits[utt_id] = split
    return splits


def _preflight(out: Path, names: Sequence[str], pending: Sequence[Pending], replace: bool) -> None:
    if out.exists() and not out.is_dir():
        raise DataImportError(f"{out}: exists and is not a directory")
    ids = [p.utt_id for p in pending]
    if not ids:
        raise DataImportError("nothing to import")
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise DataImportError(f"two inputs would get the same utterance id: {', '.join(dupes)}")
    if (out / NAMES_FILE).exists() and read_names(out) != tuple(names):
        raise DataImportError(
            f"{out / NAMES_FILE}: the dataset holds a different rig ({len(read_names(out))} curves) "
            f"from the one imported ({len(names)} curves); import into another directory"
        )
    existing = [i for i in ids if has_utterance(out, i)]
    if existing and not replace:
        shown = ", ".join(existing[:5]) + (" ..." if len(existing) > 5 else "")
        raise DataImportError(f"{out}: already holds {len(existing)} of these ids ({shown}); pass --replace")


def _merge(stage: Path, out: Path, records: list[dict[str, Any]]) -> None:
    """Move staged utterances into an existing dataset, meta last for each."""
    out.mkdir(parents=True, exist_ok=True)
    if not (out / NAMES_FILE).exists():
        os.replace(stage / NAMES_FILE, out / NAMES_FILE)
    for record in records:
        utt_id = record["id"]
        (out / "meta" / f"{utt_id}.json").unlink(missing_ok=True)
        (out / "mel" / f"{utt_id}.npy").unlink(missing_ok=True)
        for rel in (record["audio"], record["curves"], f"meta/{utt_id}.json"):
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage / rel, out / rel)


def run_import(
    out: Path,
    names: Sequence[str],
    pending: Sequence[Pending],
    splits: dict[str, str],
    *,
    language: str,
    speaker: str,
    replace: bool = False,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Load, validate and write ``pending`` into the dataset at ``out``; returns the new records."""
    out = Path(out)
    names = check_names(names, "the imported rig")
    _preflight(out, names, pending, replace)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.import-", dir=out.parent))
    os.chmod(stage, 0o777 & ~FILE_UMASK)  # mkdtemp's private 0700 would become the dataset's mode
    try:
        records = []
        for item in pending:
            audio, curves, fps = item.load()
            records.append(
                write_utterance(
                    stage, item.utt_id, audio, curves, names, fps, language=language, speaker=speaker,
                    split=splits[item.utt_id], source=item.source,
                )
            )  # fmt: skip
            if progress is not None:
                progress(f"{item.utt_id}: {records[-1]['duration']:.1f} s, {records[-1]['frames']} frames")
        if not out.exists() or (out.is_dir() and not any(out.iterdir())):
            build_manifest(stage)
            os.rename(stage, out)  # one atomic step: the dataset appears complete or not at all
        else:
            _merge(stage, out, records)
            build_manifest(out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return records


# ---------------------------------------------------------------------------------------------- loaders


def _load_wav(path: Path) -> np.ndarray:
    samples = load_audio(path)
    require_signal(samples, str(path))
    return samples


def _check_pair(
    audio: np.ndarray, frames: int, fps: float, curves_file: Path, audio_file: Path, hint: str = ""
) -> None:
    seconds = audio.shape[0] / SAMPLE_RATE
    if abs(frames - seconds * fps) > 1.0 + 1e-6:
        raise DataImportError(
            f"{audio_file} lasts {seconds:.3f} s but {curves_file} has {frames} frames at {fps:g} fps "
            f"({frames / fps:.3f} s): they differ by more than one frame{hint}"
        )


def rig_loader(curves_file: Path, audio_file: Path, width: int, fps: float) -> Callable[[], Loaded]:
    """Loader for a ``(frames, K)`` ``.npy`` and its audio; checks K and the lengths."""

    def load() -> Loaded:
        try:
            curves = np.load(curves_file, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise DataImportError(f"{curves_file}: cannot read the curves ({error})") from error
        if curves.ndim != 2 or curves.shape[1] != width:
            raise DataImportError(
                f"{curves_file}: curves have shape {curves.shape}, expected (frames, {width}) for the names"
            )
        audio = _load_wav(audio_file)
        _check_pair(audio, curves.shape[0], fps, curves_file, audio_file)
        return audio, curves, fps

    return load


def livelink_loader(
    csv_file: Path, audio_file: Path, fps: float | None, audio_start: str | None, trim: bool
) -> Callable[[], Loaded]:
    """Loader for a Live Link Face CSV and its audio (time zero: ``audio_start`` or the first row)."""

    def load() -> Loaded:
        take = read_livelink_csv(csv_file, fps)
        audio = _load_wav(audio_file)
        curves = take.curves
        if audio_start is not None:
            whole, frame = parse_timecode(audio_start, take.fps, "--audio-start")
            offset = take.start - (whole + frame / take.fps)  # seconds of audio before the first CSV row
            if offset >= 0:
                audio = audio[round(offset * SAMPLE_RATE) :]
            else:
                curves = curves[round(-offset * take.fps) :]
            if audio.shape[0] == 0 or curves.shape[0] == 0:
                raise DataImportError(
                    f"{csv_file}: with --audio-start {audio_start} audio and CSV do not overlap"
                )
        if trim:
            frames = min(curves.shape[0], int(audio.shape[0] * take.fps / SAMPLE_RATE))
            curves = curves[:frames]
            audio = audio[: round(frames * SAMPLE_RATE / take.fps)]
        hint = "; --trim cuts both to the overlap, --audio-start sets the audio's start timecode"
        _check_pair(audio, curves.shape[0], take.fps, csv_file, audio_file, "" if trim else hint)
        return audio, curves, take.fps

    return load


# ---------------------------------------------------------------------------------------------- command line
