"""Import speed (the FACEGOOD set) and CorpusWindows batch throughput; prints a table.

Run: ``.venv/bin/python bench/data/bench_import.py [--data DIR] [--batches 200] [--threads N]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from audio2blendshape.data.corpus import read_manifest
from audio2blendshape.data.corpus_windows import CorpusSequences, CorpusWindows
from audio2blendshape.data.importers import Pending, assign_splits, make_id, rig_loader, run_import
from audio2blendshape.names import Rig

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "facegood"


def import_facegood(data: Path, out: Path) -> tuple[float, float]:
    """Seconds taken and seconds of audio imported."""
    names = Rig.from_file(data / "blendshape_names.txt").names
    pending = [
        Pending(make_id(c.stem), c.stem, str(c), rig_loader(c, c.with_suffix(".wav"), len(names), 30.0))
        for c in sorted(data.glob("*.npy"))
    ]
    splits = assign_splits(pending, "train", val=["1114_2_05"])
    start = time.perf_counter()
    run_import(out, names, pending, splits, language="zh", speaker="facegood")
    elapsed = time.perf_counter() - start
    return elapsed, sum(float(r["duration"]) for r in read_manifest(out))


def throughput(dataset: CorpusWindows, batch: int, batches: int) -> float:
    """Windows per second through ``batch(indices)`` with random indices."""
    generator = torch.Generator().manual_seed(0)
    draws = [torch.randint(0, len(dataset), (batch,), generator=generator) for _ in range(batches)]
    start = time.perf_counter()
    for indices in draws:
        dataset.batch(indices)  # eager gathers: the copy is done when this returns
    return batch * batches / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "facegood"
        seconds, audio = import_facegood(args.data, out)
        rows.append(
            (
                "import facegood (5 files)",
                f"{seconds:.2f} s for {audio / 60:.1f} min = {audio / seconds:.0f}x real time",
            )
        )
        start = time.perf_counter()
        windows = CorpusWindows(out, "train")
        cold = time.perf_counter() - start
        rows.append(("CorpusWindows train, cold (computes mel)", f"{cold:.2f} s, {len(windows)} windows"))
        start = time.perf_counter()
        windows = CorpusWindows(out, "train")
        rows.append(("CorpusWindows train, mel cached", f"{time.perf_counter() - start:.2f} s"))
        rate = throughput(windows, 64, args.batches)
        rows.append(("batch(64) of 300 x (80 + 116)", f"{rate:,.0f} windows/s ({rate / 64:,.0f} batches/s)"))
        sequences = CorpusSequences(out, ("train", "val"))
        rate = throughput(sequences, 16, args.batches)
        rows.append(
            ("sequences batch(16) of 1000 frames", f"{rate:,.0f} windows/s ({rate / 16:,.0f} batches/s)")
        )
    width = max(len(name) for name, _ in rows)
    print(f"{'measure':<{width}} | result")
    print(f"{'-' * width}-|-{'-' * 50}")
    for name, value in rows:
        print(f"{name:<{width}} | {value}")


if __name__ == "__main__":
    main()
