"""The dataset on disk: one layout for every source (synthetic, Live Link Face, any rig).

::

    DIR/names.txt          the K curve names, one per line, in column order
    DIR/audio/<id>.wav     16 kHz mono PCM_16
    DIR/curves/<id>.npy    float32 (frames, K) at the utterance's fps, frame i at time i / fps
    DIR/meta/<id>.json     one utterance's record, written last: its presence means the utterance is complete
    DIR/manifest.jsonl     all records, one JSON object per line, sorted by id (rebuilt by build_manifest)
    DIR/mel/<id>.npy       cached log-mel (T, 80) float32, made on first use

Every file is written to a temporary name in its own directory and then ``os.replace``-d into place, so a
killed writer leaves either the old file or the new one, never half of one. Because ``meta/<id>.json`` is
written after the audio and curves, an utterance without its meta file is simply not part of the dataset.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from audio2blendshape.atomic import atomic_save_npy, atomic_write_text, atomic_write_wav
from audio2blendshape.audio.constants import FRAMES_PER_SECOND, SAMPLE_RATE
from audio2blendshape.audio.decode import AudioError, load_audio, prepare_waveform
from audio2blendshape.audio.mel import log_mel
from audio2blendshape.data.visemes import PhonemeSpan

SPLITS: tuple[str, ...] = ("train", "val", "test")
NAMES_FILE = "names.txt"
MANIFEST_FILE = "manifest.jsonl"
RANGE_TOLERANCE = 0.01  # solvers overshoot [0, 1] by a hair; such values are clipped, larger ones rejected
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class CorpusError(ValueError):
    """A dataset (or data for one) that breaks the layout; the message names the file and what is wrong."""


# ---------------------------------------------------------------------------------------------- validation


def check_id(utt_id: str) -> None:
    """Ids become file names, so only letters, digits, ``_``, ``-`` and ``.`` (not first) are allowed."""
    if not isinstance(utt_id, str) or not _ID_PATTERN.match(utt_id):
        raise CorpusError(
            f"utterance id {utt_id!r} is not usable as a file name "
            "(use letters, digits, '_', '-', '.', starting with a letter or digit)"
        )


def check_curves(curves: np.ndarray, names: Sequence[str], source: str) -> np.ndarray:
    """Validate curves ``(frames, K)`` against ``names``; returns float32 clipped to [0, 1].

    Values within ``RANGE_TOLERANCE`` outside [0, 1] are clipped; anything further out, NaN or infinite is
    an error naming the frame and the column.
    """
    curves = np.asarray(curves)
    if curves.ndim != 2:
        raise CorpusError(f"{source}: curves must have shape (frames, K), got {curves.shape}")
    if curves.shape[1] != len(names):
        raise CorpusError(f"{source}: curves have {curves.shape[1]} columns but there are {len(names)} names")
    if curves.shape[0] == 0:
        raise CorpusError(f"{source}: curves hold no frames")
    curves = curves.astype(np.float32, copy=False)
    bad = ~np.isfinite(curves)
    if bad.any():
        frame, column = (int(v) for v in np.argwhere(bad)[0])
        raise CorpusError(
            f"{source}: {int(bad.sum())} curve values are NaN or infinite "
            f"(first at frame {frame}, column {names[column]!r})"
        )
    out = (curves < -RANGE_TOLERANCE) | (curves > 1.0 + RANGE_TOLERANCE)
    if out.any():
        frame, column = (int(v) for v in np.argwhere(out)[0])
        raise CorpusError(
            f"{source}: {int(out.sum())} curve values are outside [0, 1] "
            f"(first at frame {frame}, column {names[column]!r}: {float(curves[frame, column]):.4f})"
        )
    return np.clip(curves, 0.0, 1.0)


def check_lengths(num_samples: int, frames: int, fps: float, source: str) -> None:
    """Audio of ``num_samples`` at 16 kHz and ``frames`` curve frames at ``fps`` must agree within a frame."""
    duration = num_samples / SAMPLE_RATE
    expected = duration * fps
    if abs(frames - expected) > 1.0 + 1e-6:
        raise CorpusError(
            f"{source}: audio lasts {duration:.3f} s ({expected:.1f} frames at {fps:g} fps) but the curves "
            f"have {frames} frames ({frames / fps:.3f} s); they differ by more than one frame"
        )


def check_names(names: Sequence[str], source: str) -> tuple[str, ...]:
    """Curve names must be non-empty, without newlines, and unique (case-insensitively)."""
    clean = tuple(str(n) for n in names)
    if not clean:
        raise CorpusError(f"{source}: no curve names")
    seen: set[str] = set()
    for name in clean:
        if not name.strip() or "\n" in name or name != name.strip():
            raise CorpusError(f"{source}: curve name {name!r} is empty or has surrounding whitespace")
        if name.lower() in seen:
            raise CorpusError(f"{source}: curve name {name!r} appears twice")
        seen.add(name.lower())
    return clean


def _phoneme_rows(phonemes: Sequence[PhonemeSpan], duration: float, source: str) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for i, span in enumerate(phonemes):
        start, end = float(span.start), float(span.end)
        if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end < start:
            raise CorpusError(f"{source}: phoneme {i} ({span.symbol!r}) has a bad span {start}..{end} s")
        if end > duration + 0.05:  # aligners round to 10 ms frames, so allow a little overhang
            raise CorpusError(
                f"{source}: phoneme {i} ({span.symbol!r}) ends at {end:.3f} s, "
                f"after the end of the audio ({duration:.3f} s)"
            )
        rows.append([round(start, 6), round(end, 6), str(span.symbol)])
    return rows


def record_phonemes(record: dict[str, Any]) -> list[PhonemeSpan] | None:
    """A manifest record's phoneme timing as spans, or None where it has none. Raises TypeError or
    ValueError on rows that are not ``[start, end, symbol]``."""
    rows = record.get("phonemes")
    return None if rows is None else [PhonemeSpan(float(s), float(e), str(p)) for s, e, p in rows]


def _check_labels(where: str, fps: float, language: str, speaker: str, split: str) -> None:
    if split not in SPLITS:
        raise CorpusError(f"{where}: split {split!r} is not one of {', '.join(SPLITS)}")
    for field, value in (("language", language), ("speaker", speaker)):
        if not isinstance(value, str) or not value.strip():
            raise CorpusError(f"{where}: {field} must be a non-empty string, got {value!r}")
    if not (isinstance(fps, numbers.Real) and math.isfinite(fps) and fps > 0):
        raise CorpusError(f"{where}: fps must be a positive number, got {fps!r}")


# ---------------------------------------------------------------------------------------------- names.txt


def read_names(root: Path) -> tuple[str, ...]:
    """The K curve names of the dataset at ``root``, in column order."""
    path = Path(root) / NAMES_FILE
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise CorpusError(f"{path}: cannot read the curve names ({error.strerror})") from error
    names = tuple(line.strip() for line in lines if line.strip())
    return check_names(names, str(path))


def ensure_names(root: Path, names: Sequence[str]) -> tuple[str, ...]:
    """Create ``names.txt`` with ``names``, or check the existing one lists exactly these, in this order."""
    path = Path(root) / NAMES_FILE
    names = check_names(names, str(path))
    if path.exists():
        existing = read_names(root)
        if existing != names:
            diff = next(
                (i for i, (a, b) in enumerate(zip(existing, names, strict=False)) if a != b),
                min(len(existing), len(names)),
            )
            raise CorpusError(
                f"{path}: the dataset's {len(existing)} curve names differ from the {len(names)} given "
                f"(first difference at column {diff}: "
                f"{existing[diff] if diff < len(existing) else '<none>'!r} vs "
                f"{names[diff] if diff < len(names) else '<none>'!r}); one dataset holds one rig"
            )
        return existing
    atomic_write_text(path, "".join(f"{n}\n" for n in names))
    return names


# ---------------------------------------------------------------------------------------------- utterances


def write_utterance(
    root: Path,
    utt_id: str,
    audio: np.ndarray,
    curves: np.ndarray,
    names: Sequence[str],
    fps: float,
    *,
    language: str,
    speaker: str,
    split: str,
    text: str | None = None,
    phonemes: Sequence[PhonemeSpan] | None = None,
    source: str = "",
    audio_rate: int = SAMPLE_RATE,
) -> dict[str, Any]:
    """Validate and write one utterance; returns its record (also written to ``meta/<id>.json``).

    ``audio``: float samples ``(n,)`` (or ``(n, channels)``) at ``audio_rate`` (resampled to 16 kHz).
    ``curves``: ``(frames, K)`` weights at ``fps``, columns named by ``names``. Files are written
    atomically, meta last; rewriting an existing id removes its meta first so a crash leaves no stale record.
    """
    root = Path(root)
    check_id(utt_id)
    where = f"utterance {utt_id!r}" + (f" (from {source})" if source else "")
    _check_labels(where, fps, language, speaker, split)
    try:
        samples = prepare_waveform(np.asarray(audio), audio_rate, where)
    except AudioError as error:
        raise CorpusError(str(error)) from error
    clean = check_curves(curves, names, where)
    check_lengths(samples.shape[0], clean.shape[0], float(fps), where)
    duration = samples.shape[0] / SAMPLE_RATE
    record: dict[str, Any] = {
        "id": utt_id,
        "audio": f"audio/{utt_id}.wav",
        "curves": f"curves/{utt_id}.npy",
        "fps": float(fps),
        "frames": int(clean.shape[0]),
        "duration": round(duration, 6),
        "language": language,
        "speaker": speaker,
        "split": split,
        "text": text,
        "phonemes": None if phonemes is None else _phoneme_rows(phonemes, duration, where),
        "source": source,
    }
    ensure_names(root, names)
    meta = root / "meta" / f"{utt_id}.json"
    meta.unlink(missing_ok=True)
    # A stale cached log-mel would otherwise pair with the new audio.
    (root / "mel" / f"{utt_id}.npy").unlink(missing_ok=True)
    atomic_write_wav(root / record["audio"], samples)
    atomic_save_npy(root / record["curves"], np.ascontiguousarray(clean))
    atomic_write_text(meta, json.dumps(record, ensure_ascii=False) + "\n")
    return record


def has_utterance(root: Path, utt_id: str) -> bool:
    """True when ``utt_id`` is completely written (its meta file exists)."""
    return (Path(root) / "meta" / f"{utt_id}.json").is_file()


def _read_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CorpusError(f"{path}: not a readable JSON record ({error})") from error
    if not isinstance(record, dict) or "id" not in record:
        raise CorpusError(f"{path}: a record must be a JSON object with an 'id'")
    return record


def build_manifest(root: Path) -> list[dict[str, Any]]:
    """Collect ``meta/*.json`` into ``manifest.jsonl`` (sorted by id, atomically); returns the records."""
    root = Path(root)
    meta_dir = root / "meta"
    paths = (
        sorted(p for p in meta_dir.glob("*.json") if not p.name.startswith(".")) if meta_dir.is_dir() else []
    )
    records = [_read_record(p) for p in paths]
    for path, record in zip(paths, records, strict=True):
        if record["id"] != path.stem:
            raise CorpusError(f"{path}: the record's id {record['id']!r} does not match its file name")
    records.sort(key=lambda r: str(r["id"]))
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    atomic_write_text(root / MANIFEST_FILE, text)
    return records


def read_manifest(root: Path) -> list[dict[str, Any]]:
    """The records of ``manifest.jsonl``, in file order (sorted by id)."""
    path = Path(root) / MANIFEST_FILE
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as error:
        raise CorpusError(
            f"{path}: no manifest; is {root} a dataset? (build_manifest / 'data import' write it)"
        ) from error
    except OSError as error:
        raise CorpusError(f"{path}: cannot read the manifest ({error.strerror})") from error
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise CorpusError(f"{path}, line {number}: not valid JSON ({error.msg})") from error
        if not isinstance(record, dict) or "id" not in record:
            raise CorpusError(f"{path}, line {number}: a record must be a JSON object with an 'id'")
        records.append(record)
    return records


# ---------------------------------------------------------------------------------------------- reading


def resample_curves(
    curves: np.ndarray, fps: float, frames: int, rate: float = FRAMES_PER_SECOND
) -> np.ndarray:
    """Curves ``(F, K)`` at ``fps`` -> ``(frames, K)`` at ``rate``.

    Output row ``j`` is the linear interpolation at time ``j / rate`` of input rows at times ``i / fps``;
    times past the last input frame hold its value (the audio may outlast the curves by under a frame).
    """
    if curves.ndim != 2 or curves.shape[0] == 0:
        raise ValueError(f"curves must have shape (F, K) with F > 0, got {curves.shape}")
    position = np.arange(frames, dtype=np.float64) * (fps / rate)
    last = curves.shape[0] - 1
    lower = np.minimum(np.floor(position).astype(np.int64), last)
    upper = np.minimum(lower + 1, last)
    weight = np.clip(position - lower, 0.0, 1.0)[:, None]
    out = curves[lower] * (1.0 - weight) + curves[upper] * weight
    return out.astype(np.float32)


def load_curves(root: Path, record: dict[str, Any]) -> np.ndarray:
    """The utterance's curves, float32 ``(frames, K)`` at ``record['fps']``."""
    path = Path(root) / record["curves"]
    try:
        curves = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise CorpusError(f"{path}: cannot read the curves ({error})") from error
    if curves.ndim != 2:
        raise CorpusError(f"{path}: curves must have shape (frames, K), got {curves.shape}")
    return np.asarray(curves, dtype=np.float32)


def load_utterance_audio(root: Path, record: dict[str, Any]) -> np.ndarray:
    """The utterance's audio, float32 ``(n,)`` at 16 kHz."""
    try:
        return load_audio(Path(root) / record["audio"])
    except AudioError as error:
        raise CorpusError(str(error)) from error


def load_mel(root: Path, record: dict[str, Any]) -> np.ndarray:
    """Log-mel ``(T, 80)`` float32 of the utterance, from ``mel/<id>.npy`` or computed and cached."""
    path = Path(root) / "mel" / f"{record['id']}.npy"
    if path.is_file():
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.ndim == 2:
                return np.asarray(cached, dtype=np.float32)
        except (OSError, ValueError):
            pass  # a damaged cache is recomputed below rather than failing training
    mel = log_mel(load_utterance_audio(root, record))
    # A read-only dataset still trains; it just recomputes the features each time.
    with contextlib.suppress(OSError):
        atomic_save_npy(path, mel)
    return mel
