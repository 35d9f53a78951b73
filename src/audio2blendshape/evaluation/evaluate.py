"""``audio2blendshape evaluate``: score checkpoints, baselines and the labels themselves on a dataset split.

Everything is compared at 100 fps, the model's native rate: each utterance's label curves are resampled
from their own fps to the audio's ``n // 160`` frames by linear interpolation (``resample_curves``), and a
prediction must come at 100 fps with that many frames (±``FRAME_SLACK``; a short one holds its last pose).

Rows: ``oracle`` (the labels scored against themselves; its lip-sync figures check that labels and phoneme
timings agree), ``mean pose`` (the train split's mean curves, constant), ``energy envelope`` (jawOpen
follows the smoothed RMS level of the audio, scaled to the train split's jawOpen range; every other shape at
the mean), then one row per checkpoint or in-memory predictor. The metrics live in ``lipsync_metrics``;
docs/evaluate.md explains them.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import audio2blendshape.data.corpus as corpus
import audio2blendshape.evaluation.lipsync as metrics
from audio2blendshape.atomic import atomic_write_text
from audio2blendshape.audio.constants import HOP_LENGTH, SAMPLE_RATE
from audio2blendshape.data.corpus import MANIFEST_FILE, SPLITS, CorpusError, resample_curves
from audio2blendshape.data.visemes import mouth_openness
from audio2blendshape.evaluation.baselines import Animate, baseline_rows, load_label_curves, train_statistics
from audio2blendshape.evaluation.paired import paired_mse_change
from audio2blendshape.expression.layers import ExpressionControls
from audio2blendshape.names import Rig

log = logging.getLogger(__name__)

FPS = 100.0  # evaluation frame rate: one frame per log-mel frame
FRAME_SLACK = 2  # frames a prediction may be longer or shorter than the audio's n // 160
Predict = Callable[[np.ndarray], np.ndarray]  # 16 kHz mono float32 (n,) -> weights (T, K) at 100 fps


@dataclass
class _Row:
    """One row being scored: a name, what it is, and how it animates (None: the labels themselves)."""

    name: str
    kind: str  # "oracle", "baseline", "checkpoint" or "predictor"
    animate: Animate | None
    errors: metrics.CurveErrors
    lipsync: metrics.LipSync | None


@dataclass
class EvaluationReport:
    """Every row's figures for one split of one dataset; ``table()`` for people, ``to_json()`` for tools."""

    dataset: str
    split: str
    names: tuple[str, ...]
    utterances: int
    seconds: float
    regions: dict[str, list[str]]  # region -> its shape names ({}: overall figures only)
    lipsync: bool  # whether the lip-sync figures were computed
    rows: list[dict[str, Any]]  # name, kind, mse, l1, pearson, regions, lipsync, meets_targets, paired
    notes: list[str] = field(default_factory=list)

    def row(self, name: str) -> dict[str, Any]:
        """The row called ``name``."""
        for row in self.rows:
            if row["name"] == name:
                return row
        raise KeyError(f"no row {name!r}; rows: {', '.join(r['name'] for r in self.rows)}")

    def to_dict(self) -> dict[str, Any]:
        targets = {k: f"{'|x| <=' if kind == 'abs<=' else 'x >='} {bound:g}"
                   for k, (kind, bound) in metrics.TARGETS.items()}  # fmt: skip
        return _finite({
            "dataset": self.dataset, "split": self.split, "fps": FPS, "utterances": self.utterances,
            "seconds": round(self.seconds, 3), "shapes": len(self.names), "regions": self.regions,
            "lipsync": self.lipsync, "targets": targets, "notes": self.notes, "rows": self.rows,
        })  # fmt: skip

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    def write_json(self, path: str | Path) -> None:
        """Write ``to_json()`` to ``path`` atomically (a temp file renamed into place)."""
        atomic_write_text(Path(path), self.to_json())

    def table(self) -> str:
        head = (f"{self.dataset}, split {self.split}: {self.utterances} utterances, {self.seconds:.1f} s, "
                f"{len(self.names)} shapes, scored at {FPS:g} fps")  # fmt: skip
        lines = [head, "", _main_table(self.rows, self.lipsync)]
        if self.regions:
            lines += ["", "MSE per region", _region_table(self.rows, list(self.regions))]
        if self.lipsync:
            lines += ["", "targets: AUC >= 0.95, closure >= 0.9, |lag| <= 20 ms (lag > 0: animation late)"]
        paired = [r for r in self.rows if r.get("paired")]
        if paired:
            lines += ["", f"MSE against {paired[0]['paired']['against']}, paired over the same utterances",
                      _paired_table(paired)]  # fmt: skip
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def _finite(value: Any) -> Any:
    """NaN and infinities become null: JSON has no spelling for them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _main_table(rows: list[dict[str, Any]], lipsync: bool) -> str:
    width = max(len(r["name"]) for r in rows) + 2
    header = f"{'row':<{width}}{'MSE':>9}{'L1':>9}{'r':>7}"
    if lipsync:
        header += f"{'AUC':>7}{'closure':>9}{'(95%)':>13}{'@mid':>7}{'false':>7}{'pause':>8}"
        header += f"{'open r':>8}{'lag ms':>8}{'vs lbl':>8}  targets"
    lines = [header]
    for row in rows:
        line = f"{row['name']:<{width}}{row['mse']:>9.5f}{row['l1']:>9.5f}{_fmt(row['pearson'], '.3f'):>7}"
        sync = row.get("lipsync")
        if lipsync and sync is not None:
            lag = _fmt(sync["lag_ms"], "+.1f") + ("!" if sync["lag_at_limit"] else "")
            interval = sync.get("closure_ci")
            interval_text = "-" if interval is None else f"{interval[0]:.3f}-{interval[1]:.3f}"
            line += (f"{_fmt(sync['auc'], '.3f'):>7}{_fmt(sync['closure'], '.3f'):>9}{interval_text:>13}"
                     f"{_fmt(sync['closure_mid'], '.3f'):>7}{_fmt(sync['false_closure'], '.3f'):>7}"
                     f"{_fmt(sync['pause_openness'], '.3f'):>8}{_fmt(sync['lag_r'], '.3f'):>8}"
                     f"{lag:>8}{_fmt(sync['lag_vs_labels_ms'], '+.1f'):>8}"
                     f"  {'met' if row['meets_targets'] else 'missed'}")  # fmt: skip
        lines.append(line)
    return "\n".join(lines)


def _paired_table(rows: list[dict[str, Any]]) -> str:
    width = max(len(r["name"]) for r in rows) + 2
    lines = [f"{'row':<{width}}{'change':>9}{'(95%)':>19}{'better on':>11}"]
    for row in rows:
        paired = row["paired"]
        if paired["mse_change"] is None:
            lines.append(f"{row['name']:<{width}}{'-':>9}")
            continue
        low, high = (100 * q for q in paired["mse_change_ci"])
        change, better = 100 * paired["mse_change"], 100 * paired["better_share"]
        lines.append(f"{row['name']:<{width}}{change:>+8.2f}%{low:>+9.2f}% to {high:+.2f}%{better:>10.0f}%")
    return "\n".join(lines)


def _with_paired(results: list[dict[str, Any]], rows: list[_Row]) -> list[dict[str, Any]]:
    """Each model row after the first gets its MSE change against the first, paired by utterance."""
    models = [i for i, row in enumerate(rows) if row.kind in ("checkpoint", "predictor")]
    for i, result in enumerate(results):
        result["paired"] = None
        if len(models) > 1 and i in models[1:]:
            base = np.array(rows[models[0]].errors.utterance_errors)
            paired = paired_mse_change(base, np.array(rows[i].errors.utterance_errors))
            result["paired"] = {"against": rows[models[0]].name, **paired}
    return results


def _region_table(rows: list[dict[str, Any]], regions: list[str]) -> str:
    width = max(len(r["name"]) for r in rows) + 2
    cell = max(9, *(len(g) + 2 for g in regions))
    lines = [f"{'row':<{width}}" + "".join(f"{g:>{cell}}" for g in regions)]
    for row in rows:
        lines.append(
            f"{row['name']:<{width}}" + "".join(f"{row['regions'][g]['mse']:>{cell}.5f}" for g in regions)
        )
    return "\n".join(lines)


def _align(
    weights: np.ndarray, columns: Sequence[str] | None, names: tuple[str, ...], frames: int, where: str
) -> np.ndarray:
    """A prediction as the dataset's columns ``(frames, K)``; a few frames short holds the last pose."""
    weights, columns = np.asarray(weights, dtype=np.float32), names if columns is None else columns
    expected = f"expected weights ({frames}, {len(columns)}) at {FPS:g} fps, got {weights.shape}"
    if weights.ndim != 2 or weights.shape[1] != len(columns) or abs(weights.shape[0] - frames) > FRAME_SLACK:
        raise ValueError(f"{where}: {expected}")
    if not np.isfinite(weights).all():
        raise ValueError(f"{where}: the prediction holds NaN or infinite weights")
    if tuple(columns) != names:
        rig = Rig(tuple(columns))
        missing = [n for n in names if rig.get(n) is None]
        if missing:
            raise ValueError(
                f"{where}: the prediction lacks the dataset's shapes {', '.join(missing[:5])} ..."
            )
        weights = weights[:, [rig.index(n) for n in names]]
    if weights.shape[0] < frames:
        weights = np.concatenate([weights, np.repeat(weights[-1:], frames - weights.shape[0], axis=0)])
    return weights[:frames]


