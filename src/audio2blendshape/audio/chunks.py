"""Audio arriving in chunks: a file read block by block, or the microphone (``sounddevice``, optional)."""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable
from typing import Any

import numpy as np
import soundfile

from audio2blendshape.audio.decode import open_sound_file

log = logging.getLogger(__name__)


class FileChunks:
    """A sound file's chunks ``(n, channels)`` float32, read block by block; ``close()`` releases the file
    whether or not the chunks were ever asked for, so an error between opening and streaming leaks nothing."""

    def __init__(self, handle: soundfile.SoundFile, chunk_ms: float) -> None:
        self._handle = handle
        self.sample_rate = int(handle.samplerate)
        self._size = max(1, round(self.sample_rate * chunk_ms / 1000))

    def __iter__(self) -> FileChunks:
        return self

    def __next__(self) -> np.ndarray:
        if self._handle.closed:
            raise StopIteration
        block = self._handle.read(self._size, dtype="float32", always_2d=True)
        if len(block) == 0:
            self.close()
            raise StopIteration
        return block

    def close(self) -> None:
        self._handle.close()


def file_chunks(path: str, chunk_ms: float) -> FileChunks:
    """The file's chunks of ``chunk_ms`` each (its rate is ``sample_rate``).

    The file is checked and opened here (``decode.open_sound_file``: a clear error for what is not audio, a
    warning for a file cut short) and closed at its end or by ``close()``.
    """
    return FileChunks(open_sound_file(path, "streaming"), chunk_ms)


class MicChunks:
    """What an opened (not yet started) sounddevice input stream captures, chunk by chunk ``(n, 1)``
    float32. Capture starts at the first chunk asked for; ``poll()`` runs while waiting for one. ``close()``
    releases the device, started or not: PortAudio holds it from the moment the stream is opened."""

    def __init__(self, stream: Any, captured: queue.Queue[np.ndarray], poll: Callable[[], None]) -> None:
        self._stream = stream
        self._captured = captured
        self._poll = poll
        self._started = False
        self._closed = False

    def __iter__(self) -> MicChunks:
        return self

    def __next__(self) -> np.ndarray:
        if self._closed:
            raise StopIteration
        if not self._started:
            self._stream.start()
            self._started = True
        while True:
            try:
                return self._captured.get(timeout=0.002)
            except queue.Empty:
                self._poll()

    def close(self) -> None:
        if not self._closed:  # closing twice would hand PortAudio a freed stream
            self._closed = True
            self._stream.close()  # an active stream is aborted first


def mic_chunks(rate: int, chunk_ms: float, device: str | None, poll: Callable[[], None]) -> MicChunks:
    """Microphone chunks ``(n, 1)`` float32 as they are captured; ``poll()`` runs while waiting.

    The device is opened here, not at the first chunk, so a missing package or microphone is reported
    before anything else starts (outputs, servers); the caller closes what this returns.
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
    return MicChunks(stream, captured, poll)
