"""The ``stream`` and ``export-onnx`` commands: live animation to VMC / Live Link / WebSocket, and ONNX files.

``stream`` feeds a file (at real-time pace with ``--realtime``, else as fast as it computes) or the
microphone (``sounddevice``, optional) to a ``Streamer`` in ``--chunk-ms`` chunks and sends every frame to the
outputs with its time stamp ``k / fps`` (seconds of stream audio). In real-time mode frame ``k`` is sent at
``start + k / fps + latency``, the stated latency (look-ahead + frame alignment + chunk + resampler +
``COMPUTE_MARGIN_S``): a constant delay, so the animation keeps the audio's timing; a frame computed after
its deadline goes out at once and is counted as late.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import queue
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audio2blendshape.cli import COMMAND_HELP
from audio2blendshape.live import LiveOutputs
from audio2blendshape.streamer import FrameModelLike, Streamer, StreamFrames

log = logging.getLogger(__name__)

COMPUTE_MARGIN_S = 0.005  # added to the stated latency in real-time mode: per-chunk compute is ~1 ms
LATE_TOLERANCE_S = 0.002  # a frame sent this much after its deadline counts as late


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the top-level ``stream`` and ``export-onnx`` commands."""
    _add_stream(subparsers)
    _add_export(subparsers)


