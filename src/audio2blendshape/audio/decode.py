"""Decoding audio to 16 kHz mono float32 samples, and the checks every reader makes.

Anything libsndfile reads (WAV, FLAC, OGG, MP3) is decoded, downmixed by averaging the channels and resampled
with soxr (HQ). numpy only: the runtime deploys this module without torch.

Files are untrusted: a header can claim any sample rate and any length. ``open_sound_file`` refuses sample
rates no audio has (a damaged rate field would otherwise turn seconds into days of resampled audio), warns
when a header promises more audio than the file holds (a file cut short in a copy or a download), and
``load_audio`` never allocates for more frames than a bounded first read, whatever the header claims.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import soundfile
import soxr

from audio2blendshape.audio.constants import SAMPLE_RATE

# A path, or samples (n,) / (n, channels): numpy arrays, or anything np.asarray takes (a CPU torch tensor).
AudioInput: TypeAlias = "str | Path | np.ndarray | Any"

log = logging.getLogger(__name__)

MIN_FILE_RATE, MAX_FILE_RATE = 4_000, 768_000  # Hz; outside this a header's rate field is damaged
READ_VALUES = 2**27  # samples x channels one read allocates (512 MiB of float32), whatever the header claims
LIBSNDFILE_ERRORS = (soundfile.LibsndfileError, RuntimeError, TypeError)
# libsndfile's log line for a data chunk longer than the file: WAV "data", AIFF "SSND", AU "Data Size".
_PROMISED = re.compile(r"^\s*(?:data|SSND|Data Size)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
# libsndfile's MP3 probe reports content it cannot parse as a missing file, which misleads.
_MISLEADING = "does not exist or is not a regular file"
_STDERR_SWAP = threading.Lock()  # held while file descriptor 2 points at a capture file


class AudioError(ValueError):
    """Audio that cannot be used, with the file (or 'array') named in the message."""


def check_audio_file(path: str | Path) -> Path:
    """The path, after the checks every reader makes first: it exists and is not empty."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: the file is empty (0 bytes)")
    return path


def decoder_reason(error: BaseException) -> str:
    """What libsndfile said, without its own copy of the path, and in words where its words mislead."""
    text = str(getattr(error, "error_string", None) or error).strip().removeprefix("Error : ").rstrip(".")
    if _MISLEADING in text:
        return "no audio format recognised in its content: not audio, or a damaged header"
    return text


def open_sound_file(path: str | Path, action: str = "reading") -> soundfile.SoundFile:
    """The file opened by libsndfile after the checks: a plausible rate, a warning if it is cut short.

    ``action`` ("reading", "animating") ends the warning, which says what happens to the part present.
    """
    path = check_audio_file(path)
    try:
        with decoder_chatter_to_debug(path):
            file = soundfile.SoundFile(str(path))
    except LIBSNDFILE_ERRORS as error:
        raise AudioError(f"{path}: not a readable audio file ({decoder_reason(error)})") from error
    if not MIN_FILE_RATE <= file.samplerate <= MAX_FILE_RATE:
        file.close()
        raise AudioError(
            f"{path}: the header's sample rate of {file.samplerate} Hz is not audio "
            f"({MIN_FILE_RATE}-{MAX_FILE_RATE} Hz expected); the file is damaged"
        )
    _warn_if_cut_short(file, path, action)
    return file


@contextlib.contextmanager
def decoder_chatter_to_debug(path: Path) -> Iterator[None]:
    """Send what C libraries print on stderr meanwhile to the debug log (shown with ``-v``).

    libsndfile's MP3 probe lets libmpg123 print its notes ("Illegal Audio-MPEG-Header", "Xing stream size
    off") straight to file descriptor 2, where Python's logging cannot filter them. The window is one
    header probe, so another thread's stderr line rarely falls in it, and then goes to the debug log too.
    """
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    # One window at a time: two overlapping ones would restore each other's sink as stderr for good.
    with _STDERR_SWAP, tempfile.TemporaryFile() as sink:
        try:
            saved = os.dup(2)
        except OSError:  # no stderr to guard (a daemon with fd 2 closed)
            yield
            return
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            chatter = sink.read().decode("utf-8", "replace").strip()
            if chatter:
                log.debug("%s: the decoder said: %s", path, chatter)


