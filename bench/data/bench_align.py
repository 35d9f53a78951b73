"""Forced-alignment speed and accuracy on eSpeak NG speech: real-time factor per clip length.

    .venv/bin/python bench/data/bench_align.py [--repeats 3]

For clips of about 2 s to 60 s it prints the audio length, the alignment time (median of the repeats),
the real-time factor (alignment seconds per audio second; pocketsphinx uses one core), the same for the
whole ``data label`` step (load, align, label, write), and the median and 90th-percentile distance
between the aligned phone starts and eSpeak's own phoneme starts (where the phone counts agree).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import soundfile

from audio2blendshape.audio.constants import SAMPLE_RATE
from audio2blendshape.audio.decode import prepare_waveform
from audio2blendshape.data.align import SILENCE, Aligner
from audio2blendshape.data.espeak import SpeechSettings, synthesize
from audio2blendshape.data.transcribed import Transcribed, label_one

# Sentences whose CMUdict phones match eSpeak's one to one, so every boundary can be scored.
SENTENCES = (
    "my baby bought a big blue balloon",
    "the quick brown fox jumps over the lazy dog",
    "how much wood would a woodchuck chuck if a woodchuck could chuck wood",
    "bob bought a bag of big blue plums",
    "the rain in spain stays mainly in the plain",
    "six spoons of fresh snow peas",
    "five thick slabs of blue cheese",
    "i am happy to meet you",
    "please call stella",
)
TARGETS = (2.0, 10.0, 30.0, 60.0)  # seconds of speech per clip


def _clip(seconds: float) -> tuple[str, np.ndarray, list[float]]:
    """About ``seconds`` of sentences: text, 16 kHz audio ``(n,)``, eSpeak phoneme starts in seconds."""
    lengths = [synthesize(t, SpeechSettings("en-us")).duration for t in SENTENCES]
    texts: list[str] = []
    while sum(lengths[i % len(SENTENCES)] for i in range(len(texts))) < seconds:
        texts.append(SENTENCES[len(texts) % len(SENTENCES)])
    spoken = synthesize(". ".join(texts), SpeechSettings("en-us"))
    audio = prepare_waveform(spoken.samples, spoken.sample_rate, "espeak")
    starts = [e.sample / spoken.sample_rate for e in spoken.events if e.symbol]
    return " ".join(texts), audio, starts


def _timed(repeats: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        begin = time.perf_counter()
        work()
        times.append(time.perf_counter() - begin)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per clip (median reported)")
    args = parser.parse_args()
    begin = time.perf_counter()
    aligner = Aligner()
    print(f"decoder build: {time.perf_counter() - begin:.3f} s (once per process)\n")
    print(f"{'clip':>6} {'words':>6} {'align s':>8} {'align RTF':>10} {'label s':>8} {'label RTF':>10} "
          f"{'err p50 ms':>11} {'err p90 ms':>11}")  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        for target in TARGETS:
            text, audio, starts = _clip(target)
            duration = len(audio) / SAMPLE_RATE
            seconds = _timed(args.repeats, partial(aligner.align, audio, text))
            wav = Path(scratch) / f"clip{int(target)}.wav"
            soundfile.write(str(wav), audio, SAMPLE_RATE, subtype="PCM_16")
            item = Transcribed(wav, text, wav.stem, "bench", str(wav))
            out = Path(scratch) / "data"
            labelled = _timed(args.repeats, partial(label_one, aligner, item, out, "train", 100.0, 0))
            spoken = [p.start for p in aligner.align(audio, text) if p.symbol != SILENCE]
            if len(spoken) == len(starts):
                errors = np.abs(np.array(spoken) - np.array(starts)) * 1000
                p50, p90 = f"{np.median(errors):.0f}", f"{np.percentile(errors, 90):.0f}"
            else:
                p50 = p90 = "n/a"  # a word whose dictionary and eSpeak phone counts differ
            print(f"{duration:>5.1f}s {len(text.split()):>6} {seconds:>8.3f} {seconds / duration:>10.4f} "
                  f"{labelled:>8.3f} {labelled / duration:>10.4f} {p50:>11} {p90:>11}")  # fmt: skip


if __name__ == "__main__":
    main()
