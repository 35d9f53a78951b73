"""eSpeak's phoneme events -> phoneme spans: which sound is heard over which samples.

eSpeak reports where each phoneme *starts* in its PCM; a span also needs where it ends, what to call the
events that have no IPA, and where the silence of a stop's closure belongs. Rules and their reasons below.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from typing import Any

import numpy as np

from audio2blendshape.data.espeak import PAUSE, Synthesis
from audio2blendshape.data.visemes import PhonemeSpan

# eSpeak writes IPA for most phonemes but falls back to its ASCII mnemonics for some (Mandarin's
# retroflex "s." and aspirated "th"); these become real IPA so the viseme table reads them right.
_MNEMONIC_FIXES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"ts\."), "ʈʂ"),
    (re.compile(r"s\."), "ʂ"),
    (re.compile(r"z\."), "ʐ"),
    (re.compile(r"i\."), "ɨ"),  # the apical vowel of Mandarin "shi", "si"
    (re.compile(r"(?<=ts)h|(?<=[ptkcqʈɕʂ])h"), "ʰ"),
    (re.compile(r"[\^\"\-]"), ""),  # mnemonic length/reduction marks with no IPA meaning
)

_LANGUAGE_SWITCH = re.compile(r"^\([a-z\-]+\)$")  # "(en)": eSpeak switched language for a foreign word
_UNNAMED_VOWEL = "ə"  # eSpeak's transitional vowels ("@-") and glides have no IPA and speak as a schwa
SILENCE_DB = -45.0  # an unnamed event quieter than this (vs. the loud frames) is a pause
CLOSURE_MIN = 0.008  # s; a silent tail at least this long belongs to the next phoneme (a stop closure)


def normalize_symbol(symbol: str) -> str:
    """eSpeak's phoneme string as IPA: ASCII mnemonic leftovers replaced, stress and length kept."""
    for pattern, replacement in _MNEMONIC_FIXES:
        symbol = pattern.sub(replacement, symbol)
    return symbol


def _is_modifier(symbol: str) -> bool:
    """A modifier alone (palatalisation "ʲ") or a language switch: it belongs to the phoneme before it."""
    if _LANGUAGE_SWITCH.match(symbol):
        return True
    return bool(symbol) and all(unicodedata.category(c) in ("Lm", "Sk", "Mn") for c in symbol)


def _loudness_floor(samples: np.ndarray, sample_rate: int) -> float:
    """Level below which ``samples`` count as silent: SILENCE_DB under the RMS of the loud 10 ms frames."""
    hop = max(sample_rate // 100, 1)
    usable = samples[: samples.shape[0] // hop * hop].reshape(-1, hop)
    if usable.size == 0:
        return 0.0
    loud = float(np.percentile(np.sqrt((usable.astype(np.float64) ** 2).mean(axis=1)), 95))
    return loud * 10.0 ** (SILENCE_DB / 20.0)


def _silent_tail(samples: np.ndarray, begin: int, finish: int, floor: float, rate: int) -> int:
    """Where the silence that ends ``samples[begin:finish]`` starts (``finish`` if it is not silent).

    Only a tail of at least ``CLOSURE_MIN`` seconds counts, and at most half of the span is taken.
    """
    low = begin + (finish - begin) // 2
    loud = np.flatnonzero(np.abs(samples[low:finish]) > floor)
    start = low + (int(loud[-1]) + 1 if loud.size else 0)
    return start if finish - start >= CLOSURE_MIN * rate else finish


def phoneme_spans(synthesis: Synthesis) -> list[PhonemeSpan]:
    """The synthesis' events as spans in seconds that tile ``[0, duration]`` without gaps.

    A phoneme runs from its event to the next event. The audio before the first event and every silent
    unnamed event become ``PAUSE`` spans (consecutive pauses merge); an unnamed event with sound in it is
    a transitional vowel, written ``ə``; a lone modifier ("ʲ") or language switch ("(en)") extends the
    phoneme before it. eSpeak emits a stop's event at its release, after the silent closure, which it
    synthesises at the end of the phoneme before; so a silent tail of a phoneme is handed to the next
    span (the lips close during that silence). Seconds do not depend on the sample rate, so the spans
    hold after resampling.
    """
    samples, rate = synthesis.samples, synthesis.sample_rate
    total = samples.shape[0]
    floor = _loudness_floor(samples, rate)
    marks = [(min(max(e.sample, 0), total), normalize_symbol(e.symbol)) for e in synthesis.events]
    if not marks or marks[0][0] > 0:
        marks.insert(0, (0, PAUSE))  # eSpeak starts speaking at its first event
    rows: list[list[Any]] = []  # [begin sample, end sample, symbol]
    for i, (begin, symbol) in enumerate(marks):
        finish = marks[i + 1][0] if i + 1 < len(marks) else total
        if finish <= begin:
            continue
        if not symbol:
            rms = float(np.sqrt(np.mean(samples[begin:finish].astype(np.float64) ** 2)))
            symbol = PAUSE if rms <= floor else _UNNAMED_VOWEL
        if rows and (_is_modifier(symbol) or symbol == PAUSE == rows[-1][2]):
            rows[-1][1] = finish
            if _is_modifier(symbol) and not _LANGUAGE_SWITCH.match(symbol):
                rows[-1][2] += symbol
        else:
            rows.append([begin, finish, PAUSE if _LANGUAGE_SWITCH.match(symbol) else symbol])
    for row, following in itertools.pairwise(rows):
        if row[2] != PAUSE:
            row[1] = following[0] = _silent_tail(samples, row[0], row[1], floor, rate)
    return [PhonemeSpan(begin / rate, finish / rate, symbol) for begin, finish, symbol in rows]
