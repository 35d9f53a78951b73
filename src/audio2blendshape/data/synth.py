"""``data synth``: a labelled synthetic corpus from eSpeak NG, with exact phoneme timing.

Per utterance: text (``texts``) -> eSpeak PCM + phoneme events (``espeak``) -> 16 kHz -> phoneme spans ->
rule-based curves (``labels.label_utterance``, 100 fps, from the clean audio) -> optional augmentation of
the audio only (``augment``) -> ``corpus.write_utterance``. With ``--engine festival`` or ``mix``, festival's
diphone voices speak all or a share of the utterances instead (``synth_festival``).

The plan is a pure function of (seed, languages, augment probability): utterance ``i`` always gets the
same language, voice, rate, loudness and text, and ``--hours`` only decides how long a prefix of that
sequence is made, so a rerun after a kill skips what is finished (``corpus.has_utterance``) and a rerun
with more hours extends the corpus. Splits are by voice variant (docs/synth.md): a variant held out for
validation or test is never heard in training, in any language or at any pitch.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from audio2blendshape.atomic import atomic_write_text
from audio2blendshape.audio.constants import SAMPLE_RATE
from audio2blendshape.data.augment import augment
from audio2blendshape.data.corpus import build_manifest, has_utterance, write_utterance
from audio2blendshape.data.espeak import EspeakError, SpeechSettings, library_version, synthesize
from audio2blendshape.data.espeak_timing import phoneme_spans
from audio2blendshape.data.festival import DEFAULT_VOICES as DEFAULT_FESTIVAL_VOICES
from audio2blendshape.data.festival import check_installed
from audio2blendshape.data.labels import label_utterance
from audio2blendshape.data.synth_festival import check_engine, festival_speech, maybe_festival
from audio2blendshape.data.texts import make_sentence
from audio2blendshape.data.visemes import PhonemeSpan
from audio2blendshape.data.voice_variants import random_variant
from audio2blendshape.data.workers import unordered_map
from audio2blendshape.names import ARKIT_NAMES

FPS = 100.0  # label frames per second (the log-mel frame rate)
SETTINGS_FILE = "synth.json"  # the plan's identity, checked on resume
DEFAULT_LANGUAGES = ("en-us", "en-gb", "de", "fr", "es", "cmn")

# Our language id -> eSpeak voice; seconds of speech per character of text at 175 words/minute, measured
# over 150 sentences each (docs/synth.md), used only to decide how many utterances make ``--hours``.
LANGUAGES: dict[str, tuple[str, float]] = {
    "en-us": ("en-us", 0.0658),
    "en-gb": ("en", 0.0643),
    "de": ("de", 0.0648),
    "fr": ("fr", 0.0521),
    "es": ("es", 0.0658),
    "cmn": ("cmn", 0.2540),
    "it": ("it", 0.0649),
    "nl": ("nl", 0.0659),
    "pl": ("pl", 0.0752),
    "ru": ("ru", 0.0581),
}

# Human-sounding eSpeak variants (robots, whispers and effects left out). Held-out variants are chosen
# by hand to mix female, male and Klatt-synthesised voices; every other variant is for training.
VARIANTS: tuple[str, ...] = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3",
    "Alex", "Alicia", "Andrea", "Andy", "Annie", "Denis", "Diogo", "Gene", "Henrique", "Hugo", "Jacky",
    "Lee", "Marco", "Michael", "Mike", "anika", "antonio", "aunty", "belinda", "benjamin", "boris",
    "caleb", "david", "ed", "edward", "grandma", "grandpa", "gustave", "iven", "linda", "marcelo", "max",
    "michel", "miguel", "paul", "quincy", "rob", "robert", "sandro", "shelby", "steph3", "travis", "victor",
)  # fmt: skip
HELD_OUT: dict[str, str] = {
    **dict.fromkeys(("f2", "Annie", "m3", "david", "miguel", "klatt2"), "val"),
    **dict.fromkeys(("f5", "belinda", "m6", "Andy", "robert", "klatt3"), "test"),
}
PITCHES = (30, 50, 70)  # eSpeak base pitch settings (50 = the variant's own)
PITCH_RANGES = (25, 55, 85)  # eSpeak intonation range settings


@dataclass(frozen=True)
class Voice:
    """A voice: language, variant and pitch settings. Its ``split`` comes from the variant alone."""

    language: str  # key of LANGUAGES
    variant: str  # eSpeak variant name (one of VARIANTS), or "rand<seed>" for a random voice
    pitch: int  # eSpeak pitch, 0..100
    pitch_range: int  # eSpeak pitch range, 0..100
    random_seed: int = -1  # >= 0: a generated variant (voice_variants.random_variant), always for training
    engine: str = "espeak"  # "festival": variant is a festival.VOICES key, pitch and range scale its f0
    tract: int = 100  # festival only: playback speed in percent (FestivalSettings.tract)

    @property
    def id(self) -> str:
        """The speaker id written to the corpus: ``en-us+f3-p50-r55``, ``en-us+festival-kal-t104-p50-r55``."""
        if self.engine == "festival":
            return f"{self.language}+festival-{self.variant}-t{self.tract}-p{self.pitch}-r{self.pitch_range}"
        return f"{self.language}+{self.variant}-p{self.pitch}-r{self.pitch_range}"

    @property
    def split(self) -> str:
        """``train``, ``val`` or ``test``; festival's few voices are all for training."""
        return "train" if self.engine == "festival" else HELD_OUT.get(self.variant, "train")


