"""Atomic file writes: a temporary file beside the target, fsynced, then renamed over it.

Every output the package writes (animations, corpus files, previews) goes through here, so a kill or a full
disk never leaves a half-written file under the name a user or a later step reads.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile

from audio2blendshape.audio.constants import SAMPLE_RATE

FILE_UMASK = os.umask(0o022)  # read once so temp files get the mode a plain open() would give them
os.umask(FILE_UMASK)


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
            os.fsync(handle.fileno())
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
