"""Streaming cost and latency, torch vs onnxruntime, on one core; prints a table.

Run: ``.venv/bin/python bench/runtime/bench_stream.py [--checkpoint P] [--seconds 20] [--chunk-ms 10]
[--rates ...]``.

Per row: a checkpoint streamed over ``--seconds`` of speech (examples/hello.wav looped)
in ``--chunk-ms`` chunks, as fast as possible, pinned to CPU 0 with one inference thread. ``push`` times are
per chunk (median, 99th percentile, max; about half the 10 ms pushes complete no model step and cost only
features); ``cpu med`` is the median push in thread CPU time, which the machine's other load does not
inflate; ``model push`` are the pushes that ran the model. Latency per frame is measured: seconds of audio
pushed when the frame came out minus its time stamp (mean / max); ``+compute`` adds the p99 push time.
``frames/s`` is output frames (60 fps) per second of compute: 60 x the real-time streams one core holds.
Backends: torch (eager, only the new steps through attention and decoder), onnxruntime with the ``full``
export (every window step computed) and with the ``window`` export (one new step per call, static shapes).
Checkpoints: the bundled low-latency model (what ``stream`` runs) and the bundled offline model (what
``animate`` runs, 40 ms more look-ahead), or the ``--checkpoint`` given.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import soxr
import torch

from audio2blendshape.models.onnx_export import export_onnx
from audio2blendshape.runtime.animator import Animator
from audio2blendshape.runtime.backends import BUNDLED_CHECKPOINT, BUNDLED_STREAM_CHECKPOINT, bundled_file
from audio2blendshape.runtime.onnx_backend import OnnxFrameModel, OnnxWindowModel
from audio2blendshape.runtime.streamer import FrameModelLike, Streamer

REPO = Path(__file__).resolve().parents[2]


def speech(seconds: float, rate: int) -> np.ndarray:
    """``seconds`` of examples/hello.wav, looped, at ``rate``: float32 ``(n,)``."""
    hello, source_rate = soundfile.read(REPO / "examples" / "hello.wav", dtype="float32")
    looped = np.tile(hello, int(np.ceil(seconds * source_rate / len(hello))))[: round(seconds * source_rate)]
    return looped if rate == source_rate else soxr.resample(looped, source_rate, rate).astype(np.float32)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def measure(model: FrameModelLike, audio: np.ndarray, rate: int, chunk_ms: float) -> dict[str, float]:
    """Stream ``audio`` once (after a 1 s warm-up stream) and summarise push times and frame latency."""
    size = round(rate * chunk_ms / 1000)
    warm = Streamer(model, rate)
    for start in range(0, rate, size):
        warm.push(audio[start : start + size])
    streamer = Streamer(model, rate, fps=60.0)
    pushes, cpu, model_pushes, delays, frames = [], [], [], [], 0
    for start in range(0, len(audio), size):
        steps_before = streamer.state.step_first + (
            0 if streamer.state.steps is None else len(streamer.state.steps)
        )
        began, began_cpu = time.perf_counter(), time.thread_time()
        out = streamer.push(audio[start : start + size])
        pushes.append(time.perf_counter() - began)
        cpu.append(time.thread_time() - began_cpu)
        steps_after = streamer.state.step_first + (
            0 if streamer.state.steps is None else len(streamer.state.steps)
        )
        if steps_after > steps_before:
            model_pushes.append(pushes[-1])
        delays += (out.audio_time - out.times).tolist()
        frames += len(out)
    frames += len(streamer.flush())
    stated = streamer.latency(chunk_ms / 1000)
    return {
        "median": statistics.median(pushes), "p99": percentile(pushes, 0.99), "max": max(pushes),
        "cpu_median": statistics.median(cpu),
        "model_median": statistics.median(model_pushes), "model_p99": percentile(model_pushes, 0.99),
        "stated": stated.total_s, "mean_delay": float(np.mean(delays)), "max_delay": float(np.max(delays)),
        "fps": frames / sum(pushes),
    }  # fmt: skip


def exports(label: str, checkpoint: Path, folder: Path) -> dict[str, FrameModelLike]:
    """The checkpoint through torch and through onnxruntime (full and window exports), by row label."""
    animator = Animator.load(checkpoint, backend="torch")
    module = animator.model.module  # type: ignore[attr-defined]
    full = export_onnx(module, animator.names, folder / f"{label.strip()}full.onnx")
    window = export_onnx(module, animator.names, folder / f"{label.strip()}w.onnx", streaming=True)
    return {
        f"{label}torch": animator.model,  # type: ignore[dict-item]
        f"{label}ort full": OnnxFrameModel(full, threads=1),
        f"{label}ort window": OnnxWindowModel(window, threads=1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", help="a FrameModel checkpoint (default: both bundled ones)")
    parser.add_argument("--seconds", type=float, default=20.0, help="audio streamed per row")
    parser.add_argument("--chunk-ms", type=float, default=10.0, help="audio per push")
    parser.add_argument(
        "--rates", type=int, nargs="+", default=[16_000, 44_100, 48_000], help="input sample rates"
    )
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as a small device would give
    torch.set_num_threads(1)
    backends: dict[str, FrameModelLike] = {}
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        if args.checkpoint:
            checkpoints = {"": Path(args.checkpoint)}
        else:
            checkpoints = {
                "low-lat ": stack.enter_context(bundled_file(BUNDLED_STREAM_CHECKPOINT)),
                "offline ": stack.enter_context(bundled_file(BUNDLED_CHECKPOINT)),
            }
        for label, checkpoint in checkpoints.items():
            backends.update(exports(label, checkpoint, folder))
    for name, model in backends.items():
        print(f"{name}: context {model.context_steps} + look-ahead {model.lookahead_steps} steps")
    print(f"{args.chunk_ms:g} ms chunks, {args.seconds:g} s per row, one core, torch {torch.__version__}\n")
    header = (f"{'backend':<19} {'rate':>6} | {'cpu med':>7} {'push med':>8} {'p99':>6} {'max':>6} | "
              f"{'model med':>9} {'p99':>6} | {'stated':>6} {'mean':>6} {'max':>6} {'+compute':>8} | "
              f"{'frames/s':>9}")  # fmt: skip
    print(header + "\n" + "-" * len(header))
    for rate in args.rates:
        audio = speech(args.seconds, rate)
        for name, model in backends.items():
            r = measure(model, audio, rate, args.chunk_ms)
            ms = {k: v * 1e3 for k, v in r.items() if k != "fps"}
            print(f"{name:<19} {rate:>6} | {ms['cpu_median']:>7.3f} {ms['median']:>8.3f} {ms['p99']:>6.3f} "
                  f"{ms['max']:>6.2f} | "
                  f"{ms['model_median']:>9.3f} {ms['model_p99']:>6.3f} | {ms['stated']:>6.1f} "
                  f"{ms['mean_delay']:>6.1f} {ms['max_delay']:>6.1f} {ms['max_delay'] + ms['p99']:>8.1f} | "
                  f"{r['fps']:>9.0f}")  # fmt: skip
    print("\ntimes in ms; latency: stated = look-ahead + alignment + chunk + resampler; mean/max measured")


if __name__ == "__main__":
    main()