@dataclass(frozen=True)
class SynthConfig:
    """What ``data synth`` makes."""

    out: Path  # dataset directory (corpus layout)
    hours: float  # target hours of audio (estimated from the text; the summary reports the real total)
    languages: tuple[str, ...] = DEFAULT_LANGUAGES  # language ids, used in turn
    seed: int = 0  # everything random derives from this and the utterance index
    workers: int = 2  # processes; eSpeak is not thread-safe, so parallelism is one process each
    augment: float = 0.0  # probability that an utterance's audio is augmented (curves never are)
    rate: tuple[int, int] = (130, 230)  # words per minute range (eSpeak's default is 175)
    volume: tuple[int, int] = (60, 140)  # eSpeak amplitude range (default 100)
    words: tuple[int, int] = (6, 16)  # words per sentence
    random_voices: float = 0.0  # share of training utterances given a generated voice instead (0..1)
    engine: str = "espeak"  # one of synth_festival.ENGINES
    festival_voices: tuple[str, ...] = DEFAULT_FESTIVAL_VOICES  # festival.VOICES keys drawn from
    festival_share: float = 0.5  # "mix": share of the training utterances festival can read that it speaks


@dataclass(frozen=True)
class UtteranceSpec:
    """Everything needed to make one utterance, fixed by the plan."""

    utt_id: str  # corpus id, e.g. "syn0-0000042-de"
    seed: int  # per-utterance seed for labels and augmentation
    text: str  # what is spoken
    voice: Voice  # who speaks it
    rate: int  # words per minute
    volume: int  # eSpeak amplitude
    augment: bool  # whether the audio is augmented
    estimate: float  # estimated seconds, used to size the plan
    words: tuple[int, int] = (6, 16)  # sentence length range, for a replacement text if eSpeak crashes


def check_languages(languages: Sequence[str]) -> tuple[str, ...]:
    """Validate language ids (keys of ``LANGUAGES``), keeping order and dropping repeats."""
    clean = tuple(dict.fromkeys(lang.strip().lower() for lang in languages if lang.strip()))
    unknown = [lang for lang in clean if lang not in LANGUAGES]
    if unknown or not clean:
        raise ValueError(
            f"unknown language(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(LANGUAGES)}"
        )
    return clean


