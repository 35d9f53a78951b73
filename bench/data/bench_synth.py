"""Throughput of ``data synth``: hours of labelled audio per wall-clock minute, and where the time goes.

    .venv/bin/python bench/data/bench_synth.py [--hours 0.1] [--workers 1,2] [--augment 0.5]

Each run makes a fresh corpus in a temporary directory (full pipeline: eSpeak, resampling, labels,
optional augmentation, atomic writes, manifest), including process start-up. A per-stage breakdown of
one process follows.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soxr

from audio2blendshape.audio.constants import SAMPLE_RATE
from audio2blendshape.data.augment import augment
from audio2blendshape.data.corpus import write_utterance
from audio2blendshape.data.espeak import SpeechSettings, synthesize
from audio2blendshape.data.espeak_timing import phoneme_spans
from audio2blendshape.data.labels import label_utterance
from audio2blendshape.data.synth import LANGUAGES, SynthConfig, plan_utterances, run_synth
from audio2blendshape.names import ARKIT_NAMES


def end_to_end(hours: float, workers: int, augment_p: float, languages: tuple[str, ...]) -> tuple[float, ...]:
    """(utterances, audio hours, wall seconds) of one fresh ``run_synth``."""
    with tempfile.TemporaryDirectory() as folder:
        config = SynthConfig(Path(folder), hours, languages, seed=0, workers=workers, augment=augment_p)
        summary = run_synth(config, progress=False)
        return summary.written, summary.seconds_written / 3600, summary.wall_seconds


def stages(count: int, languages: tuple[str, ...]) -> dict[str, float]:
    """Seconds spent per stage over ``count`` utterances in this process, plus the audio seconds made."""
    spent = dict.fromkeys(("espeak", "spans", "resample", "labels", "augment", "write"), 0.0)
    audio_seconds = 0.0
    with tempfile.TemporaryDirectory() as folder:
        plan = plan_utterances(SynthConfig(Path(folder), 1.0, languages))[:count]
        for spec in plan:
            voice = spec.voice
            name = f"{LANGUAGES[voice.language][0]}+{voice.variant}"
            clock = time.perf_counter()
            speech = synthesize(spec.text, SpeechSettings(name, spec.rate, voice.pitch, voice.pitch_range))
            spent["espeak"] += time.perf_counter() - clock
            clock = time.perf_counter()
            spans = phoneme_spans(speech)
            spent["spans"] += time.perf_counter() - clock
            clock = time.perf_counter()
            audio = soxr.resample(speech.samples, speech.sample_rate, SAMPLE_RATE, quality="HQ")
            spent["resample"] += time.perf_counter() - clock
            clock = time.perf_counter()
            curves = label_utterance(audio, spans, 100.0, seed=spec.seed)
            spent["labels"] += time.perf_counter() - clock
            clock = time.perf_counter()
            augmented, _ = augment(audio, np.random.default_rng(spec.seed))
            spent["augment"] += time.perf_counter() - clock
            clock = time.perf_counter()
            write_utterance(
                Path(folder), spec.utt_id, augmented, curves, ARKIT_NAMES, 100.0,
                language=voice.language, speaker=voice.id, split=voice.split, text=spec.text, phonemes=spans,
            )  # fmt: skip
            spent["write"] += time.perf_counter() - clock
            audio_seconds += audio.shape[0] / SAMPLE_RATE
    spent["audio"] = audio_seconds
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=0.1, help="hours per end-to-end run")
    parser.add_argument("--workers", default="1,2", help="comma list of worker counts to time")
    parser.add_argument("--augment", type=float, default=0.0, help="augmentation probability")
    parser.add_argument("--languages", default="en-us,en-gb,de,fr,es,cmn")
    parser.add_argument("--stage-utterances", type=int, default=60, help="utterances for the breakdown")
    args = parser.parse_args()
    languages = tuple(args.languages.split(","))

    print(f"end to end, {args.hours} h target, augment {args.augment}, languages {','.join(languages)}")
    print(
        f"{'workers':>7} {'utts':>6} {'audio h':>8} {'wall s':>8} {'h/min':>7} "
        f"{'x realtime':>10} {'1 h takes':>10}"
    )
    for workers in (int(w) for w in args.workers.split(",")):
        count, hours, wall = end_to_end(args.hours, workers, args.augment, languages)
        per_minute = hours / (wall / 60)
        print(
            f"{workers:>7} {count:>6} {hours:>8.3f} {wall:>8.1f} {per_minute:>7.2f} "
            f"{hours * 3600 / wall:>10.0f} {60 / per_minute:>8.0f} s"
        )

    spent = stages(args.stage_utterances, languages)
    audio = spent.pop("audio")
    total = sum(spent.values())
    print(f"\nper stage, one process, {args.stage_utterances} utterances ({audio:.0f} s of audio)")
    print(f"{'stage':>9} {'seconds':>8} {'share':>6} {'ms per audio s':>15}")
    for stage, seconds in spent.items():
        print(f"{stage:>9} {seconds:>8.2f} {seconds / total:>6.0%} {seconds / audio * 1000:>15.1f}")
    print(f"{'total':>9} {total:>8.2f} {1:>6.0%} {total / audio * 1000:>15.1f}")


if __name__ == "__main__":
    main()
