"""Forced alignment of English speech to its transcript with pocketsphinx (ARPAbet phones and times).

The acoustic model and CMUdict ship inside the ``pocketsphinx`` wheel, so nothing is downloaded. Alignment
is two Viterbi passes over the whole clip: a word pass constrained to the transcript (with optional
silence between words), then a phone pass inside the words it found. Phones come out without stress
digits (the acoustic model has none); silence, breath and noise come out as ``SIL``. Numbers and a few
symbols are written out as words first (``spell.py``). A word CMUdict lacks but whose stem it has gets its
stem's phones plus the ending ("jenson's", "ligatures", "lynches", "aligner"): in read speech a quarter of
the out-of-vocabulary words are such inflections of names and rare words. Any other word gets eSpeak NG's
reading in ARPAbet (``letter_to_sound.py``) unless the aligner is built with ``letter_to_sound=False``.

``align_scored`` also gives the phone pass's acoustic score per 10 ms frame: the sum of pocketsphinx's
per-word scores (integer log units, higher is better, never above 0) over the frames aligned. Senone
scores are normalised frame by frame against the best one, so the mean stays near 0 while the forced path
is what the model hears anyway, and falls when the transcript forces phones onto audio that does not
sound like them: a measure of how well the transcript fits the audio, comparable between clips.

Building a decoder loads the model (0.1-0.3 s), so an ``Aligner`` is meant to be built once and reused for
every file of a corpus. It is not thread-safe: use one per thread or process.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from audio2blendshape.audio.constants import SAMPLE_RATE
from audio2blendshape.audio.decode import AudioError, require_signal
from audio2blendshape.data.letter_to_sound import pronounce
from audio2blendshape.data.spell import spell_out
from audio2blendshape.data.visemes import PhonemeSpan

SILENCE = "SIL"  # the symbol of every non-speech span
FRAME_RATE = 100  # pocketsphinx frames per second (its default -frate)
MIN_SAMPLES = SAMPLE_RATE // 10  # below 0.1 s there is nothing a phone-level HMM can align
# Near-digital silence gives extreme cepstra that swamp the per-clip cepstral mean and the first pass
# then misses words (24 eSpeak clips padded with zeros: with 1-bit dither 5 fail the first pass, with a
# floor 60 dB under the peak none). A seeded floor also keeps results repeatable.
NOISE_FLOOR = 1e-3  # noise standard deviation relative to the clip's peak
# Wider beams for the retry after a failed first pass: slower, but rescues hard or sloppy speech.
WIDE_BEAMS: dict[str, float] = {"beam": 1e-80, "wbeam": 1e-60, "pbeam": 1e-80}
_INITIAL_CMN = "40,3,-1,0,0,0,0,0,0,0,0,0,0"  # the en-us model's -cmninit, padded to 13 cepstra
_PUNCTUATION = "".join(c for c in string.punctuation if c != "'") + "“”„«»‘’…–—"
_SIBILANTS = ("S", "Z", "SH", "ZH", "CH", "JH")  # a plural after these adds a syllable: "lynch-es"
_VOICELESS = ("P", "T", "K", "F", "TH")  # a plural after these is voiceless: "fount-s"


class AlignmentError(ValueError):
    """A clip and transcript that cannot be aligned; the message names the file and what is wrong."""


class OutOfVocabularyError(AlignmentError):
    """Transcript words the pronunciation dictionary lacks (listed in ``words``)."""

    def __init__(self, source: str, words: Sequence[str]) -> None:
        self.source = source
        self.words = tuple(words)
        listed = ", ".join(repr(w) for w in self.words)
        super().__init__(
            f"{source}: {len(self.words)} word(s) are not in the pronunciation dictionary: {listed}. "
            "Spell numbers and symbols out as words, add pronunciations with an extra dictionary "
            "(lines 'word PH1 PH2 ...' in ARPAbet), or skip such utterances"
        )


@dataclass(frozen=True)
class WordSpan:
    """One aligned word (or ``<sil>``) and its phones."""

    start: float  # seconds
    end: float  # seconds
    word: str  # dictionary spelling, lower case; "<sil>" for silence
    phones: tuple[PhonemeSpan, ...]


@dataclass(frozen=True)
class Aligned:
    """A clip's alignment and how well the audio fits it."""

    words: list[WordSpan] = field(repr=False)  # in time order, covering the clip from 0 s to its end
    score: float  # mean acoustic score per frame of the phone pass (see the module docstring); <= 0

    @property
    def phones(self) -> list[PhonemeSpan]:
        """The phone spans, runs of silence merged into one ``SIL``."""
        return _merge_silence(p for w in self.words for p in w.phones)


