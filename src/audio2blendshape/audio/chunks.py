"""Audio arriving in chunks: a file read block by block, or the microphone (``sounddevice``, optional)."""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable, Generator
from typing import Any

import numpy as np

from audio2blendshape.audio.decode import open_sound_file

log = logging.getLogger(__name__)


def file_chunks(path: str, chunk_ms: float) -> tuple[int, Generator[np.ndarray, None, None]]:
    """The file's sample rate and its chunks ``(n, channels)`` float32 of ``chunk_ms`` each.

    The file is checked and opened here (``decode.open_sound_file``: a clear error for what is not audio, a
    warning for a file cut short) and closed at its end or when the generator is closed.
    """
    handle = open_sound_file(path, "streaming")
    rate = int(handle.samplerate)
    size = max(1, round(rate * chunk_ms / 1000))

    def chunks() -> Generator[np.ndarray, None, None]:
        with handle:
            while True:
                block = handle.read(size, dtype="float32", always_2d=True)
                if len(block) == 0:
                    return
                yield block

    return rate, chunks()


def mic_chunks(
    rate: int, chunk_ms: float, device: str | None, poll: Callable[[], None]
) -> Generator[np.ndarray, None, None]:
    """Microphone chunks ``(n, 1)`` float32 as they are captured; ``poll()`` runs while waiting.

    The device is opened here, not at the first chunk, so a missing package or microphone is reported
    before anything else starts (outputs, servers).
    """
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
    return _captured_chunks(stream, captured, poll)


def _captured_chunks(
    stream: Any, captured: queue.Queue[np.ndarray], poll: Callable[[], None]
) -> Generator[np.ndarray, None, None]:
    """What the opened ``stream`` captures, chunk by chunk, from its start to the generator's close."""
    with stream:
        while True:
            try:
                yield captured.get(timeout=0.002)
            except queue.Empty:
                poll()
