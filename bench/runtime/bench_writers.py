"""Writing animations: the vectorised CSV/JSON rows against the per-value formatting they replaced, and the
per-file costs of a folder of clips (fsync, idle layer); prints a table.

    .venv/bin/python bench/runtime/bench_writers.py [--minutes 10] [--clips 100] [--repeats 7]

Rows:

* CSV / JSON of ``--minutes`` at 60 fps (random weights; with and without a head track): the writers'
  ``write_result`` into memory, old (``old_csv`` and ``old_json`` from ``tests/runtime/old_writers.py``,
  the code before ``runtime.row_format``) and new, alternating, with a check that both give the same bytes;
* ``--clips`` Live Link CSVs of 3 s written to /tmp/a2b_bench_writers, each atomically with its own fsync
  (as before) and inside ``atomic.deferred_sync()`` (one ``os.sync()`` for all, as ``animate`` does now);
* the idle layer on ``--clips`` 3 s clips with one seed: the first clip (events drawn) and the others
  (events kept from the first, as in a folder run).

Medians over ``--repeats``; CPU seconds as well as wall, since a shared machine's load inflates wall time.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from runtime.old_writers import old_csv, old_json

from audio2blendshape.atomic import deferred_sync
from audio2blendshape.names import ARKIT_NAMES
from audio2blendshape.runtime import idle
from audio2blendshape.runtime.writers import (
    Animation,
    CsvWriter,
    JsonWriter,
)

WORK = Path("/tmp/a2b_bench_writers")
FPS = 60


def clock(work: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def medians(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def animation(seconds: float, head: bool, seed: int = 0) -> Animation:
    rng = np.random.default_rng(seed)
    frames = round(seconds * FPS)
    weights = rng.random((frames, 52), dtype=np.float32)
    track = (0.2 * rng.standard_normal((frames, 3))).astype(np.float32) if head else None
    return Animation(ARKIT_NAMES, FPS, weights, frames / FPS, head=track)


def writer_rows(minutes: float, repeats: int) -> None:
    for head in (False, True):
        take = animation(minutes * 60, head)
        for name, old, new in (("CSV", old_csv, CsvWriter().write_result), ("JSON", old_json,
                               JsonWriter().write_result)):  # fmt: skip
            outputs = [io.BytesIO(), io.BytesIO()]
            old(take, outputs[0])
            new(take, outputs[1])
            same = outputs[0].getvalue() == outputs[1].getvalue()
            times: dict[str, list[tuple[float, float]]] = {"old": [], "new": []}
            for _ in range(repeats):
                times["old"].append(clock(lambda: old(take, io.BytesIO())))  # noqa: B023
                times["new"].append(clock(lambda: new(take, io.BytesIO())))  # noqa: B023
            (ow, oc), (nw, nc) = medians(times["old"]), medians(times["new"])
            size = len(outputs[1].getvalue()) / 1e6
            what = f"{name} {minutes:g} min{' + head' if head else ''} ({size:.1f} MB)"
            print(f"| {what} | {ow * 1e3:.0f} / {oc * 1e3:.0f} | {nw * 1e3:.0f} / {nc * 1e3:.0f} | "
                  f"{oc / nc:.1f}x | {same} |")  # fmt: skip


def folder_rows(clips: int, repeats: int) -> None:
    takes = [animation(3.0, False, seed) for seed in range(clips)]

    def write_all() -> None:
        for index, take in enumerate(takes):
            take.write(WORK / f"clip_{index:03d}.csv")

    def write_deferred() -> None:
        with deferred_sync():
            write_all()

    shutil.rmtree(WORK, ignore_errors=True)
    times: dict[str, list[tuple[float, float]]] = {"fsync": [], "deferred": []}
    for _ in range(repeats):
        times["fsync"].append(clock(write_all))
        times["deferred"].append(clock(write_deferred))
    (ow, oc), (nw, nc) = medians(times["fsync"]), medians(times["deferred"])
    print(f"| {clips} CSVs of 3 s, atomic: fsync each / one sync | {ow * 1e3:.0f} / {oc * 1e3:.0f} | "
          f"{nw * 1e3:.0f} / {nc * 1e3:.0f} | {ow / nw:.1f}x wall | - |")  # fmt: skip
    shutil.rmtree(WORK, ignore_errors=True)
    eyes = takes[0].weights
    cold: list[tuple[float, float]] = []
    warm: list[tuple[float, float]] = []
    for _ in range(repeats):
        idle._blink_draw.cache_clear()
        idle._saccade_draw.cache_clear()
        cold.append(clock(lambda: idle.IdleLayer(FPS, seed=0).process(eyes)))
        spent = [clock(lambda: idle.IdleLayer(FPS, seed=0).process(eyes)) for _ in range(clips - 1)]
        warm.append((sum(s[0] for s in spent) / len(spent), sum(s[1] for s in spent) / len(spent)))
    (ow, oc), (nw, nc) = medians(cold), medians(warm)
    print(f"| idle layer, 3 s clip: first / each other one seed | {ow * 1e3:.2f} / {oc * 1e3:.2f} | "
          f"{nw * 1e3:.2f} / {nc * 1e3:.2f} | {oc / nc:.1f}x | - |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the long take")
    parser.add_argument("--clips", type=int, default=100, help="files in the folder rows")
    parser.add_argument("--repeats", type=int, default=7, help="runs per cell")
    args = parser.parse_args()
    print(f"load average before: {', '.join(f'{v:.1f}' for v in os.getloadavg())}\n")
    print("| what | before: wall / CPU ms | now: wall / CPU ms | CPU speed-up | same bytes |")
    print("|---|---:|---:|---:|:---:|")
    writer_rows(args.minutes, args.repeats)
    folder_rows(args.clips, args.repeats)
    print(f"\nload average after: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
