"""Channel degradations real recordings go through: lossy codecs and the telephone line.

``augment.py`` models the room and the microphone (reverb, noise, band-limiting, level). What it leaves out
is what happens to speech after recording: a voice call squeezes it through 8 kHz mu-law, and shared clips
pass through MP3 or Opus at low bit rates, which smear the spectrum in ways no filter does. Both are done
with the real codecs (FFmpeg through PyAV), and the result is put back at the input's exact timing: encoders
add delay, so the decoded audio is aligned to the input by cross-correlation before it is returned. A label
made from the clean audio's phoneme timing therefore stays valid for the degraded copy.
"""

from __future__ import annotations

import io
from typing import cast

import av
import numpy as np
import soxr
from av.audio.stream import AudioStream

from audio2blendshape.audio.constants import SAMPLE_RATE
from audio2blendshape.data.augment import band_limit

CODECS = {"mp3": ("mp3", "libmp3lame"), "opus": ("ogg", "libopus")}  # name -> (container, FFmpeg encoder)
MAX_DELAY = 4096  # samples; encoder delays are well below this (MP3 ~1105 + 529, Opus pre-skip 312)
TELEPHONE_RATE = 8_000  # Hz; narrowband telephony
MU = 255.0  # mu-law companding constant (G.711)


def _encode(audio: np.ndarray, codec: str, bitrate: int) -> bytes:
    container, encoder = CODECS[codec]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as out:
        stream = cast(AudioStream, out.add_stream(encoder, rate=48_000 if codec == "opus" else SAMPLE_RATE))
        stream.bit_rate = bitrate
        stream.layout = "mono"
        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return buffer.getvalue()


def _decode(data: bytes) -> np.ndarray:
    chunks = []
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    with av.open(io.BytesIO(data), "r") as source:
        for frame in source.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def align_to(reference: np.ndarray, delayed: np.ndarray, max_delay: int = MAX_DELAY) -> np.ndarray:
    """``delayed`` shifted so that it lines up with ``reference``, cut or zero-padded to its length.

    The lag is where the cross-correlation of the two (over at most the first 10 s) peaks, searched within
    ``±max_delay`` samples.
    """
    span = min(len(reference), 10 * SAMPLE_RATE)
    a = reference[:span].astype(np.float64)
    b = np.zeros(span + 2 * max_delay)
    head = delayed[: span + max_delay].astype(np.float64)
    b[max_delay : max_delay + len(head)] = head
    size = 1 << int(np.ceil(np.log2(len(b) + span)))
    correlation = np.fft.irfft(np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size)), size)[
        : 2 * max_delay + 1
    ]
    lag = int(np.argmax(correlation)) - max_delay  # delayed[n + lag] ~ reference[n]
    shifted = delayed[max(lag, 0) :] if lag >= 0 else np.concatenate([np.zeros(-lag, np.float32), delayed])
    out = np.zeros(len(reference), np.float32)
    out[: min(len(out), len(shifted))] = shifted[: len(out)]
    return out


def codec(audio: np.ndarray, name: str, bitrate: int) -> np.ndarray:
    """16 kHz mono float32 ``audio`` through the lossy codec ``name`` ("mp3", "opus") at ``bitrate`` bit/s."""
    if name not in CODECS:
        raise ValueError(f"unknown codec {name!r}: one of {', '.join(CODECS)}")
    return align_to(audio, _decode(_encode(audio, name, bitrate)))


def telephone(audio: np.ndarray) -> np.ndarray:
    """A narrowband call: 300-3400 Hz, 8 kHz, 8-bit mu-law (G.711), back at 16 kHz in the input's timing."""
    narrow = soxr.resample(band_limit(audio, 300.0, 3400.0), SAMPLE_RATE, TELEPHONE_RATE, quality="HQ")
    peak = max(float(np.abs(narrow).max()), 1e-9)
    x = narrow / peak
    companded = np.sign(x) * np.log1p(MU * np.abs(x)) / np.log1p(MU)
    quantised = np.round(companded * 127.0) / 127.0
    expanded = np.sign(quantised) * np.expm1(np.abs(quantised) * np.log1p(MU)) / MU * peak
    wide = soxr.resample(expanded.astype(np.float32), TELEPHONE_RATE, SAMPLE_RATE, quality="HQ")
    out = np.zeros(len(audio), np.float32)
    out[: min(len(out), len(wide))] = wide[: len(out)]
    return out
