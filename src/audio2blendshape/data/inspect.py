"""``data stats`` (hours per language/speaker/split, how active each shape is) and ``data check``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from audio2blendshape.audio.constants import HOP_LENGTH, N_MELS
from audio2blendshape.data.corpus import (
    MANIFEST_FILE,
    SPLITS,
    CorpusError,
    check_id,
    load_curves,
    read_manifest,
    read_names,
)

ACTIVE_THRESHOLD = 0.1  # a shape counts as active in a frame above this weight
REQUIRED: dict[str, type | tuple[type, ...]] = {
    "id": str, "audio": str, "curves": str, "fps": (int, float), "frames": int, "duration": (int, float),
    "language": str, "speaker": str, "split": str, "source": str,
}  # fmt: skip


def stats(root: Path) -> dict[str, Any]:
    """Hours per language, speaker and split, and per-shape activity (mean, p95, fraction > 0.1).

    The activity figures are over every curve frame at its own fps, shape ``(frames_total, K)`` pooled.
    """
    root = Path(root)
    names = read_names(root)
    records = read_manifest(root)
    hours: dict[str, dict[str, float]] = {"language": {}, "speaker": {}, "split": {}}
    for record in records:
        for key, table in hours.items():
            table[str(record[key])] = table.get(str(record[key]), 0.0) + float(record["duration"]) / 3600
    pooled = np.concatenate([load_curves(root, r) for r in records]) if records else np.zeros((0, len(names)))
    shapes = []
    for k, name in enumerate(names):
        column = pooled[:, k] if pooled.size else np.zeros(1)
        shapes.append(
            {
                "name": name,
                "mean": float(column.mean()),
                "p95": float(np.percentile(column, 95)),
                "active": float((column > ACTIVE_THRESHOLD).mean()),
            }
        )
    return {
        "utterances": len(records),
        "frames": int(pooled.shape[0]),
        "hours": sum(float(r["duration"]) for r in records) / 3600,
        "by": hours,
        "shapes": shapes,
    }


def format_stats(result: dict[str, Any]) -> str:
    """``stats`` as a plain-text report."""
    lines = [f"{result['utterances']} utterances, {result['hours']:.3f} h, {result['frames']} curve frames"]
    for key, table in result["by"].items():
        lines.append(f"hours by {key}: " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(table.items())))
    lines.append(f"{'shape':<28} {'mean':>7} {'p95':>7} {'>0.1':>7}")
    for shape in result["shapes"]:
        lines.append(f"{shape['name']:<28} {shape['mean']:7.3f} {shape['p95']:7.3f} {shape['active']:7.1%}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- check


def _check_fields(record: dict[str, Any], where: str) -> list[str]:
    problems = []
    for key, kind in REQUIRED.items():
        if key not in record:
            problems.append(f"{where}: missing field {key!r}")
        elif not isinstance(record[key], kind) or isinstance(record[key], bool):
            problems.append(f"{where}: field {key!r} is {record[key]!r}, of the wrong type")
    if problems:
        return problems
    try:
        check_id(record["id"])
    except CorpusError as error:
        problems.append(f"{where}: {error}")
    if record["split"] not in SPLITS:
        problems.append(f"{where}: split {record['split']!r} is not one of {', '.join(SPLITS)}")
    for key in ("audio", "curves"):
        expected = f"{key}/{record['id']}.{'wav' if key == 'audio' else 'npy'}"
        if record[key] != expected:
            problems.append(f"{where}: {key} is {record[key]!r}, expected {expected!r}")
    if not (math.isfinite(record["fps"]) and record["fps"] > 0):
        problems.append(f"{where}: fps {record['fps']!r} is not a positive number")
    return problems


def _check_phonemes(record: dict[str, Any], where: str) -> list[str]:
    phonemes = record.get("phonemes")
    if phonemes is None:
        return []
    if not isinstance(phonemes, list):
        return [f"{where}: phonemes must be a list of [start, end, symbol] or null"]
    for i, row in enumerate(phonemes):
        ok = isinstance(row, list) and len(row) == 3 and isinstance(row[2], str)
        if not ok or not (0 <= row[0] <= row[1] <= float(record["duration"]) + 0.05):
            return [f"{where}: phoneme {i} {row!r} is not [start, end, symbol] inside the audio"]
    return []


def _check_audio(root: Path, record: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    """Audio format and length against the record (``names`` unused: same signature as _check_curves)."""
    path = root / record["audio"]
    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        subtype = soundfile.info(str(path)).subtype
    except (OSError, RuntimeError, soundfile.LibsndfileError) as error:
        return [f"{path}: not a readable audio file ({error})"]
    problems = []
    if rate != 16000 or samples.shape[1] != 1 or subtype != "PCM_16":
        problems.append(
            f"{path}: {rate} Hz, {samples.shape[1]} channel(s), {subtype}; expected 16 kHz mono PCM_16"
        )
    seconds = samples.shape[0] / rate
    if abs(seconds - float(record["duration"])) > 1e-3:
        problems.append(
            f"{path}: lasts {seconds:.3f} s but the record says {float(record['duration']):.3f} s"
        )
    problems += _check_mel(root, record, samples.shape[0])
    frames = int(record["frames"])
    if abs(frames - seconds * float(record["fps"])) > 1.0 + 1e-6:
        problems.append(
            f"{path}: lasts {seconds:.3f} s but the curves have {frames} frames at {record['fps']:g} fps "
            f"({frames / float(record['fps']):.3f} s); they differ by more than one frame"
        )
    return problems


def _check_mel(root: Path, record: dict[str, Any], num_samples: int) -> list[str]:
    """A cached log-mel, when present, must have one finite row per 10 ms of the audio."""
    path = root / "mel" / f"{record['id']}.npy"
    if not path.is_file():
        return []
    try:
        mel = np.load(path, allow_pickle=False, mmap_mode="r")
    except (OSError, ValueError) as error:
        return [f"{path}: unreadable cached log-mel ({error}); delete it to recompute"]
    expected = (num_samples // HOP_LENGTH, N_MELS)
    if mel.shape != expected or not np.isfinite(mel).all():
        return [
            f"{path}: cached log-mel has shape {mel.shape}, expected finite values in {expected}; delete it"
        ]
    return []


def _check_curves(root: Path, record: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    path = root / record["curves"]
    try:
        curves = np.load(path, allow_pickle=False, mmap_mode="r")
    except (OSError, ValueError) as error:
        return [f"{path}: cannot read the curves ({error})"]
    if curves.dtype != np.float32 or curves.ndim != 2 or curves.shape[1] != len(names):
        return [
            f"{path}: {curves.dtype} {curves.shape}, expected float32 (frames, {len(names)}) per names.txt"
        ]
    problems = []
    if curves.shape[0] != int(record["frames"]):
        problems.append(f"{path}: {curves.shape[0]} frames but the record says {record['frames']}")
    bad = ~np.isfinite(curves) | (curves < 0.0) | (curves > 1.0)
    if bad.any():
        frame, column = (int(v) for v in np.argwhere(bad)[0])
        problems.append(
            f"{path}: {int(bad.sum())} values are NaN or outside [0, 1] "
            f"(first at frame {frame} = {frame / float(record['fps']):.3f} s, {names[column]!r})"
        )
    return problems


def _check_meta(root: Path, records: list[dict[str, Any]]) -> list[str]:
    """The manifest must list exactly the records in ``meta/``."""
    problems = []
    listed = {str(r.get("id")): r for r in records}
    for path in sorted((root / "meta").glob("*.json")):
        if path.name.startswith("."):
            continue
        if path.stem not in listed:
            problems.append(f"{path}: not in {MANIFEST_FILE} (rebuild it with build_manifest)")
            continue
        try:
            same = json.loads(path.read_text(encoding="utf-8")) == listed[path.stem]
        except (OSError, json.JSONDecodeError) as error:
            problems.append(f"{path}: unreadable ({error})")
            continue
        if not same:
            problems.append(f"{path}: differs from its line in {MANIFEST_FILE} (rebuild the manifest)")
    for utt_id in listed:
        if not (root / "meta" / f"{utt_id}.json").is_file():
            problems.append(f"{root / MANIFEST_FILE}: {utt_id!r} has no meta/{utt_id}.json")
    return problems


def check(root: Path) -> list[str]:
    """Every problem of the dataset at ``root``, each naming the file; empty when the dataset is sound."""
    root = Path(root)
    try:
        names = read_names(root)
        records = read_manifest(root)
    except CorpusError as error:
        return [str(error)]
    problems: list[str] = []
    seen: set[str] = set()
    for number, record in enumerate(records, start=1):
        where = f"{root / MANIFEST_FILE}, line {number} ({record.get('id')!r})"
        if str(record.get("id")) in seen:
            problems.append(f"{where}: id {record.get('id')!r} appears twice")
        seen.add(str(record.get("id")))
        found = _check_fields(record, where)
        problems += found
        if found:
            continue
        problems += _check_phonemes(record, where)
        for part, inspect in (("audio", _check_audio), ("curves", _check_curves)):
            if (root / record[part]).is_file():
                problems += inspect(root, record, names)
            else:
                problems.append(f"{root / record[part]}: missing (listed at {where})")
    return problems + _check_meta(root, records)


# ---------------------------------------------------------------------------------------------- command line
