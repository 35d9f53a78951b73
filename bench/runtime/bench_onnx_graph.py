"""Two or more ONNX exports of a model side by side under onnxruntime alone; prints a table.

    .venv/bin/python bench/runtime/bench_onnx_graph.py A.onnx B.onnx [...] [--calls 30] [--rounds 7]

Each round runs ``--calls`` calls of every file in turn, each call on the same 20.6 s of speech features
(examples/hello.wav looped, 2060 mel frames, as ``animate`` cuts a long file). The table gives each file's
median round and the first file's median over it. For example, the export before a graph change against
the one after: ``git show <commit>:src/audio2blendshape/assets/default.onnx > /tmp/before.onnx``. The last
columns say how far each file's output is from the first's on that chunk (largest and mean absolute
difference of the weights), so a faster graph that computes something else shows it; e.g. an int8 copy,
``onnxruntime.quantization.quantize_dynamic(src, dst, op_types_to_quantize=["MatMul"])``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime

from audio2blendshape.audio.decode import load_audio
from audio2blendshape.audio.mel import log_mel

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello.wav"
FRAMES = 2060  # a 20 s chunk and its context, as animate's chunks


def session(path: str) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as the runtime runs it
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", help="ONNX files of the 'full' variant")
    parser.add_argument("--calls", type=int, default=30, help="calls per file per round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds, alternating the files")
    args = parser.parse_args()
    audio = load_audio(HELLO)
    mel = log_mel(np.resize(audio, FRAMES * 160 + 160))[None, :FRAMES]
    sessions = [session(f) for f in args.files]
    seconds: list[list[float]] = [[] for _ in args.files]
    for _ in range(args.rounds):
        for index, runner in enumerate(sessions):
            began = time.perf_counter()
            for _ in range(args.calls):
                runner.run(None, {"mel": mel})
            seconds[index].append(time.perf_counter() - began)
    first = statistics.median(seconds[0])
    outputs = [runner.run(None, {"mel": mel})[0] for runner in sessions]
    print(f"{args.calls} calls of {FRAMES} mel frames per round, {args.rounds} rounds\n")
    print("| file | median s per round | ms per call | first / this | max abs diff | mean abs diff |")
    print("|---|---:|---:|---:|---:|---:|")
    for path, times, output in zip(args.files, seconds, outputs, strict=True):
        median = statistics.median(times)
        difference = np.abs(output - outputs[0])
        print(
            f"| {path} | {median:.3f} | {1000 * median / args.calls:.2f} | {first / median:.2f}x "
            f"| {difference.max():.2e} | {difference.mean():.2e} |"
        )


if __name__ == "__main__":
    main()
