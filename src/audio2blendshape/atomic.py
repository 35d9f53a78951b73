"""Atomic file writes: a temporary file beside the target, fsynced, then renamed over it.

Every output the package writes (animations, corpus files, previews) goes through here, so a kill or a full
disk never leaves a half-written file under the name a user or a later step reads. Inside
``deferred_sync()`` the per-file fsync is left out and one ``os.sync()`` at the end of the block stands
for them all: for commands that write many small files, where an fsync costs more than the work.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path

import numpy as np
import soundfile

from audio2blendshape.audio.constants import SAMPLE_RATE

FILE_UMASK = os.umask(0o022)  # read once so temp files get the mode a plain open() would give them
os.umask(FILE_UMASK)
# Inside deferred_sync(): the number of files written without their own fsync; None outside.
_UNSYNCED: ContextVar[list[int] | None] = ContextVar("audio2blendshape_unsynced", default=None)


@contextlib.contextmanager
def deferred_sync() -> Iterator[None]:
    """Atomic writes in this block skip their fsync; one ``os.sync()`` when it ends makes them durable.

    A kill still never leaves a half-written file under its name (each is renamed only once written);
    what is given up is durability file by file: a power cut inside the block may lose files written in
    it. When the block is over, every file is on disk, as if each had been fsynced.
    """
    token = _UNSYNCED.set([0])
    try:
        yield
    finally:
        unsynced = _UNSYNCED.get()
        _UNSYNCED.reset(token)
        if unsynced and unsynced[0]:
            os.sync()


def atomic_write(path: Path, write: Callable[[io.BufferedWriter], None]) -> None:
    """Call ``write`` on a temp file beside ``path``, fsync it, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # The leading dot keeps half-written files out of every glob the corpus does.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~FILE_UMASK)  # mkstemp makes files private (0600)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            if (unsynced := _UNSYNCED.get()) is None:
                os.fsync(handle.fileno())
            else:
                unsynced[0] += 1
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    data = text.encode("utf-8")

    def write(handle: io.BufferedWriter) -> None:
        handle.write(data)

    atomic_write(path, write)


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    """Save ``array`` as ``.npy`` at ``path`` atomically."""
    atomic_write(path, lambda handle: np.save(handle, array, allow_pickle=False))


def atomic_write_wav(path: Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Write mono float samples ``(n,)`` as PCM_16 WAV atomically (clipped to [-1, 1] so nothing wraps)."""
    clipped = np.clip(samples, -1.0, 1.0)
    atomic_write(path, lambda handle: soundfile.write(handle, clipped, rate, subtype="PCM_16", format="WAV"))