def _timeline(root: Path, record: dict[str, Any], duration: float) -> metrics.Timeline | None:
    if not record.get("phonemes"):
        return None
    try:
        return metrics.phoneme_timeline(record["phonemes"], duration)
    except ValueError as error:
        raise CorpusError(f"{root / MANIFEST_FILE}: utterance {record['id']!r}: {error}") from error


def _score_utterance(
    root: Path, record: dict[str, Any], names: tuple[str, ...], rows: list[_Row]
) -> tuple[float, bool]:
    """Add one utterance to every row; returns (its seconds, whether it had phoneme timings)."""
    audio = corpus.load_utterance_audio(root, record)
    frames = audio.shape[0] // HOP_LENGTH
    if frames == 0:
        return 0.0, False
    labels = resample_curves(load_label_curves(root, record, names), float(record["fps"]), frames, FPS)
    needs_sync = rows[0].lipsync is not None
    timeline = _timeline(root, record, audio.shape[0] / SAMPLE_RATE) if needs_sync else None
    label_openness = mouth_openness(labels, names) if timeline is not None else None
    for row in rows:
        predicted = labels
        if row.animate is not None:
            weights, columns = row.animate(audio)
            predicted = _align(weights, columns, names, frames, f"{row.name}, utterance {record['id']!r}")
        row.errors.add(predicted, labels)
        if timeline is not None and row.lipsync is not None:
            row.lipsync.add(mouth_openness(predicted, names), timeline, label_openness)
    return frames / FPS, timeline is not None


