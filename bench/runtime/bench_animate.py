"""Speed and memory of ``animate``: real-time factor end to end and per stage, peak memory on long audio.

    .venv/bin/python bench/runtime/bench_animate.py [--minutes 10] [--memory-minutes 60]
        [--simplified-seconds 60] [--checkpoint P] [--threads 2]

Test audio is examples/hello.wav repeated with 0.3 s pauses, written once as 16 kHz PCM WAV under
/tmp/a2b_bench. Rows:

* end to end: ``Animator.animate(path)`` + CSV write at 60 fps on the whole file (decode -> features ->
  model -> resample + idle -> CSV), after one warm-up call, in this process;
* per stage: each stage alone on the same file with the same 60 s chunks (decode drains the decoder;
  features and model use the chunk ranges ``animate`` uses, overlaps included);
* peak memory: VmHWM and ``ru_maxrss`` of a fresh subprocess that animates the long file and writes the
  CSV, next to one that only imports and loads the checkpoint (run first, while this process is small);
* SimplifiedModel (seed architecture, default config, random weights) is run on the first
  ``--simplified-seconds`` of the file only and extrapolated to the whole file; FrameModel on the whole file.

The real-time factor is audio seconds / wall seconds (higher is faster). CPU seconds are shown as well:
on a shared machine both suffer from other processes' load, which is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch

from audio2blendshape.audio.constants import HOP_LENGTH, SAMPLE_RATE
from audio2blendshape.audio.sample_stream import FileStream
from audio2blendshape.models.simplified import SimplifiedModel
from audio2blendshape.names import ARKIT_NAMES
from audio2blendshape.runtime.animator import CHUNK_SECONDS, Animator, chunk_features
from audio2blendshape.runtime.frame_rate import resample
from audio2blendshape.runtime.idle import apply_idle
from audio2blendshape.runtime.writers import Animation, CsvWriter
from audio2blendshape.training.checkpoint import load_checkpoint
from audio2blendshape.training.config import Config

REPO = Path(__file__).resolve().parents[2]
WORK = Path("/tmp/a2b_bench")
FPS = 60.0


def speech_file(seconds: float) -> Path:
    """A 16 kHz WAV of ``seconds`` of examples/hello.wav repeated with 0.3 s pauses (made once)."""
    path = WORK / f"speech_{round(seconds)}s.wav"
    if path.is_file() and soundfile.info(str(path)).frames == round(seconds * SAMPLE_RATE):
        return path
    hello, rate = soundfile.read(REPO / "examples" / "hello.wav", dtype="float32")
    unit = np.concatenate([hello, np.zeros(int(0.3 * rate), np.float32)])
    total = round(seconds * SAMPLE_RATE)
    WORK.mkdir(parents=True, exist_ok=True)
    with soundfile.SoundFile(str(path), "w", SAMPLE_RATE, 1, "PCM_16") as out:
        for start in range(0, total, len(unit)):
            out.write(unit[: min(len(unit), total - start)])
    return path


class Clock:
    """Wall and CPU seconds of a ``with`` block."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def end_to_end(animator: Animator, path: Path) -> tuple[float, float]:
    """(wall, cpu) seconds of animate + CSV write of ``path``."""
    animator.animate(REPO / "examples" / "hello.wav")  # warm-up: first calls allocate and pick kernels
    with Clock() as clock:
        animator.animate(path, fps=FPS).write(WORK / "end_to_end.csv")
    return clock.wall, clock.cpu


@torch.inference_mode()
def stages(animator: Animator, path: Path) -> dict[str, tuple[float, float]]:
    """(wall, cpu) seconds of each stage alone, with ``animate``'s chunking."""
    model: Any = animator.model  # numpy in, numpy out: what animate() runs (a frame model here)
    assert model.kind == "frame"
    spent: dict[str, tuple[float, float]] = {}
    with Clock() as clock:
        stream = FileStream(path)
        stream.fill(sys.maxsize)
    spent["decode (read + downmix + resample)"] = (clock.wall, clock.cpu)
    assert stream.total is not None
    steps, chunk = stream.total // HOP_LENGTH // 2, round(CHUNK_SECONDS * 50)
    ranges = [(max(0, b - model.context_steps), min(steps, b + chunk + model.lookahead_steps))
              for b in range(0, steps, chunk)]  # fmt: skip
    with Clock() as clock:
        mels = [chunk_features(stream, 2 * low, 2 * high) for low, high in ranges]
    spent["features (log-mel per chunk)"] = (clock.wall, clock.cpu)
    with Clock() as clock:
        values = np.concatenate([model(mel[None])[0] for mel in mels])[:steps]
    spent["model (FrameModel per chunk)"] = (clock.wall, clock.cpu)
    with Clock() as clock:
        frames = resample(model.step_times(steps), values, stream.total / SAMPLE_RATE, FPS)
        weights = apply_idle(frames, FPS)
    spent["resample to 60 fps + idle layer"] = (clock.wall, clock.cpu)
    animation = Animation(ARKIT_NAMES, FPS, weights, stream.total / SAMPLE_RATE)
    with Clock() as clock:
        CsvWriter()(animation, WORK / "stages.csv")
    spent["write Live Link Face CSV"] = (clock.wall, clock.cpu)
    return spent


