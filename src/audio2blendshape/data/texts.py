"""Sentences to speak: random word sequences from the word lists the ``faker`` package ships.

Lip-sync labels need phoneme coverage, not grammar, so a sentence is a random run of common words of the
language (faker's lorem lists are real high-frequency words for most locales) mixed with personal names
and place names, with commas, an occasional number and a final '.', '?' or '!' so eSpeak varies its
phrasing and intonation. Everything comes from installed files; nothing is downloaded.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache

import numpy as np


class TextError(ValueError):
    """A language without word lists, or a word list that could not be read."""


@dataclass(frozen=True)
class TextStyle:
    """Where a language's words come from and how a sentence in it is written."""

    words_locale: str  # faker locale with a lorem word list (common words)
    names_locale: str  # faker locale with person names (and cities, where it has them)
    spaced: bool = True  # False for scripts written without spaces between words (Chinese)


TEXT_STYLES: dict[str, TextStyle] = {
    "en-us": TextStyle("en_US", "en_US"),
    "en-gb": TextStyle("en_US", "en_GB"),  # faker has no en_GB lorem; the common words are shared
    "de": TextStyle("de_DE", "de_DE"),
    "fr": TextStyle("fr_FR", "fr_FR"),
    "es": TextStyle("es_ES", "es_ES"),
    "cmn": TextStyle("zh_CN", "zh_CN", spaced=False),
    "it": TextStyle("it_IT", "it_IT"),
    "nl": TextStyle("nl_NL", "nl_NL"),
    "pl": TextStyle("pl_PL", "pl_PL"),
    "ru": TextStyle("ru_RU", "ru_RU"),
}

NAME_SHARE = 0.15  # fraction of a sentence's words that are names or places
COMMA_CHANCE = 0.12  # chance of a comma after a word (not the last)
NUMBER_CHANCE = 0.03  # chance a word is replaced by a number, read out in the language
ENDINGS = ((".", "。"), ("?", "？"), ("!", "！"))  # (spaced, unspaced) sentence endings
ENDING_WEIGHTS = np.array([0.7, 0.2, 0.1])


@dataclass(frozen=True)
class Vocabulary:
    """A language's word lists, deduplicated and in a fixed order (so a seed gives the same text)."""

    words: tuple[str, ...]  # common words
    names: tuple[str, ...]  # first names, last names, cities


def _strings(value: object) -> list[str]:
    # faker stores lists as tuples of str or as dicts of word -> frequency weight.
    items = list(value.keys()) if isinstance(value, dict) else list(value)  # type: ignore[call-overload]
    return [s.strip() for s in items if isinstance(s, str) and s.strip()]


def _provider(kind: str, locale: str) -> type:
    try:
        return importlib.import_module(f"faker.providers.{kind}.{locale}").Provider
    except ModuleNotFoundError as error:
        raise TextError(
            f"faker has no {kind} provider for locale {locale!r} (is faker installed?)"
        ) from error


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


@cache
def vocabulary(language: str) -> Vocabulary:
    """The word lists of ``language`` (a key of ``TEXT_STYLES``)."""
    style = TEXT_STYLES.get(language)
    if style is None:
        raise TextError(f"no word lists for language {language!r}; known: {', '.join(TEXT_STYLES)}")
    words = _strings(getattr(_provider("lorem", style.words_locale), "word_list", ()))
    people = _provider("person", style.names_locale)
    names = _strings(getattr(people, "first_names", ())) + _strings(getattr(people, "last_names", ()))
    try:
        places = _provider("address", style.names_locale)
        names += _strings(getattr(places, "cities", ())) + _strings(getattr(places, "city_names", ()))
    except TextError:
        pass  # names alone are enough
    if len(words) < 100:
        raise TextError(f"faker's {style.words_locale} word list has only {len(words)} words")
    # Multi-word entries ("New York") are fine to speak, but keep a word a word for the length count.
    return Vocabulary(_unique(words), _unique([n for n in names if " " not in n]))


def make_sentence(language: str, rng: np.random.Generator, words: tuple[int, int] = (6, 16)) -> str:
    """A random sentence of ``words[0]..words[1]`` words (inclusive) in ``language``, drawn with ``rng``."""
    vocab = vocabulary(language)
    style = TEXT_STYLES[language]
    count = int(rng.integers(words[0], words[1] + 1))
    is_name = rng.random(count) < NAME_SHARE
    is_number = rng.random(count) < NUMBER_CHANCE
    comma = rng.random(count) < COMMA_CHANCE
    picks_word = rng.integers(0, len(vocab.words), count)
    picks_name = rng.integers(0, max(len(vocab.names), 1), count)
    numbers = rng.integers(0, 10_000, count)
    parts: list[str] = []
    for i in range(count):
        if is_number[i]:
            token = str(int(numbers[i]))
        elif is_name[i] and vocab.names:
            token = vocab.names[picks_name[i]]
        else:
            token = vocab.words[picks_word[i]]
        if comma[i] and i < count - 1:
            token += "," if style.spaced else "，"
        parts.append(token)
    text = (" " if style.spaced else "").join(parts)
    text = text[:1].upper() + text[1:]
    ending = ENDINGS[int(rng.choice(len(ENDINGS), p=ENDING_WEIGHTS))]
    return text + (ending[0] if style.spaced else ending[1])
