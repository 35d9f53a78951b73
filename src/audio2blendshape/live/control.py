"""Live direction of a running stream: change its emotion by a WebSocket command or an OSC message.

Both reach ``Streamer.set_emotion``, which is thread-safe and ramps the change (never a snap):

* WebSocket (text message to the ``--ws`` server)::

      {"type": "expression", "emotion": "happy", "intensity": 0.6, "ramp_s": 0.4}

  ``intensity`` defaults to 1 and ``ramp_s`` to the stream's ramp. The server answers
  ``{"type": "expression", "ok": true}`` or ``{"type": "error", "error": "..."}``.
* OSC (UDP, ``--osc-in PORT``, bound to 127.0.0.1): ``/a2b/emotion s [f [f]]``: preset name, then
  optional intensity and ramp in seconds.

Anything else is answered with an error (WebSocket) or logged (OSC); a bad command never stops the stream.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from typing import Any, Protocol

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import ThreadingOSCUDPServer

from audio2blendshape.live.sink import LiveOutputError

log = logging.getLogger(__name__)

OSC_EMOTION = "/a2b/emotion"  # the OSC address of an emotion change


class EmotionTarget(Protocol):
    """What commands change: a ``runtime.streamer.Streamer``."""

    def set_emotion(self, preset: str, intensity: float = 1.0, ramp_s: float | None = None) -> None: ...


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


def _parse_command(text: str | bytes) -> dict[str, Any]:
    """A WebSocket message as an expression command; a ValueError saying what is wrong else."""
    try:
        command = json.loads(text)
    except ValueError as error:  # json's message alone ("Expecting value ...") does not say what failed
        raise ValueError(f"not a JSON command ({error})") from error
    if not isinstance(command, dict) or command.get("type") != "expression":
        raise ValueError('expected {"type": "expression", "emotion": NAME, "intensity": X}')
    unknown = set(command) - {"type", "emotion", "intensity", "ramp_s"}
    if unknown:
        raise ValueError(f"unknown keys {', '.join(sorted(unknown))}")
    return command


class ExpressionCommands:
    """Turns commands into ``set_emotion`` calls on ``target``; counts what it applied and refused."""

    def __init__(self, target: EmotionTarget) -> None:
        self.target = target
        self.applied = 0
        self.refused = 0

    def emotion(self, preset: Any, intensity: Any = 1.0, ramp_s: Any = None) -> None:
        """Apply one change; a ValueError (unknown preset, bad number) when it cannot be."""
        if not isinstance(preset, str):
            raise ValueError(f"emotion must be a preset name, got {preset!r}")
        ramp = None if ramp_s is None else _number(ramp_s, "ramp_s")
        self.target.set_emotion(preset, _number(intensity, "intensity"), ramp)
        self.applied += 1

    def handle_json(self, text: str | bytes) -> str:
        """One WebSocket message -> the JSON reply."""
        try:
            command = _parse_command(text)
            self.emotion(command.get("emotion"), command.get("intensity", 1.0), command.get("ramp_s"))
        except (ValueError, RecursionError) as error:
            self.refused += 1
            return json.dumps({"type": "error", "error": str(error)})
        return json.dumps({"type": "expression", "ok": True})

    def handle_osc(self, address: str, *args: Any) -> None:
        """One OSC message: ``/a2b/emotion name [intensity [ramp_s]]``; errors are logged."""
        try:
            if not 1 <= len(args) <= 3:
                raise ValueError(f"{address} takes a preset name, then optional intensity and ramp_s")
            self.emotion(*args)
        except ValueError as error:
            self.refused += 1
            log.warning("OSC %s %s refused: %s", address, list(args), error)


class OscControl:
    """An OSC server on ``host:port`` (UDP, default loopback) that feeds ``commands``; port 0 picks one."""

    def __init__(self, commands: ExpressionCommands, port: int, host: str = "127.0.0.1") -> None:
        dispatcher = Dispatcher()
        dispatcher.map(OSC_EMOTION, commands.handle_osc)
        dispatcher.set_default_handler(lambda address, *args: log.info("OSC %s ignored", address))
        try:
            self.server = ThreadingOSCUDPServer((host, port), dispatcher)
        except OSError as error:
            raise LiveOutputError(f"OSC input on {host}:{port}: cannot listen ({error})") from error
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, name="osc-in", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving; idempotent."""
        if self._thread.is_alive():
            self.server.shutdown()
            self._thread.join()
        self.server.server_close()

    def __enter__(self) -> OscControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
