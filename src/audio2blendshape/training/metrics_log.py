"""Metrics as JSON lines (one object per logged step), optionally mirrored to TensorBoard.

Only rank 0 writes. On resume, lines past the checkpoint's step (logged after the last save by a run that
was then killed) are dropped, so the file reads as one uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Every complete record in a metrics file (a torn last line from a kill is skipped)."""
    records: list[dict[str, Any]] = []
    path = Path(path)
    if not path.exists():
        return records
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


class MetricsLog:
    def __init__(self, path: Path, resume_step: int, enabled: bool, tensorboard: bool = False) -> None:
        self.path = path
        self.enabled = enabled
        self.writer: Any = None
        if not enabled:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        kept = [r for r in read_metrics(path) if int(r.get("step", 0)) <= resume_step]
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        os.replace(temporary, path)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as error:
                raise RuntimeError(
                    "train.tensorboard = true needs TensorBoard: pip install 'audio2blendshape[tensorboard]'"
                ) from error
            self.writer = SummaryWriter(str(path.parent / "tensorboard"), purge_step=resume_step + 1)

    def write(self, step: int, values: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"step": step, **{k: _jsonable(v) for k, v in values.items()}}
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
