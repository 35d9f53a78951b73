"""MP3 decoded block by block by FFmpeg (PyAV), damaged frames kept in time as silence.

libsndfile's MP3 decoder corrupts a few hundred samples after some read boundaries when a file is read in
blocks (it is exact only in one whole-file read). FFmpeg's decoder agrees with that whole-file read to about
1e-6 and has the same length (both drop the encoder delay).

MP3s from the wild have damaged frames (a bad copy, a broken download). A media player skips them; failing
the whole file for one would lose the rest, and dropping the frame would move everything after it earlier,
out of sync with the sound. So each frame FFmpeg refuses becomes the frame's length of silence, and the
file's warning says how many, how long and where. A file cut short is warned about when its header
(the Xing/Info frame) promised more.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from audio2blendshape.audio.decode import downmix

if TYPE_CHECKING:
    from av.audio.resampler import AudioResampler
    from av.packet import Packet

log = logging.getLogger(__name__)

MP3_FRAME = 1152  # samples per MPEG-1 layer III frame: the length a damaged packet stands for by default
# The header's length and FFmpeg's decoded length agree to the sample on intact files; the slack covers
# the encoder delay of files whose Info frame counts it.
CUT_SHORT_SLACK = 2 * MP3_FRAME


@dataclass
class DamageReport:
    """What decoding met: frames FFmpeg refused (each replaced by silence of its length)."""

    frames: int = 0  # damaged frames
    samples: int = 0  # silence put in their place, at the file's rate
    first_at: float | None = None  # seconds into the file of the first
    errors: list[str] = field(default_factory=list)  # FFmpeg's words, the first few

    def add(self, at_samples: int, samples: int, rate: int, error: Exception) -> None:
        self.frames += 1
        self.samples += samples
        if self.first_at is None:
            self.first_at = at_samples / rate
        reason = getattr(error, "strerror", None) or str(error)  # FFmpeg's words without its errno
        if reason not in self.errors and len(self.errors) < 3:
            self.errors.append(reason)


def mp3_blocks(path: Path, block: int, report: DamageReport) -> Generator[np.ndarray, None, None]:
    """Mono float32 blocks ``(n,)`` at the file's rate, channels averaged, damaged frames as silence.

    ``report`` is filled in as decoding goes; the caller warns from it once the file has ended.
    """
    import av  # deferred: only MP3 needs it

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate or stream.rate
        to_float = av.AudioResampler(format="flt")  # interleaved float32, same rate and channels
        pending: list[np.ndarray] = []
        held = decoded = 0
        for packet in itertools.chain(container.demux(stream), [None]):  # None flushes the converter
            if packet is None:
                samples = _mono([None], to_float)
            else:
                try:
                    samples = _mono(packet.decode(), to_float)
                except av.error.InvalidDataError as error:
                    samples = [_silence_for(packet, rate, decoded, report, error)]
            for mono in samples:
                pending.append(mono)
                held += len(mono)
                decoded += len(mono)
            if held >= block or (packet is None and pending):
                yield np.concatenate(pending)
                pending, held = [], 0


def _mono(frames: Iterable[Any], to_float: AudioResampler) -> list[np.ndarray]:
    """Decoded audio frames (or [None], which flushes ``to_float``) as mono float32 arrays ``[(n,), ...]``."""
    out = []
    for frame in frames:
        for converted in to_float.resample(frame):
            channels = len(converted.layout.channels)
            out.append(downmix(converted.to_ndarray().reshape(-1, channels)))
    return out


def _silence_for(
    packet: Packet, rate: int, at_samples: int, report: DamageReport, error: Exception
) -> np.ndarray:
    """The silence ``(n,)`` that stands for a packet FFmpeg refused, recorded in ``report``."""
    samples = _packet_length(packet, rate)
    if packet.pts is not None and packet.time_base is not None:  # where the frame was, not the output
        at_samples = round(float(packet.pts * packet.time_base) * rate)
    report.add(at_samples, samples, rate, error)
    return np.zeros(samples, dtype=np.float32)


def _packet_length(packet: Packet, rate: int) -> int:
    """Samples a packet stands for, from its duration and time base; one MP3 frame where it has none."""
    duration, time_base = packet.duration, packet.time_base
    if not duration or time_base is None:
        return MP3_FRAME
    return max(1, round(float(duration * time_base) * rate))


def warn_about_damage(
    source: str, report: DamageReport, decoded: int, promised: int, rate: int, action: str
) -> None:
    """Log what a finished MP3 lacked: damaged frames (as silence), and audio its header promised."""
    if report.frames:
        log.warning(
            "%s: %d damaged MP3 frame%s (%.3f s, the first at %.3f s) replaced by silence (%s)",
            source, report.frames, "" if report.frames == 1 else "s", report.samples / rate,
            report.first_at or 0.0, "; ".join(report.errors),
        )  # fmt: skip
    if promised > 0 and promised - decoded > CUT_SHORT_SLACK:
        held = decoded / rate
        log.warning(
            "%s: the header promises %.2f s but the file holds %.2f s (%.2f s missing); %s the %.2f s "
            "present", source, promised / rate, held, (promised - decoded) / rate, action, held,
        )  # fmt: skip