def _add_stream(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("stream", help=COMMAND_HELP["stream"])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("input", nargs="?", help="an audio file to stream")
    source.add_argument("--mic", action="store_true", help="stream the default (or --mic-device) microphone")
    parser.add_argument("--vmc", metavar="HOST:PORT", help="VMC/OSC receiver, e.g. 127.0.0.1:39539")
    parser.add_argument(
        "--livelink", metavar="HOST:PORT", help="Unreal Live Link Face receiver, e.g. 127.0.0.1:11111"
    )
    parser.add_argument("--ws", metavar="PORT", help="serve a WebSocket on PORT (127.0.0.1) or HOST:PORT")
    parser.add_argument(
        "--realtime", action="store_true", help="play a file at real-time pace (the mic always is)"
    )
    parser.add_argument(
        "--checkpoint", help="a .safetensors checkpoint, or an .onnx export with --backend onnx"
    )
    parser.add_argument("--backend", choices=("torch", "onnx"), default="torch", help="inference engine")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for inference (default 1)")
    parser.add_argument("--fps", type=float, default=60.0, help="output frames per second")
    parser.add_argument("--chunk-ms", type=float, default=20.0, help="audio per push, 10-100 ms")
    parser.add_argument("--no-idle", dest="idle", action="store_false", help="no blinks or gaze")
    parser.add_argument("--seed", type=int, default=0, help="seed of the idle layer")
    parser.add_argument("--resample-quality", choices=("HQ", "MQ", "LQ", "QQ"), default="HQ",
                        help="soxr quality off 16 kHz: HQ equals offline, LQ/QQ buffer less")  # fmt: skip
    parser.add_argument("--mic-rate", type=int, default=16_000, help="microphone sample rate in Hz")
    parser.add_argument("--mic-device", help="sounddevice input device (name or index)")
    parser.add_argument(
        "--seconds", type=float, help="stop after this much audio (default: the end / Ctrl-C)"
    )
    parser.set_defaults(func=run_stream_command)


def _add_export(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export-onnx", help=COMMAND_HELP["export-onnx"])
    parser.add_argument("--checkpoint", help="a .safetensors checkpoint (default: the bundled one)")
    parser.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    parser.add_argument("--streaming", action="store_true", help="the fixed-window streaming variant")
    parser.add_argument(
        "--new-steps", type=int, default=1, help="--streaming: output steps per call (20 ms each)"
    )
    parser.set_defaults(func=run_export_command)


def run_export_command(args: argparse.Namespace) -> int:
    from audio2blendshape.onnx_backend import OnnxFrameModel, OnnxWindowModel
    from audio2blendshape.onnx_export import OPSET, export_checkpoint

    path = export_checkpoint(args.checkpoint, args.output, args.streaming, args.new_steps)
    loaded = (OnnxWindowModel if args.streaming else OnnxFrameModel)(path)
    inputs = ", ".join(f"{i.name} {i.shape}" for i in loaded.session.get_inputs())
    outputs = ", ".join(f"{o.name} {o.shape}" for o in loaded.session.get_outputs())
    print(f"wrote {path} ({loaded.metadata['variant']}, opset {OPSET}): {inputs} -> {outputs}; "
          f"{len(loaded.names)} shapes, context {loaded.context_steps} + look-ahead {loaded.lookahead_steps} "
          f"steps at {loaded.steps_per_second:g} steps/s")  # fmt: skip
    return 0


def load_frame_model(backend: str, checkpoint: str | None, threads: int | None = 1) -> FrameModelLike:
    """The Streamer's model: torch from a checkpoint, or onnxruntime from an .onnx file (either variant) or a
    checkpoint exported on the fly to the window variant (a temporary file, dropped once loaded)."""
    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be at least 1, got {threads}")
    is_onnx = checkpoint is not None and Path(checkpoint).suffix.lower() == ".onnx"
    if backend == "torch":
        if is_onnx:
            raise ValueError(f"{checkpoint}: an ONNX file needs --backend onnx")
        import torch

        from audio2blendshape.streamer import TorchFrameModel

        if threads is not None:
            torch.set_num_threads(threads)
        return TorchFrameModel.load(checkpoint)
    from audio2blendshape.onnx_backend import OnnxWindowModel, load_onnx_model

    if is_onnx:
        return load_onnx_model(str(checkpoint), threads)
    from audio2blendshape.onnx_export import export_checkpoint

    with tempfile.TemporaryDirectory() as folder:  # the window variant: only the new steps per push
        path = export_checkpoint(checkpoint, Path(folder) / "model.onnx", streaming=True, new_steps=1)
        return OnnxWindowModel(path, threads)


@dataclass
class StreamReport:
    """What a stream did, printed at its end."""

    audio_s: float = 0.0  # seconds of input audio pushed
    frames: int = 0  # frames sent
    late: int = 0  # real-time frames sent more than LATE_TOLERANCE_S after their deadline
    worst_late_s: float = 0.0
    compute_s: list[float] = field(default_factory=list)  # seconds per push

    def summary(self, latency_s: float | None, nonfinite: int) -> str:
        times = sorted(self.compute_s) or [0.0]
        p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
        text = (f"streamed {self.audio_s:.2f} s of audio: {self.frames} frames; compute per chunk median "
                f"{statistics.median(times) * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms")  # fmt: skip
        if latency_s is not None:
            text += f"; latency {latency_s * 1e3:.1f} ms, late frames {self.late}"
            text += f" (worst {self.worst_late_s * 1e3:.1f} ms)" if self.late else ""
        return text + (f"; {nonfinite} NaN/inf samples replaced by 0" if nonfinite else "")


class FrameSender:
    """Sends frames to the outputs: at once, or (real time) each at ``start + time + latency``."""

    def __init__(
        self,
        outputs: LiveOutputs,
        names: tuple[str, ...],
        latency_s: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.outputs, self.names, self.latency_s = outputs, names, latency_s
        self.clock, self.sleep = clock, sleep
        self.start = clock()
        self.report = StreamReport()
        self._pending: deque[tuple[float, np.ndarray]] = deque()  # (time stamp, values (K,))

    def add(self, frames: StreamFrames) -> None:
        self._pending.extend(zip(frames.times.tolist(), frames.weights, strict=True))
        self.send_due()

    def send_due(self) -> None:
        """Send every pending frame whose deadline has come (every one, when not real time)."""
        while self._pending:
            stamp, values = self._pending[0]
            if self.latency_s is not None:
                late = self.clock() - (self.start + stamp + self.latency_s)
                if late < 0:
                    return
                if late > LATE_TOLERANCE_S:
                    self.report.late += 1
                    self.report.worst_late_s = max(self.report.worst_late_s, late)
            self._pending.popleft()
            self.outputs.send(stamp, values, self.names)
            self.report.frames += 1

    def wait_until(self, deadline: float) -> None:
        """Sleep until ``deadline`` (clock seconds), sending frames as they fall due."""
        while True:
            self.send_due()
            now = self.clock()
            if now >= deadline:
                return
            wake = deadline
            if self._pending and self.latency_s is not None:
                wake = min(wake, self.start + self._pending[0][0] + self.latency_s)
            self.sleep(max(0.0, wake - now))

    def drain(self) -> None:
        """Send everything still pending, at its deadline in real time."""
        while self._pending:
            if self.latency_s is None:
                self.send_due()
            else:
                self.wait_until(self.start + self._pending[0][0] + self.latency_s)


def file_chunks(path: str, chunk_ms: float) -> tuple[int, Generator[np.ndarray, None, None]]:
    """The file's sample rate and its chunks ``(n, channels)`` float32 of ``chunk_ms`` each.

    The file is opened when the first chunk is taken and closed at its end or when the generator is closed.
    """
    import soundfile

    try:
        rate = int(soundfile.info(path).samplerate)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        raise ValueError(f"{path}: not a readable audio file ({error})") from error
    size = max(1, round(rate * chunk_ms / 1000))

    def chunks() -> Generator[np.ndarray, None, None]:
        with soundfile.SoundFile(path) as handle:
            while True:
                block = handle.read(size, dtype="float32", always_2d=True)
                if len(block) == 0:
                    return
                yield block

    return rate, chunks()


def mic_chunks(
    rate: int, chunk_ms: float, device: str | None, poll: Callable[[], None]
) -> Generator[np.ndarray, None, None]:
    """Microphone chunks ``(n, 1)`` float32 as they are captured; ``poll()`` runs while waiting."""
    try:
        import sounddevice
    except (ImportError, OSError) as error:  # OSError: the package is there but PortAudio is not
        raise ValueError(f"--mic needs the optional 'sounddevice' package and PortAudio ({error})") from error
    captured: queue.Queue[np.ndarray] = queue.Queue()

    def callback(data: np.ndarray, frames: int, when: Any, status: Any) -> None:
        if status:
            log.warning("microphone: %s", status)
        captured.put(data.copy())

    chosen: str | int | None = int(device) if device is not None and device.isdigit() else device
    size = max(1, round(rate * chunk_ms / 1000))
    try:
        stream = sounddevice.InputStream(samplerate=rate, blocksize=size, channels=1, dtype="float32",
                                         device=chosen, callback=callback)  # fmt: skip
    except Exception as error:  # PortAudio errors: no device, unsupported rate
        raise ValueError(f"cannot open the microphone ({error})") from error
    with stream:
        while True:
            try:
                yield captured.get(timeout=0.002)
            except queue.Empty:
                poll()


def stream_audio(
    streamer: Streamer, chunks: Iterator[np.ndarray], sender: FrameSender, paced: bool, seconds: float | None
) -> StreamReport:
    """Push every chunk, send the frames, then flush. ``paced``: wait for each chunk's capture time (a file
    played in real time); otherwise chunks are taken as they come (as fast as possible, or the microphone,
    whose clock starts with the first chunk)."""
    report = sender.report
    pushed = 0.0
    try:
        for chunk in chunks:
            if seconds is not None and pushed >= seconds:
                break
            duration = len(chunk) / streamer.state.input_rate
            if paced:  # a chunk exists once its last sample has been "captured"
                sender.wait_until(sender.start + pushed + duration)
            elif pushed == 0.0:
                sender.start = sender.clock() - duration  # the microphone began capturing this long ago
            pushed += duration
            began = time.perf_counter()
            frames = streamer.push(chunk)
            report.compute_s.append(time.perf_counter() - began)
            sender.add(frames)
    except KeyboardInterrupt:
        log.info("interrupted: flushing the stream")
    sender.add(streamer.flush())
    sender.drain()
    report.audio_s = streamer.time
    return report


def run_stream_command(args: argparse.Namespace) -> int:
    from audio2blendshape.live import open_live_outputs

    if not 10.0 <= args.chunk_ms <= 100.0:
        raise ValueError(f"--chunk-ms must be within 10..100, got {args.chunk_ms}")
    if not (args.vmc or args.livelink or args.ws):
        raise ValueError("nothing to stream to: give --vmc HOST:PORT, --livelink HOST:PORT or --ws PORT")
    websocket = f"127.0.0.1:{args.ws}" if args.ws and args.ws.isdigit() else args.ws
    model = load_frame_model(args.backend, args.checkpoint, args.threads)
    file_source = None if args.mic else file_chunks(args.input, args.chunk_ms)
    rate = args.mic_rate if file_source is None else file_source[0]
    streamer = Streamer(model, rate, args.fps, args.idle, args.seed, resample_quality=args.resample_quality)
    realtime = args.realtime or args.mic
    latency = streamer.latency(args.chunk_ms / 1000).total_s + COMPUTE_MARGIN_S if realtime else None
    with open_live_outputs(args.vmc, args.livelink, websocket, fps=args.fps) as outputs:
        sender = FrameSender(outputs, streamer.names, latency)
        if file_source is None:
            chunks = mic_chunks(rate, args.chunk_ms, args.mic_device, sender.send_due)
        else:
            chunks = file_source[1]
        if latency is not None:
            print(f"streaming with {latency * 1e3:.1f} ms latency; Ctrl-C stops", file=sys.stderr)
        with contextlib.closing(chunks):
            paced = args.realtime and not args.mic
            report = stream_audio(streamer, chunks, sender, paced, args.seconds)
    print(report.summary(latency, streamer.state.nonfinite_samples))
    return 0
