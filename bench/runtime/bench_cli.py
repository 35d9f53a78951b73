"""What a user waits for: ``audio2blendshape animate`` as a command, process start included; prints a table.

    .venv/bin/python bench/runtime/bench_cli.py [--repeats 5] [--minutes 10] [--clips 100] [--baseline DIR]

Rows: the bundled 5 s clip, a 10-minute file (examples/hello.wav repeated with 0.3 s pauses), and a folder
of 100 short clips (hello.wav cut at 100 different lengths, 1-4.8 s) animated in one call, each to a 60 fps
Live Link Face CSV. Every row runs both backends: ``auto`` (the default: the shipped ONNX file with
onnxruntime, no torch imported) and ``torch`` (the bundled checkpoint through PyTorch, as before the ONNX
default). Runs alternate between the backends so both see the same machine load; the table gives medians
and the torch/auto ratio of the medians. The real-time factor is audio seconds / wall seconds.

``--baseline DIR``: a third column, the same ``animate`` (auto backend) from another checkout of the project
(e.g. ``git worktree add /tmp/before <commit>``), run by this venv's Python with ``DIR/src`` first on the
path, alternating with the others: a before/after table measured side by side.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile

REPO = Path(__file__).resolve().parents[2]
WORK = Path("/tmp/a2b_bench_cli")
HELLO = REPO / "examples" / "hello.wav"
BACKENDS = ("auto", "torch")


def long_file(minutes: float) -> Path:
    """``minutes`` of hello.wav repeated with 0.3 s pauses, 16 kHz PCM WAV (made once)."""
    path = WORK / f"speech_{minutes:g}min.wav"
    if not path.is_file():
        hello, rate = soundfile.read(HELLO, dtype="float32")
        unit = np.concatenate([hello, np.zeros(int(0.3 * rate), np.float32)])
        total = round(minutes * 60 * rate)
        WORK.mkdir(parents=True, exist_ok=True)
        soundfile.write(path, np.resize(unit, total), rate, subtype="PCM_16")
    return path


def clip_folder(count: int) -> Path:
    """``count`` clips of hello.wav cut at lengths from 1 s to its full 4.85 s (made once)."""
    folder = WORK / f"clips_{count}"
    if not folder.is_dir():
        hello, rate = soundfile.read(HELLO, dtype="float32")
        folder.mkdir(parents=True)
        for index, length in enumerate(np.linspace(rate, len(hello), count).astype(int)):
            soundfile.write(folder / f"clip_{index:03d}.wav", hello[:length], rate, subtype="PCM_16")
    return folder


def audio_seconds(target: Path) -> float:
    files = sorted(target.glob("*.wav")) if target.is_dir() else [target]
    return sum(soundfile.info(str(f)).duration for f in files)


def run(target: Path, backend: str, baseline: Path | None = None) -> float:
    """Wall seconds of one ``animate`` command on ``target`` (a file or a folder); ``backend`` "baseline"
    runs the auto backend of the checkout at ``baseline``."""
    out = WORK / "out" / backend
    out.mkdir(parents=True, exist_ok=True)
    output = out if target.is_dir() else out / "take.csv"
    # An installed package has its .pyc files; with PYTHONDONTWRITEBYTECODE set (as in some shells and CI)
    # every run would compile the package again (~80 ms), which no user waits for.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if backend == "baseline":
        assert baseline is not None
        env["PYTHONPATH"] = str(baseline / "src")
        program = [sys.executable, "-m", "audio2blendshape.cli.main"]
        backend = "auto"
    else:
        program = [str(Path(sys.executable).with_name("audio2blendshape"))]
    command = [*program, "animate", str(target), "-o", str(output), "--backend", backend]
    began = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per backend and row")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the long file")
    parser.add_argument("--clips", type=int, default=100, help="clips in the folder row")
    parser.add_argument("--baseline", type=Path, help="another checkout to time beside this (before/after)")
    args = parser.parse_args()
    backends = (*BACKENDS, "baseline") if args.baseline else BACKENDS
    rows = {"examples/hello.wav (4.85 s)": HELLO, f"{args.minutes:g}-minute file": long_file(args.minutes),
            f"folder of {args.clips} clips, one call": clip_folder(args.clips)}  # fmt: skip
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"{args.repeats} runs per cell, alternating backends; load average before: {load}\n")
    extra = " baseline wall s (median) | baseline real-time | baseline / auto |" if args.baseline else ""
    print("| input | audio s | auto wall s (median) | auto real-time | torch wall s (median) "
          f"| torch real-time | torch / auto |{extra}\n|---|---:|---:|---:|---:|---:|---:|"
          + ("---:|---:|---:|" if args.baseline else ""))  # fmt: skip
    for name, target in rows.items():
        run(target, "auto")  # warm the page cache and .pyc files
        times: dict[str, list[float]] = {b: [] for b in backends}
        for _ in range(args.repeats):
            for backend in backends:
                times[backend].append(run(target, backend, args.baseline))
        seconds = audio_seconds(target)
        auto, torch = statistics.median(times["auto"]), statistics.median(times["torch"])
        line = (f"| {name} | {seconds:.1f} | {auto:.2f} | {seconds / auto:.0f}x | {torch:.2f} | "
                f"{seconds / torch:.0f}x | {torch / auto:.1f}x |")  # fmt: skip
        if args.baseline:
            before = statistics.median(times["baseline"])
            line += f" {before:.2f} | {seconds / before:.0f}x | {before / auto:.2f}x |"
        print(line)
    print(f"\nload average after: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