def iter_plan(config: SynthConfig) -> Iterator[UtteranceSpec]:
    """The endless deterministic sequence of utterances for ``config`` (no text appears twice)."""
    languages = check_languages(config.languages)
    seen: set[str] = set()
    index = 0
    while True:
        rng = np.random.default_rng([config.seed, index])
        language = languages[index % len(languages)]
        voice = Voice(
            language,
            VARIANTS[int(rng.integers(len(VARIANTS)))],
            PITCHES[int(rng.integers(len(PITCHES)))],
            PITCH_RANGES[int(rng.integers(len(PITCH_RANGES)))],
        )
        voice = maybe_festival(_maybe_random_voice(voice, config, index), config, index)
        rate = int(rng.integers(config.rate[0], config.rate[1] + 1))
        volume = int(rng.integers(config.volume[0], config.volume[1] + 1))
        augmented = bool(rng.random() < config.augment)
        text = make_sentence(language, rng, config.words)
        while text in seen:  # texts never repeat, so none is shared across splits
            text = make_sentence(language, rng, config.words)
        seen.add(text)
        estimate = len(text) * LANGUAGES[language][1] * 175.0 / rate
        seed = int(rng.integers(2**31))
        utt_id = f"syn{config.seed}-{index:07d}-{voice.language}"
        yield UtteranceSpec(utt_id, seed, text, voice, rate, volume, augmented, estimate, config.words)
        index += 1


def _maybe_random_voice(voice: Voice, config: SynthConfig, index: int) -> Voice:
    """Swap a training voice for a generated one with probability ``config.random_voices``.

    The draw has its own generator, so every other choice of utterance ``index`` (text, rate, and the
    held-out utterances entirely) is the same as without random voices: the two corpora share their
    validation and test sets.
    """
    if not config.random_voices or voice.split != "train":
        return voice
    rng = np.random.default_rng([config.seed, index, 3])
    if rng.random() >= config.random_voices:
        return voice
    seed = int(rng.integers(10**8))
    return replace(voice, variant=f"rand{seed}", random_seed=seed)


def plan_utterances(config: SynthConfig) -> list[UtteranceSpec]:
    """The shortest prefix of ``iter_plan`` whose estimated duration reaches ``config.hours``."""
    if not config.hours > 0:
        raise ValueError(f"--hours must be positive, got {config.hours}")
    plan: list[UtteranceSpec] = []
    total = 0.0
    for spec in iter_plan(config):
        if total >= config.hours * 3600.0:
            break
        plan.append(spec)
        total += spec.estimate
    return plan