def _score(root: Path, split: str, named: list[tuple[str, str, Animate]], baselines: bool,
           max_utterances: int | None,
           speakers: Sequence[str] | None = None) -> EvaluationReport:  # fmt: skip
    """Score the labels, the baselines and ``named`` (name, kind, animate) on ``split`` of ``root``
    (only ``speakers``' utterances when given)."""
    root = Path(root)
    if split not in SPLITS:
        raise CorpusError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    if max_utterances is not None and max_utterances < 1:
        raise ValueError(f"max_utterances must be at least 1, got {max_utterances}")
    records, names = corpus.read_manifest(root), corpus.read_names(root)
    chosen = [
        r for r in records if r.get("split") == split and (not speakers or r.get("speaker") in speakers)
    ]
    chosen = chosen[:max_utterances]
    if not chosen:
        present = sorted({str(r.get("split")) for r in records})
        where = f"{root / MANIFEST_FILE}: no utterances in split {split!r}"
        raise CorpusError(f"{where} (splits present: {', '.join(present) or 'none'})")
    rig, notes = Rig(names), []
    sync = rig.get("jawOpen") is not None and rig.get("mouthClose") is not None
    if not sync:
        notes.append("lip-sync figures skipped: the rig has no jawOpen and mouthClose to measure openness by")
    entries: list[tuple[str, str, Animate | None]] = [("oracle (labels)", "oracle", None)]
    if baselines:
        train = [r for r in records if r.get("split") == "train"]
        if train:
            stats = train_statistics(root, train, names)
            entries += [(n, "baseline", a) for n, a in baseline_rows(stats, names, notes)]
        else:
            notes.append("baselines skipped: the dataset has no train split to take the mean pose from")
    entries += named
    rows = [
        _Row(n, k, a, metrics.CurveErrors(len(names)), metrics.LipSync(FPS) if sync else None)
        for n, k, a in entries
    ]
    seconds, timed = 0.0, 0
    for number, record in enumerate(chosen, start=1):
        length, had_phonemes = _score_utterance(root, record, names, rows)
        seconds, timed = seconds + length, timed + had_phonemes
        log.debug("evaluate: %d/%d %s", number, len(chosen), record["id"])
    if sync and timed < len(chosen):
        missing = len(chosen) - timed
        notes.append(f"{missing} of {len(chosen)} utterances have no phoneme timings; lip sync uses the rest")
    sync = sync and timed > 0
    groups = metrics.region_groups(names)
    results = []
    for row in rows:
        figures = row.lipsync.result() if sync and row.lipsync is not None else None
        met = metrics.meets_targets(figures) if figures is not None else None
        results.append({"name": row.name, "kind": row.kind, **row.errors.result(groups), "lipsync": figures,
                        "meets_targets": met})  # fmt: skip
    regions = {g: [names[c] for c in cols] for g, cols in groups.items()}
    results = _with_paired(results, rows)
    return EvaluationReport(str(root), split, names, len(chosen), seconds, regions, sync, results, notes)


