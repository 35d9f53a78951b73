"""Numbers and a few symbols written out as the words a reader says, for the pronunciation dictionary.

CMUdict has no digits, so "in 1850 about 19% of ..." would be out of vocabulary. ``spell_out`` rewrites
integers ("42" -> "forty-two", "1,200" -> "one thousand two hundred"), decimals ("3.5" -> "three point
five"), ordinals ("19th" -> "nineteenth"), years ("1850" -> "eighteen fifty", "1850s" -> "eighteen
fifties"), "%" -> "percent", "&" -> "and" and "$5" -> "five dollars". A four-digit number from 1000 to
2099 is read as a year: in read English prose (LibriSpeech, LJSpeech) that is what such a number nearly
always is. Anything else is left alone, so it still shows up in the out-of-vocabulary check.
"""

from __future__ import annotations

import re

# A number standing on its own: not inside a word, an id like "a4" or a version like "1.2.3".
_NUMBER = re.compile(
    r"(?<![\w.,])(?P<dollar>\$)?(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?P<frac>\.\d+)?"
    r"(?P<suffix>st|nd|rd|th|s)?(?P<percent>\s?%)?(?![\w%]|\.\d)",
    re.IGNORECASE,
)
_SYMBOLS = {"&": " and ", "%": " percent "}


def _year(value: int) -> bool:
    return 1000 <= value <= 2099


def _plural(words: str) -> str:
    """ "eighteen fifty" -> "eighteen fifties": a decade ("the 1850s")."""
    return words[:-1] + "ies" if words.endswith("y") else words + "s"


def _number(match: re.Match[str]) -> str:
    # Imported here, as align.py imports pocketsphinx: both come with the [train] extra only.
    from num2words import num2words

    digits = match["int"].replace(",", "")
    value = int(digits)
    suffix = (match["suffix"] or "").lower()
    if match["frac"]:
        spoken = num2words(float(digits + match["frac"]))
    elif suffix in ("st", "nd", "rd", "th"):
        spoken = num2words(value, to="ordinal")
    elif _year(value) and "," not in match["int"] and not match["dollar"] and not match["percent"]:
        spoken = num2words(value, to="year")
        if suffix == "s":
            spoken = _plural(spoken)
    else:
        spoken = num2words(value)
        if suffix == "s":
            spoken = _plural(spoken)
    if match["percent"]:
        spoken += " percent"
    if match["dollar"]:
        spoken += " dollar" if value == 1 and not match["frac"] else " dollars"
    return str(spoken).replace(",", "")


def spell_out(text: str) -> str:
    """``text`` with numbers, "%" and "&" written as words; other characters are kept as they are."""
    spelled = _NUMBER.sub(_number, text)
    for symbol, words in _SYMBOLS.items():
        spelled = spelled.replace(symbol, words)
    return re.sub(r" {2,}", " ", spelled).strip()
