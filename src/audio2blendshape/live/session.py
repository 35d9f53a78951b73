"""A live session: chunks pushed through a ``Streamer``, frames sent to the outputs on time.

``stream`` feeds a file (at real-time pace with ``--realtime``, else as fast as it computes) or the
microphone (``sounddevice``, optional) to a ``Streamer`` in ``--chunk-ms`` chunks and sends every frame to the
outputs with its time stamp ``k / fps`` (seconds of stream audio). In real-time mode frame ``k`` is sent at
``start + k / fps + latency``, the stated latency (look-ahead + frame alignment + chunk + resampler +
``COMPUTE_MARGIN_S``): a constant delay, so the animation keeps the audio's timing; a frame computed after
its deadline goes out at once and is counted as late.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from audio2blendshape.live.outputs import LiveOutputs
from audio2blendshape.runtime.streamer import Streamer, StreamFrames

log = logging.getLogger(__name__)

COMPUTE_MARGIN_S = 0.005  # added to the stated latency in real-time mode: per-chunk compute is ~1 ms
LATE_TOLERANCE_S = 0.002  # a frame sent this much after its deadline counts as late


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
        # (time stamp, values (K,), head (3,) radians or None)
        self._pending: deque[tuple[float, np.ndarray, np.ndarray | None]] = deque()

    def add(self, frames: StreamFrames) -> None:
        heads = [None] * len(frames) if frames.head is None else list(frames.head)
        self._pending.extend(zip(frames.times.tolist(), frames.weights, heads, strict=True))
        self.send_due()

    def send_due(self) -> None:
        """Send every pending frame whose deadline has come (every one, when not real time)."""
        while self._pending:
            stamp, values, head = self._pending[0]
            if self.latency_s is not None:
                late = self.clock() - (self.start + stamp + self.latency_s)
                if late < 0:
                    return
                if late > LATE_TOLERANCE_S:
                    self.report.late += 1
                    self.report.worst_late_s = max(self.report.worst_late_s, late)
            self._pending.popleft()
            if head is None:  # outputs written before the head channel take three arguments
                self.outputs.send(stamp, values, self.names)
            else:
                self.outputs.send(stamp, values, self.names, head)
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
