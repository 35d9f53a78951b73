"""``LiveOutputs``: one frame at a time to every configured sink (VMC, Live Link UDP, WebSocket)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from audio2blendshape.live.livelink_udp import LiveLinkSender
from audio2blendshape.live.sink import Names, Sink, SinkStats
from audio2blendshape.live.vmc import VmcSender
from audio2blendshape.live.websocket import WebSocketServer


class LiveOutputs:
    """Sends each frame to every configured sink; ``close()`` closes them all."""

    def __init__(self, sinks: Sequence[Sink]) -> None:
        self.sinks = list(sinks)

    def send(self, time_s: float, values: np.ndarray, names: Names, head: np.ndarray | None = None) -> None:
        """One frame (values (K,) for K names at ``time_s`` s, head (3,) radians or None) to every sink."""
        for sink in self.sinks:
            if head is None:  # sinks written before the head channel keep working
                sink.send(time_s, values, names)
            else:
                sink.send(time_s, values, names, head)

    def stats(self) -> dict[str, SinkStats]:
        """Counters per sink, keyed by the sink's description (e.g. ``"VMC output to 127.0.0.1:39539"``)."""
        return {getattr(sink, "where", type(sink).__name__): sink.stats for sink in self.sinks}

    def close(self) -> None:
        """Close every sink, even when one fails; the first failure is raised afterwards."""
        first: BaseException | None = None
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as error:  # keep closing the others: each holds a socket or a thread
                first = first or error
        self.sinks = []
        if first is not None:
            raise first

    def __enter__(self) -> LiveOutputs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_live_outputs(
    vmc: str | None = None,
    livelink: str | None = None,
    websocket: str | None = None,
    livelink_subject: str = "audio2blendshape",
    fps: float = 60.0,
    on_message: Callable[[str | bytes], str | None] | None = None,
) -> LiveOutputs:
    """Build the sinks named by ``"HOST:PORT"`` strings (None = off); all are closed if one fails.

    ``on_message`` answers what WebSocket clients send (``live.control.ExpressionCommands.handle_json``).
    """
    outputs = LiveOutputs([])
    try:
        if vmc:
            outputs.sinks.append(VmcSender(vmc))
        if livelink:
            outputs.sinks.append(LiveLinkSender(livelink, subject=livelink_subject, fps=fps))
        if websocket:
            outputs.sinks.append(WebSocketServer(websocket, on_message=on_message))
    except BaseException:
        outputs.close()
        raise
    return outputs
