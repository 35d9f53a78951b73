"""Mono samples for chunked processing: decoded from a file block by block, or held in memory.

The samples are at 16 kHz, or at the source's own rate where that rate is featurised natively
(``audio.mel.featurised_natively``: 44.1 and 48 kHz among others); ``stream.spec`` says which.

A :class:`SampleStream` serves sample ranges to a chunked consumer that moves forward: ``take(start,
stop)`` decodes as far as needed, ``discard(before)`` drops what no later chunk needs, and ``total`` becomes
known once the end has been read. A file is read ``BLOCK_SECONDS`` at a time, downmixed by averaging the
channels and resampled with a streaming soxr resampler, which gives the same samples as
``audio.load_audio``'s one-shot ``soxr.resample`` (HQ), so memory stays bounded on hours of audio.
libsndfile decodes every format except MP3, which FFmpeg (PyAV) decodes (``audio.mp3``).
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import soxr

from audio2blendshape.audio.constants import SAMPLE_RATE
from audio2blendshape.audio.decode import (
    READ_VALUES,
    AudioError,
    AudioInput,
    check_audio_file,
    decoder_reason,
    downmix,
    open_sound_file,
    prepare_waveform,
)
from audio2blendshape.audio.mel import MelSpec, featurised_natively, mel_spec
from audio2blendshape.audio.mp3 import DamageReport, mp3_blocks, warn_about_damage

BLOCK_SECONDS = 10.0  # audio decoded per read
_EMPTY = np.zeros(0, dtype=np.float32)


def feature_rate(rate: int) -> int:
    """The rate audio at ``rate`` Hz is featurised at: its own where that works, else 16 kHz."""
    return rate if featurised_natively(rate) else SAMPLE_RATE


class SampleStream:
    """Mono float32 samples at ``spec.rate``, made block by block, kept only from the last ``discard`` on."""

    def __init__(self, source: str, expected_samples: int | None, rate: int = SAMPLE_RATE) -> None:
        self.source = source  # the file (or "array") named in messages
        self.spec: MelSpec = mel_spec(rate)  # the samples' rate and how frames are cut from them
        self.expected_samples = expected_samples  # a guess for progress bars; None when unknown
        self.total: int | None = None  # the sample count, known once the end has been read
        self._buffer = np.zeros(0, dtype=np.float32)
        self._offset = 0  # sample index of _buffer[0]

    def _next_block(self) -> np.ndarray | None:
        """The next decoded samples ``(n,)``, or None at the end."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the decoder."""

    def fill(self, stop: int) -> None:
        """Decode until samples ``[.., stop)`` are held or the end is reached (then ``total`` is set)."""
        blocks = [self._buffer]
        held = self._offset + len(self._buffer)
        while self.total is None and held < stop:
            block = self._next_block()
            if block is None:
                self.total = held
            else:
                blocks.append(block)
                held += len(block)
        self._buffer = np.concatenate(blocks) if len(blocks) > 1 else self._buffer
        if self.total == 0:
            raise AudioError(f"{self.source}: the audio holds no samples")

    def take(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` (fewer at the end of the audio): ``(n,)`` float32."""
        if start < self._offset:
            raise RuntimeError(f"samples from {start} were already discarded (kept from {self._offset})")
        self.fill(stop)
        return self._buffer[start - self._offset : stop - self._offset]

    def discard(self, before: int) -> None:
        """Forget the samples before index ``before``: later chunks never go back that far."""
        drop = min(max(0, before - self._offset), len(self._buffer))
        self._buffer, self._offset = self._buffer[drop:], self._offset + drop


class ArrayStream(SampleStream):
    """Samples already in memory: ``(n,)`` or ``(n, channels)`` at ``sample_rate``, array or tensor."""

    def __init__(self, audio: np.ndarray | Any, sample_rate: int) -> None:
        if hasattr(audio, "detach"):  # a torch tensor, maybe on a GPU; torch itself is never imported here
            audio = audio.detach().cpu().numpy()
        rate = feature_rate(sample_rate) if isinstance(sample_rate, (int, np.integer)) else SAMPLE_RATE
        samples = prepare_waveform(np.asarray(audio), sample_rate, sample_rate=rate)
        super().__init__("array", len(samples), rate)
        self._buffer, self.total = samples, len(samples)

    def _next_block(self) -> np.ndarray | None:
        return None


def _libsndfile_blocks(file: soundfile.SoundFile, block: int) -> Generator[np.ndarray, None, None]:
    """Mono float32 blocks ``(n,)`` at the file's rate, channels averaged as in ``prepare_waveform``."""
    with file:
        while True:
            data = file.read(block, dtype="float32", always_2d=True)
            if len(data):
                yield downmix(data)
            if len(data) < block:
                return


class FileStream(SampleStream):
    """An audio file decoded block by block, downmixed and (unless featurised natively) resampled to 16 kHz
    as ``load_audio`` does."""

    def __init__(self, path: str | Path) -> None:
        path = check_audio_file(path)
        file = open_sound_file(path, "animating")
        rate, target = file.samplerate, feature_rate(file.samplerate)
        super().__init__(str(path), file.frames * target // rate if file.frames > 0 else None, target)
        # A header may claim up to 1024 channels: bound the block by samples x channels, not seconds alone.
        block = max(1, min(round(BLOCK_SECONDS * rate), READ_VALUES // 16 // file.channels))
        self._rate, self._read, self._done = rate, 0, False
        self._file, self._mp3 = file, None
        if file.format == "MP3" or file.subtype.startswith("MPEG_LAYER"):
            file.close()
            self._mp3 = DamageReport()
            self._blocks = mp3_blocks(path, block, self._mp3)
        else:
            self._blocks = _libsndfile_blocks(file, block)
        # Streaming soxr gives the same samples as the one-shot soxr.resample of load_audio.
        self._resampler = (
            None if rate == target else soxr.ResampleStream(rate, SAMPLE_RATE, 1, "float32", "HQ")
        )

    def _next_block(self) -> np.ndarray | None:
        if self._done:
            return None
        try:
            mono = next(self._blocks, None)
        except Exception as error:  # libsndfile and FFmpeg raise their own error types mid-file
            where = f"{self.source}: decoding failed after {self._read / self._rate:.3f} s"
            raise AudioError(f"{where} ({decoder_reason(error)})") from error
        if mono is None:  # the end: flush what the resampler still holds
            self._done = True
            if self._mp3 is not None:
                promised = self._file.frames
                warn_about_damage(self.source, self._mp3, self._read, promised, self._rate, "animating")
            if self._resampler is None:
                return None
            return self._resampler.resample_chunk(_EMPTY, last=True).astype(np.float32, copy=False)
        bad = ~np.isfinite(mono)
        if bad.any():
            first = self._read + int(np.argmax(bad))
            raise AudioError(
                f"{self.source}: samples are NaN or infinite (first at {first / self._rate:.3f} s)"
            )
        self._read += len(mono)
        if self._resampler is not None:
            mono = self._resampler.resample_chunk(mono)
        return np.ascontiguousarray(mono, dtype=np.float32)

    def close(self) -> None:
        self._blocks.close()
        self._file.close()


def open_stream(audio: AudioInput, sample_rate: int) -> SampleStream:
    """A sample stream over a path (decoded block by block) or an array/tensor at ``sample_rate``."""
    if isinstance(audio, (str, Path)):
        return FileStream(audio)
    return ArrayStream(audio, sample_rate)