def simplified_vs_frame(frame: Animator, path: Path, seconds: float) -> tuple[float, float]:
    """Wall seconds per audio second of the SimplifiedModel (first ``seconds``) and the FrameModel (all)."""
    torch.manual_seed(0)
    simplified = Animator(SimplifiedModel(len(ARKIT_NAMES), Config().simplified).eval(), ARKIT_NAMES)
    audio, _ = soundfile.read(str(path), dtype="float32", frames=round(seconds * SAMPLE_RATE))
    simplified.poses(audio[:SAMPLE_RATE])  # warm-up
    with Clock() as clock:
        simplified.poses(audio)
    with Clock() as frame_clock:
        frame.poses(path)
    return clock.wall / seconds, frame_clock.wall / soundfile.info(str(path)).duration


def peak_rss_mb(args: list[str]) -> tuple[float, float]:
    """Peak resident MB of ``python bench_animate.py --child ARGS``: (VmHWM, ru_maxrss) of the child."""
    command = [sys.executable, __file__, "--child", *args]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    hwm, maxrss = result.stdout.split()[-2:]
    return float(hwm), float(maxrss)


def child(args: list[str]) -> None:
    """Subprocess body: load (and animate ``args[1]`` when given), then print VmHWM and ru_maxrss in MB.

    ru_maxrss can carry over the parent's size from before exec; VmHWM belongs to the new image alone.
    """
    torch.set_num_threads(int(args[0]))
    animator = Animator.load(args[2] if len(args) > 2 and args[2] else None)
    if args[1]:
        animator.animate(args[1], fps=FPS).write(WORK / "memory.csv")
    status = Path("/proc/self/status").read_text() if Path("/proc/self/status").exists() else ""
    hwm = [line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")] or ["nan"]
    print(float(hwm[0]) / 1024, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the speed test file")
    parser.add_argument("--memory-minutes", type=float, default=60.0, help="length of the memory test file")
    parser.add_argument("--simplified-seconds", type=float, default=60.0, help="SimplifiedModel audio cap")
    parser.add_argument("--checkpoint", default="", help="FrameModel checkpoint (default: bundled)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    torch.set_num_threads(args.threads)
    # Memory first, in fresh processes started while this one is still small.
    memory_file = speech_file(args.memory_minutes * 60)
    base = peak_rss_mb([str(args.threads), "", args.checkpoint])
    peak = peak_rss_mb([str(args.threads), str(memory_file), args.checkpoint])
    animator = Animator.load(args.checkpoint or None)
    speed_file, audio_s = speech_file(args.minutes * 60), args.minutes * 60
    kind = load_checkpoint(args.checkpoint).config.model.kind if args.checkpoint else "frame (bundled)"
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"{args.minutes:g} min of speech, {kind} model, {args.threads} torch threads, {FPS:g} fps CSV, "
          f"{CHUNK_SECONDS:g} s chunks; load average before: {load}\n")  # fmt: skip
    print("| measurement | wall s | CPU s | real-time factor |\n|---|---:|---:|---:|")
    wall, cpu = end_to_end(animator, speed_file)
    print(
        f"| end to end: decode -> features -> model -> CSV | {wall:.2f} | {cpu:.2f} | {audio_s / wall:.0f}x |"
    )
    for name, (wall, cpu) in stages(animator, speed_file).items():
        print(f"| stage: {name} | {wall:.2f} | {cpu:.2f} | {audio_s / wall:.0f}x |")
    simplified, frame = simplified_vs_frame(animator, speed_file, args.simplified_seconds)
    print(f"| SimplifiedModel poses, {args.simplified_seconds:g} s run, extrapolated to {args.minutes:g} min "
          f"| {simplified * audio_s:.1f} | | {1 / simplified:.1f}x |")  # fmt: skip
    print(f"| FrameModel poses, whole file | {frame * audio_s:.2f} | | {1 / frame:.0f}x |")
    print("\n| peak memory of a fresh process | VmHWM MB | ru_maxrss MB |\n|---|---:|---:|")
    print(f"| import + load checkpoint | {base[0]:.0f} | {base[1]:.0f} |")
    print(f"| animate {args.memory_minutes:g} min file + write CSV | {peak[0]:.0f} | {peak[1]:.0f} |")
    print(f"\nload average after: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