_Entries = list[tuple[str, list[tuple[str, int, int]]]]  # words with their (phone, start, frames)


def _decoder(extra: dict[str, Any]) -> Any:
    # Imported here so that importing the package does not require pocketsphinx.
    import pocketsphinx

    try:
        # bestpath=False: the lattice best path may end in a non-final grammar state, i.e. silently drop
        # the transcript's last words; the Viterbi backtrace insists on the final state.
        return pocketsphinx.Decoder(lm=None, loglevel="FATAL", bestpath=False, **extra)
    except (ValueError, RuntimeError) as error:  # a broken wheel or model directory
        raise AlignmentError(f"pocketsphinx could not load its English model ({error})") from error


def _candidates(token: str) -> list[str]:
    """Spellings to try for one whitespace-separated token, most literal first."""
    word = token.lower().replace("’", "'").replace("‘", "'")
    inner = word.strip(_PUNCTUATION)
    # "dr." before "dr"; "'cause" kept; the last strips quotes and punctuation in any order ("now,'").
    options = [word.lstrip(_PUNCTUATION), inner, word.strip(_PUNCTUATION + "'")]
    return [w for i, w in enumerate(options) if w and w not in options[:i]]


class Aligner:
    """A reusable pocketsphinx forced aligner for US English."""

    def __init__(self, dictionary: str | Path | None = None, letter_to_sound: bool = True) -> None:
        """Load the model; ``dictionary`` adds pronunciations (CMUdict lines) to the built-in ones.

        ``letter_to_sound`` asks eSpeak NG for words neither has (nor their stems); off, they are
        out of the vocabulary.
        """
        self._decoder = _decoder({})
        self._letter_to_sound = letter_to_sound
        self._extra: list[tuple[str, str]] = []
        self._wide: Any = None  # built on the first failed alignment only
        if dictionary is not None:
            self._extra = _read_dictionary(Path(dictionary))
            _add_words(self._decoder, self._extra, str(dictionary))

    def pronunciation(self, word: str) -> str | None:
        """ARPAbet phones of ``word`` (space separated), or None if the dictionary lacks it."""
        found: str | None = self._decoder.lookup_word(word)
        return found

    def words(self, text: str, source: str = "audio") -> list[str]:
        """The transcript as dictionary words; raises ``OutOfVocabularyError`` listing every missing word."""
        found: list[str] = []
        missing: list[str] = []
        for token in spell_out(text).split():
            if not token.strip(_PUNCTUATION + "'"):
                continue  # a stray dash or quote
            spelled = self._spell(token)
            if spelled is None:
                name = _candidates(token)[-1]
                if name not in missing:
                    missing.append(name)
            else:
                found.extend(spelled)
        if missing:
            raise OutOfVocabularyError(source, missing)
        if not found:
            raise AlignmentError(f"{source}: the transcript is empty (text {text!r} holds no words)")
        return found

    def _spell(self, token: str) -> list[str] | None:
        for word in _candidates(token):
            if self.pronunciation(word) is not None:
                return [word]
        parts = _candidates(token)[-1].split("-")  # "forty-two" when the dictionary has no hyphenated entry
        if len(parts) > 1 and all(p and self.pronunciation(p) is not None for p in parts):
            return parts
        word = _candidates(token)[-1]
        # One level of nesting: "aligner's" is "aligner" + "'s", and "aligner" is "align" + "er".
        phones = _inflected(
            word, lambda stem: self.pronunciation(stem) or _inflected(stem, self.pronunciation)
        )
        if phones is None and self._letter_to_sound:
            phones = pronounce(word)
        if phones is None:
            return None
        # Learnt once per aligner, so the align-text search (which reads the dictionary) knows the word.
        self._extra.append((word, phones))
        for decoder in (self._decoder, self._wide):
            if decoder is not None:
                _add_words(decoder, [(word, phones)], "learnt word")
        return [word]

    def align_scored(self, audio: np.ndarray, text: str, source: str = "audio") -> Aligned:
        """Word and phone spans of ``audio`` (float32 ``(n,)`` at 16 kHz) saying ``text``, and their score."""
        words = self.words(text, source)
        pcm = _to_pcm(audio, source)
        duration = len(audio) / SAMPLE_RATE
        result = _run(self._decoder, words, pcm)
        if result is None or not _matches(result[0], words):
            if self._wide is None:
                self._wide = _decoder(WIDE_BEAMS)
                _add_words(self._wide, self._extra, "extra dictionary")
            result = _run(self._wide, words, pcm)
        if result is None or not _matches(result[0], words):
            raise AlignmentError(
                f"{source}: alignment failed: the {duration:.2f} s of audio do not match the transcript "
                f"{' '.join(words)!r} (wrong transcript, wrong language, or too noisy)"
            )
        return Aligned(_cover(_to_spans(result[0]), duration), result[1])

    def align_words(self, audio: np.ndarray, text: str, source: str = "audio") -> list[WordSpan]:
        """Word and phone spans of ``audio`` (float32 ``(n,)`` at 16 kHz) saying ``text``.

        Spans are in time order, contiguous, and cover the clip from 0 s to its end.
        """
        return self.align_scored(audio, text, source).words

    def align(self, audio: np.ndarray, text: str, source: str = "audio") -> list[PhonemeSpan]:
        """ARPAbet phone spans (silence ``SIL``) of ``audio`` (float32 ``(n,)``, 16 kHz) saying ``text``."""
        return self.align_scored(audio, text, source).phones