# ---------------------------------------------------------------------------------------------- entry points


def _checkpoint_rows(
    path: str | Path | None, expressions: Sequence[tuple[str, ExpressionControls]] = ()
) -> list[tuple[str, str, Animate]]:
    """Rows for a checkpoint file (None: the bundled default), run through ``Animator``: the plain one,
    then one per (label, controls) of ``expressions``, sharing one model pass per utterance."""
    from audio2blendshape.runtime.animator import Animator

    animator = Animator.load(path)
    name = "default (bundled)" if path is None else str(path)
    last: list[Any] = [None, None]  # (audio, plain weights): every row of an utterance gets the same array

    def plain(audio: np.ndarray) -> np.ndarray:
        if last[0] is not audio:
            last[:] = [audio, animator.animate(audio, fps=FPS, idle=False, seed=0).weights]
        return np.array(last[1])

    def row(controls: ExpressionControls | None) -> Animate:
        def animate(audio: np.ndarray) -> tuple[np.ndarray, Sequence[str]]:
            weights = plain(audio)
            if controls is not None:
                weights, _ = animator.express(weights, audio, SAMPLE_RATE, FPS, 0, controls)
            return weights, animator.names

        return animate

    rows = [(name, "checkpoint", row(None))]
    rows += [(f"{name} + {label}", "checkpoint", row(controls)) for label, controls in expressions]
    return rows


def evaluate_dataset(
    checkpoints: Sequence[str | Path | None],
    dataset_dir: str | Path,
    split: str = "test",
    baselines: bool = True,
    max_utterances: int | None = None,
    speakers: Sequence[str] | None = None,
    expressions: Sequence[tuple[str, ExpressionControls]] = (),
) -> EvaluationReport:
    """Score checkpoints (None: the bundled default) on ``split`` of a dataset, with oracle and baselines.

    ``max_utterances`` keeps the first N utterances of the split (manifest order, sorted by id);
    ``speakers`` only those speakers' utterances (a source of a mixed test set, reported on its own).
    ``expressions``: (label, controls) pairs; each checkpoint gets one more row per pair, animated with
    that expression layer (``docs/expression.md``), from the same model pass as its plain row.
    """
    rows = [row for path in checkpoints for row in _checkpoint_rows(path, expressions)]
    return _score(Path(dataset_dir), split, rows, baselines, max_utterances, speakers)


def evaluate_predictor(
    predict: Predict,
    dataset_dir: str | Path,
    *,
    names: Sequence[str] | None = None,
    label: str = "predictor",
    split: str = "test",
    baselines: bool = False,
    max_utterances: int | None = None,
) -> EvaluationReport:
    """Score an in-memory predictor: ``predict(audio)`` maps 16 kHz mono float32 ``(n,)`` to ``(T, K)``.

    ``T`` must be ``n // 160`` (100 fps, ±``FRAME_SLACK``); the K columns are ``names`` (matched to the
    dataset's case-insensitively, extra ones ignored) or, when None, the dataset's own names in order.
    """
    columns = tuple(names) if names is not None else None

    def animate(audio: np.ndarray) -> tuple[np.ndarray, Sequence[str] | None]:
        return predict(audio), columns

    return _score(Path(dataset_dir), split, [(label, "predictor", animate)], baselines, max_utterances)
