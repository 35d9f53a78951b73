"""Festival's part of ``data synth``: which utterances festival speaks, and with what settings.

``--engine festival`` gives every utterance whose language a chosen festival voice reads to festival;
``--engine mix`` gives it a share (``--festival-share``) of the *training* utterances it can read, so a
mixed corpus keeps the eSpeak-only corpus's validation and test utterances, and its texts and rates.
Festival has few voices, so they are all training voices: there is no festival voice to hold out, and the
HTS voices that festival also has are refused altogether (``festival.check_voice``), kept for checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import soxr

from audio2blendshape.audio.constants import SAMPLE_RATE
from audio2blendshape.data.festival import VOICES, FestivalSettings, check_voice, readers, synthesize, version
from audio2blendshape.data.visemes import PhonemeSpan

if TYPE_CHECKING:  # synth imports this module
    from audio2blendshape.data.synth import SynthConfig, UtteranceSpec, Voice

ENGINES = ("espeak", "festival", "mix")  # --engine: eSpeak only, festival only, or festival for a share
TRACT_PERCENT = (90, 110)  # festival utterances' playback speed range, percent (a longer/shorter tract)


def maybe_festival(voice: Voice, config: SynthConfig, index: int) -> Voice:
    """``voice``, or a festival voice in its place: always (``festival``) or by share (``mix``).

    Like ``synth._maybe_random_voice``, the draws have their own generator, so the rest of the
    utterance (text, rate, loudness, augmentation) is what the eSpeak-only plan of the same seed gives it.
    """
    names = readers(config.festival_voices, voice.language) if config.engine != "espeak" else ()
    if not names:
        return voice
    rng = np.random.default_rng([config.seed, index, 5])
    chance, name = rng.random(), names[int(rng.integers(len(names)))]
    tract = int(rng.integers(TRACT_PERCENT[0], TRACT_PERCENT[1] + 1))
    if config.engine == "mix" and (voice.split != "train" or chance >= config.festival_share):
        return voice
    return replace(
        voice, language=VOICES[name].language, variant=name, random_seed=-1, engine="festival", tract=tract
    )


def check_engine(engine: str, voices: Sequence[str], share: float, languages: Sequence[str]) -> None:
    """Validate ``--engine``, ``--festival-voices`` and ``--festival-share`` against ``languages``.

    Raises ValueError, or ``festival.FestivalError`` for an unknown or reserved (HTS) voice.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "espeak":
        return
    if not voices:
        raise ValueError("no festival voices given")
    for name in voices:
        check_voice(name)  # unknown and reserved voices are refused before any work is done
    for language in languages if engine == "festival" else ():
        if not readers(tuple(voices), language):
            raise ValueError(
                f"--engine festival: none of the festival voices {', '.join(voices)} speaks {language!r} "
                f"(use --languages from {','.join(festival_languages(voices))})"
            )
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"--festival-share is a probability in [0, 1], got {share}")


def festival_languages(voices: Sequence[str]) -> tuple[str, ...]:
    """The language ids whose texts the festival voices ``voices`` read, in order."""
    return tuple(dict.fromkeys(lang for name in voices for lang in check_voice(name).reads))


def festival_speech(spec: UtteranceSpec) -> tuple[np.ndarray, list[PhonemeSpan], dict[str, Any]]:
    """Festival's speech for ``spec``: 16 kHz audio, phone spans and the settings to record.

    The plan's eSpeak settings carry over: the rate (130-230 words/min around eSpeak's 175) becomes a
    duration stretch, the pitch setting 30/50/70 a mean-f0 factor of -3/0/+3 semitones, the pitch range
    25/55/85 a factor on the f0 spread, the amplitude a gain.
    """
    voice = spec.voice
    settings = FestivalSettings(
        voice.variant, stretch=175.0 / spec.rate, pitch=2.0 ** ((voice.pitch - 50) / 80),
        pitch_range=voice.pitch_range / 55.0, tract=voice.tract / 100.0, gain=spec.volume / 100.0,
    )  # fmt: skip
    return speak(spec.text, settings)


def speak(text: str, settings: FestivalSettings) -> tuple[np.ndarray, list[PhonemeSpan], dict[str, Any]]:
    """Festival speaking ``text``: 16 kHz float32 audio ``(n,)``, phone spans and the settings to record."""
    speech = synthesize(text, settings)
    audio = soxr.resample(speech.samples, speech.sample_rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    source = {"synth": f"festival {version()}", "engine": "festival", **asdict(settings)}
    return audio, list(speech.spans), source