def _inflected(word: str, lookup: Callable[[str], str | None]) -> str | None:
    """Phones of ``word`` as its dictionary stem plus "'s", "s", "es" or "er"; None if no stem is known."""
    for suffix in ("'s", "es", "s", "er"):
        stem = lookup(word[: -len(suffix)]) if word.endswith(suffix) and len(word) > len(suffix) + 1 else None
        if stem is None:
            continue
        last = stem.split()[-1]
        if suffix == "er":
            return f"{stem} ER"
        if suffix == "es" and last not in _SIBILANTS:
            continue  # "ripens" is "ripen" + "s", not "rip" + "es"
        return f"{stem} {'IH Z' if last in _SIBILANTS else 'S' if last in _VOICELESS else 'Z'}"
    return None


def _read_dictionary(path: Path) -> list[tuple[str, str]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise AlignmentError(f"{path}: cannot read the pronunciation dictionary ({error})") from error
    entries: list[tuple[str, str]] = []
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields or line.lstrip().startswith((";;", "#")):
            continue
        if len(fields) < 2:
            raise AlignmentError(f"{path}:{number}: expected 'word PH1 PH2 ...', got {line.strip()!r}")
        entries.append((fields[0].lower(), " ".join(p.upper().rstrip("012") for p in fields[1:])))
    return entries


def _add_words(decoder: Any, entries: Iterable[tuple[str, str]], source: str) -> None:
    entries = list(entries)
    for index, (word, phones) in enumerate(entries):
        try:
            # Rebuilding the search after every word is slow; once, after the last one, is enough.
            decoder.add_word(word, phones, index == len(entries) - 1)
        except (RuntimeError, ValueError) as error:
            raise AlignmentError(
                f"{source}: cannot add {word!r} with phones {phones!r}; are they all ARPAbet? ({error})"
            ) from error


def _to_pcm(audio: np.ndarray, source: str) -> bytes:
    samples = np.asarray(audio)
    if samples.ndim != 1:
        raise AudioError(f"{source}: expected 16 kHz mono samples of shape (n,), got {samples.shape}")
    if samples.size < MIN_SAMPLES:
        raise AudioError(f"{source}: {samples.size / SAMPLE_RATE:.3f} s of audio is too short to align")
    if not np.all(np.isfinite(samples)):
        raise AudioError(f"{source}: the audio holds NaN or infinite samples")
    require_signal(samples, source)
    peak = float(np.max(np.abs(samples)))
    noise = np.random.default_rng(0).normal(0.0, NOISE_FLOOR * peak, samples.shape)
    scaled = np.clip(samples.astype(np.float64) + noise, -1.0, 1.0) * 32767.0
    return np.round(scaled).astype("<i2").tobytes()


def _decode(decoder: Any, pcm: bytes) -> None:
    # The front end's noise estimate (-remove_noise) and the cepstral mean carry over between
    # utterances; resetting both makes a file's alignment independent of the files aligned before it.
    decoder.reinit_feat()
    decoder.set_cmn(_INITIAL_CMN)
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()


def _run(decoder: Any, words: Sequence[str], pcm: bytes) -> tuple[_Entries, float] | None:
    """Both passes over ``pcm``: the alignment and its mean score per frame, or None if the search failed."""
    try:
        decoder.set_align_text(" ".join(words))
        _decode(decoder, pcm)
        if decoder.hyp() is None:
            return None
        decoder.set_alignment()
        # No hyp() here: pocketsphinx 5.1 segfaults asking the phone-alignment search for one.
        _decode(decoder, pcm)
        alignment = decoder.get_alignment()
    except RuntimeError:  # pocketsphinx's way of saying the final state was never reached
        return None
    if alignment is None:
        return None
    entries: _Entries = []
    score = frames = 0
    for word in alignment:
        entries.append((word.name, [(p.name, p.start, p.duration) for p in word]))
        score += word.score
        frames += word.duration
    return entries, score / max(frames, 1)


def _spelling(word: str) -> str:
    return re.sub(r"\(\d+\)$", "", word)  # "read(2)" is the second pronunciation of "read"


def _matches(entries: Sequence[tuple[str, Sequence[tuple[str, int, int]]]], words: Sequence[str]) -> bool:
    """Whether the aligned words, fillers aside, are exactly the transcript's (pocketsphinx may drop some)."""
    spoken = [_spelling(w) for w, _ in entries if not w.startswith(("<", "[", "+"))]
    return spoken == list(words)


def _phone_symbol(name: str) -> str:
    # Fillers (+NSN+, +SPN+, ...) and silence carry no lip shape of their own.
    return SILENCE if name == SILENCE or name.startswith("+") else name


def _to_spans(entries: Sequence[tuple[str, Sequence[tuple[str, int, int]]]]) -> list[WordSpan]:
    spans: list[WordSpan] = []
    for word, phones in entries:
        if not phones:
            continue
        spelled = _spelling(word)
        symbols = [_phone_symbol(name) for name, _, _ in phones]
        if all(s == SILENCE for s in symbols):
            spelled = "<sil>"
        spans.append(
            WordSpan(
                start=phones[0][1] / FRAME_RATE,
                end=(phones[-1][1] + phones[-1][2]) / FRAME_RATE,
                word=spelled,
                phones=tuple(
                    PhonemeSpan(start / FRAME_RATE, (start + length) / FRAME_RATE, symbol)
                    for (_, start, length), symbol in zip(phones, symbols, strict=True)
                ),
            )
        )
    return spans


def _cover(spans: list[WordSpan], duration: float) -> list[WordSpan]:
    # The decoder's frames stop up to 25 ms short of the clip's end (a frame needs a whole 25 ms window);
    # stretching the last phone over that tail lets consumers treat the spans as a partition of the clip.
    if not spans or spans[-1].end >= duration:
        return spans
    last = spans[-1]
    final = last.phones[-1]
    phones = (*last.phones[:-1], PhonemeSpan(final.start, duration, final.symbol))
    return [*spans[:-1], WordSpan(last.start, duration, last.word, phones)]


def _merge_silence(phones: Iterable[PhonemeSpan]) -> list[PhonemeSpan]:
    merged: list[PhonemeSpan] = []
    for phone in phones:
        if merged and phone.symbol == SILENCE and merged[-1].symbol == SILENCE:
            merged[-1] = PhonemeSpan(merged[-1].start, phone.end, SILENCE)
        else:
            merged.append(phone)
    return merged


@lru_cache(maxsize=1)
def default_aligner() -> Aligner:
    """The process-wide aligner with the built-in dictionary, built on first use."""
    return Aligner()


def align(audio: np.ndarray, text: str, source: str = "audio") -> list[PhonemeSpan]:
    """ARPAbet phone spans of 16 kHz mono ``audio`` ``(n,)`` saying the English ``text``.

    Times are in seconds; silences are ``SIL``. ``source`` names the clip in error messages. Raises
    ``OutOfVocabularyError`` for words the dictionary lacks and ``AlignmentError`` when the audio does not
    fit the transcript.
    """
    return default_aligner().align(audio, text, source)