def _espeak_speech(spec: UtteranceSpec) -> tuple[np.ndarray, list[PhonemeSpan], dict[str, Any]]:
    """eSpeak's speech for ``spec``: 16 kHz audio, phoneme spans and the settings to record."""
    voice = spec.voice
    name = f"{LANGUAGES[voice.language][0]}+{voice.variant}"
    variant = random_variant(voice.random_seed) if voice.random_seed >= 0 else ""
    settings = SpeechSettings(
        name, spec.rate, voice.pitch, voice.pitch_range, spec.volume, spec.seed, variant_text=variant
    )
    speech = synthesize(spec.text, settings)
    spans = phoneme_spans(speech)
    audio = soxr.resample(speech.samples, speech.sample_rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return audio, spans, {"synth": f"espeak-ng {library_version()}", "engine": "espeak", **asdict(settings)}


def make_utterance(spec: UtteranceSpec, out: Path) -> float:
    """Synthesize, label, optionally augment and write one utterance; returns its duration in seconds."""
    voice = spec.voice
    make = festival_speech if voice.engine == "festival" else _espeak_speech
    audio, spans, source = make(spec)
    curves = label_utterance(audio, spans, fps=FPS, seed=spec.seed)
    if spec.augment:
        audio, applied = augment(audio, np.random.default_rng([spec.seed, 1]))
        source["augment"] = applied
    write_utterance(
        out, spec.utt_id, audio, curves, ARKIT_NAMES, FPS,
        language=voice.language, speaker=voice.id, split=voice.split, text=spec.text, phonemes=spans,
        source=json.dumps(source, ensure_ascii=False, separators=(",", ":")),
    )  # fmt: skip
    return audio.shape[0] / SAMPLE_RATE


TEXT_ATTEMPTS = 3  # texts tried per utterance when the eSpeak child crashes


def _work(job: tuple[UtteranceSpec, Path]) -> tuple[str, float, str]:
    spec, out = job
    tried: UtteranceSpec = spec
    failure: Exception | None = None
    for attempt in range(TEXT_ATTEMPTS):
        if attempt:
            # eSpeak NG crashes on a few (voice, text) pairs (cmn+rob on one sentence of the 2202 in the 3 h
            # corpus); the same voice then says another sentence, drawn from the utterance's own seed.
            rng = np.random.default_rng([spec.seed, 2, attempt])
            tried = replace(spec, text=make_sentence(spec.voice.language, rng, spec.words))
        try:
            return spec.utt_id, make_utterance(tried, out), ""
        except EspeakError as error:
            failure = error
        except (ValueError, RuntimeError, OSError) as error:  # reported, the rest of the corpus goes on
            failure = error
            break
    return spec.utt_id, 0.0, f"{spec.utt_id} ({spec.voice.id}, text {tried.text[:50]!r}): {failure}"


def _check_settings(config: SynthConfig) -> None:
    """Refuse to resume into a directory planned with other settings: the same ids would mean new things."""
    identity = {
        "seed": config.seed, "languages": list(check_languages(config.languages)), "augment": config.augment,
        "rate": list(config.rate), "volume": list(config.volume), "words": list(config.words),
    }  # fmt: skip
    if config.random_voices:  # only when used, so corpora made before the option still resume
        identity["random_voices"] = config.random_voices
    if config.engine != "espeak":  # likewise
        identity["engine"] = config.engine
        identity["festival_voices"] = list(config.festival_voices)
        if config.engine == "mix":
            identity["festival_share"] = config.festival_share
    path = Path(config.out) / SETTINGS_FILE
    if path.exists():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(
                f"{path}: unreadable synth settings ({error}); delete it or use a new --out"
            ) from error
        if stored != identity:
            raise ValueError(
                f"{path}: this directory was made with {stored}, not {identity}; "
                "use the same --seed/--languages/--augment/--random-voices/--engine to resume, or a new --out"
            )
        return
    atomic_write_text(path, json.dumps(identity) + "\n")


@dataclass(frozen=True)
class SynthSummary:
    """What one run did."""

    planned: int  # utterances in the plan
    skipped: int  # already finished before this run
    written: int  # made by this run
    failed: tuple[str, ...]  # error messages of utterances that could not be made
    seconds_written: float  # audio seconds made by this run
    wall_seconds: float  # time the run took
    total_hours: float  # hours in the manifest afterwards


def run_synth(config: SynthConfig, progress: bool = True) -> SynthSummary:
    """Make (or finish) the corpus for ``config`` in ``config.out``; rebuilds the manifest at the end."""
    from tqdm import tqdm

    started = time.perf_counter()
    out = Path(config.out)
    languages = check_languages(config.languages)
    check_engine(config.engine, config.festival_voices, config.festival_share, languages)
    if config.engine != "espeak":
        check_installed(config.festival_voices)
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(config)
    plan = plan_utterances(config)
    todo = [spec for spec in plan if not has_utterance(out, spec.utt_id)]
    jobs = [(spec, out) for spec in todo]
    failed: list[str] = []
    seconds = 0.0
    bar = tqdm(total=len(plan), initial=len(plan) - len(todo), unit="utt", disable=not progress, desc="synth")
    try:
        for _, duration, error in unordered_map(_work, jobs, config.workers, chunksize=4):
            if error:
                failed.append(error)
                bar.write(f"failed: {error}", file=sys.stderr)
            seconds += duration
            bar.update(1)
            bar.set_postfix(hours=f"{seconds / 3600:.2f}", refresh=False)
    finally:
        bar.close()
    records = build_manifest(out)
    total = sum(float(r.get("duration", 0.0)) for r in records) / 3600.0
    return SynthSummary(
        len(plan), len(plan) - len(todo), len(todo) - len(failed), tuple(failed), seconds,
        time.perf_counter() - started, total,
    )  # fmt: skip