def _warn_if_cut_short(file: soundfile.SoundFile, path: Path, action: str) -> None:
    """Log a warning when the header's data size exceeds what follows it in the file."""
    match = _PROMISED.search(file.extra_info)
    if match is None or file.frames <= 0:
        return
    promised_bytes, present_bytes = int(match[1]), int(match[2])
    held = file.frames / file.samplerate
    # Bytes per frame from what is present, so compressed WAV subtypes scale the same way as PCM.
    promised = held * promised_bytes / max(present_bytes, 1)
    if promised - held >= 1 / file.samplerate:
        log.warning(
            "%s: the header promises %.2f s but the file holds %.2f s (%.2f s missing); %s the %.2f s "
            "present", path, promised, held, promised - held, action, held,
        )  # fmt: skip


def read_frames(file: soundfile.SoundFile) -> np.ndarray:
    """Every frame as float32 ``(n, channels)``: in one read where the header's length is modest (libsndfile's
    MP3 decoder is exact only then), in bounded reads where it claims more, since it may lie."""
    size = max(1, READ_VALUES // file.channels)
    wanted = min(file.frames, size) if file.frames > 0 else size
    blocks: list[np.ndarray] = []
    while True:
        blocks.append(file.read(wanted, dtype="float32", always_2d=True))
        if len(blocks[-1]) < wanted:
            kept = [block for block in blocks if len(block)] or blocks[:1]
            return kept[0] if len(kept) == 1 else np.concatenate(kept)  # one block: no copy of a long file
        wanted = size


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read WAV/FLAC/OGG/MP3 (anything libsndfile reads), downmix to mono, resample.

    Returns float32 samples of shape ``(n,)`` at ``sample_rate``.
    """
    with open_sound_file(path) as file:
        try:
            chatty = file.format == "MP3"  # libmpg123 prints its resync notes on damaged frames
            with decoder_chatter_to_debug(Path(path)) if chatty else contextlib.nullcontext():
                data = read_frames(file)
        except LIBSNDFILE_ERRORS as error:
            raise AudioError(f"{path}: decoding failed ({decoder_reason(error)})") from error
        rate = file.samplerate
    return prepare_waveform(data, rate, str(path), sample_rate)


def downmix(samples: np.ndarray) -> np.ndarray:
    """``(n, channels)`` samples averaged to mono ``(n,)``, as every reader and the Streamer do it.

    A damaged float file can hold inf and -inf, whose mean is NaN; numpy's warning about it is silenced
    because every caller checks for non-finite samples and reports them itself, naming the file or chunk.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        return samples.mean(axis=1)


def prepare_waveform(
    samples: np.ndarray, rate: int, source: str = "array", sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """Validate, downmix ``(n,)`` or ``(n, channels)`` samples to mono and resample to ``sample_rate``."""
    samples = np.asarray(samples)
    if samples.ndim == 2:
        samples = downmix(samples)
    elif samples.ndim != 1:
        raise AudioError(f"{source}: expected samples of shape (n,) or (n, channels), got {samples.shape}")
    if samples.size == 0:
        raise AudioError(f"{source}: the audio holds no samples")
    samples = samples.astype(np.float32, copy=False)
    bad = ~np.isfinite(samples)
    if bad.any():
        first = int(np.argmax(bad))
        raise AudioError(
            f"{source}: {int(bad.sum())} samples are NaN or infinite "
            f"(first at {first / rate:.3f} s, sample {first})"
        )
    if rate <= 0:
        raise AudioError(f"{source}: invalid sample rate {rate}")
    if rate != sample_rate:
        samples = soxr.resample(samples, rate, sample_rate, quality="HQ").astype(np.float32, copy=False)
    return np.ascontiguousarray(samples)


def require_signal(samples: np.ndarray, source: str) -> None:
    """Reject digital silence where a clip must carry speech (training data, alignment)."""
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak == 0.0:
        raise AudioError(f"{source}: the audio is silent (every sample is zero)")
