"""Phonemes to visemes to ARKit poses: the one table every label is built from.

A phoneme symbol (IPA from eSpeak NG, or ARPAbet from a forced aligner) is normalised and mapped to one
or more visemes (a diphthong such as ``aɪ`` gives two, the span is split between them). Each viseme has a
target pose (ARKit blendshape values) and Cohen–Massaro dominance parameters per channel group, used by
``labels`` to blend neighbouring targets. docs/labels.md shows the same table in prose.

Lip gap: ``mouth_openness = jawOpen - mouthClose``. ARKit's mouthClose is a corrective that pulls the lips
together while the jaw is open, so the lips are closed when the gap is about zero. The label rules (and
their tests) call the lips *closed* when ``mouth_openness <= LIPS_CLOSED_MAX_GAP`` and the jaw *nearly
shut* when ``jawOpen <= JAW_SHUT_MAX``.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from audio2blendshape.names import ARKIT_NAMES, Rig

log = logging.getLogger(__name__)

LIPS_CLOSED_MAX_GAP = 0.03  # jawOpen - mouthClose at or below this: the lips touch
JAW_SHUT_MAX = 0.15  # jawOpen at or below this: the jaw is nearly shut


@dataclass(frozen=True)
class PhonemeSpan:
    """One phoneme of an utterance, with its time span in the audio."""

    start: float  # seconds
    end: float  # seconds
    symbol: str  # IPA from eSpeak or ARPAbet from an aligner (stress digits allowed)


@dataclass(frozen=True)
class Dominance:
    """How strongly a viseme holds one channel group against its neighbours (Cohen–Massaro)."""

    strength: float  # peak dominance; a neighbour with a larger one wins the blend
    before: float  # seconds; width of the anticipatory (left) tail
    after: float  # seconds; width of the carry-over (right) tail


# Channel groups: each blends with its own dominance, so a bilabial can own the lip aperture while
# inheriting lip rounding from a neighbouring /u/ ("boot": the lips are rounded during the /b/).
APERTURE = "aperture"  # jaw and lip opening, lip press/roll, tongue
ROUNDING = "rounding"  # pucker and funnel
SPREAD = "spread"  # smile, stretch and the rest of the lower face
GROUPS: tuple[str, ...] = (APERTURE, ROUNDING, SPREAD)
_ROUNDING_SHAPES = {"mouthPucker", "mouthFunnel"}
_SPREAD_PREFIXES: tuple[str, ...] = (
    "mouthSmile", "mouthStretch", "mouthDimple", "mouthFrown", "mouthLeft", "mouthRight",
    "noseSneer", "cheekPuff", "jawLeft", "jawRight",
)  # fmt: skip

# Visemes (Oculus/Meta's 15 plus a mid-central schwa); index = position in this tuple.
VISEMES: tuple[str, ...] = (
    "sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "I", "O", "U", "schwa",
)  # fmt: skip
SILENCE = 0

# Target poses. "L/R" names without the side suffix mean both sides.
POSES: dict[str, dict[str, float]] = {
    "sil": {},
    "PP": {"jawOpen": 0.08, "mouthClose": 0.08, "mouthPress": 0.35, "mouthRollLower": 0.15,
           "mouthRollUpper": 0.10, "mouthShrugLower": 0.15},
    "FF": {"jawOpen": 0.10, "mouthClose": 0.03, "mouthRollLower": 0.55, "mouthUpperUp": 0.15,
           "mouthShrugUpper": 0.10, "noseSneer": 0.05},
    "TH": {"jawOpen": 0.18, "tongueOut": 0.25, "mouthLowerDown": 0.05, "mouthStretch": 0.05},
    "DD": {"jawOpen": 0.15, "mouthStretch": 0.10, "mouthUpperUp": 0.05, "mouthLowerDown": 0.10},
    "kk": {"jawOpen": 0.22, "mouthStretch": 0.12, "mouthLowerDown": 0.08},
    "CH": {"jawOpen": 0.12, "mouthFunnel": 0.35, "mouthPucker": 0.25, "mouthUpperUp": 0.15,
           "mouthLowerDown": 0.15, "mouthShrugUpper": 0.15},
    "SS": {"jawOpen": 0.08, "mouthStretch": 0.25, "mouthSmile": 0.10, "mouthUpperUp": 0.12,
           "mouthLowerDown": 0.15},
    "nn": {"jawOpen": 0.18, "mouthLowerDown": 0.10, "mouthStretch": 0.05},
    "RR": {"jawOpen": 0.15, "mouthPucker": 0.30, "mouthFunnel": 0.20},
    "aa": {"jawOpen": 0.60, "mouthLowerDown": 0.25, "mouthUpperUp": 0.05, "mouthStretch": 0.05},
    "E": {"jawOpen": 0.35, "mouthStretch": 0.20, "mouthSmile": 0.15, "mouthLowerDown": 0.20,
          "mouthUpperUp": 0.10},
    "I": {"jawOpen": 0.15, "mouthSmile": 0.35, "mouthStretch": 0.30, "mouthUpperUp": 0.10,
          "mouthLowerDown": 0.10},
    "O": {"jawOpen": 0.35, "mouthFunnel": 0.45, "mouthPucker": 0.35, "mouthLowerDown": 0.10},
    "U": {"jawOpen": 0.12, "mouthPucker": 0.60, "mouthFunnel": 0.30},
    "schwa": {"jawOpen": 0.28, "mouthLowerDown": 0.10},
}  # fmt: skip

# Dominance per viseme: (aperture, rounding, spread) as (strength, before s, after s). Lingual
# consonants are weak (the lips and jaw take their shape from the vowels around them); bilabials and
# labiodentals own the aperture; rounded vowels own rounding with a long anticipatory tail.
_CONS = Dominance(0.3, 0.04, 0.04)
_LIP_FREE = Dominance(0.1, 0.05, 0.05)
_VOWEL = Dominance(0.8, 0.06, 0.06)
DOMINANCE: dict[str, tuple[Dominance, Dominance, Dominance]] = {
    "sil": (Dominance(0.5, 0.06, 0.06), Dominance(0.3, 0.06, 0.06), Dominance(0.5, 0.06, 0.06)),
    "PP": (Dominance(2.0, 0.05, 0.05), Dominance(0.1, 0.05, 0.05), Dominance(0.2, 0.04, 0.04)),
    "FF": (Dominance(2.0, 0.05, 0.05), Dominance(0.1, 0.05, 0.05), Dominance(0.3, 0.04, 0.04)),
    "TH": (Dominance(0.7, 0.04, 0.04), _LIP_FREE, Dominance(0.4, 0.04, 0.04)),
    "DD": (_CONS, _LIP_FREE, Dominance(0.2, 0.04, 0.04)),
    "kk": (_CONS, _LIP_FREE, Dominance(0.2, 0.04, 0.04)),
    "CH": (Dominance(0.5, 0.04, 0.04), Dominance(0.9, 0.08, 0.06), Dominance(0.4, 0.04, 0.04)),
    "SS": (Dominance(0.5, 0.04, 0.04), _LIP_FREE, Dominance(0.5, 0.04, 0.04)),
    "nn": (_CONS, _LIP_FREE, Dominance(0.2, 0.04, 0.04)),
    "RR": (Dominance(0.4, 0.04, 0.04), Dominance(0.7, 0.08, 0.06), Dominance(0.3, 0.04, 0.04)),
    "aa": (Dominance(1.5, 0.06, 0.06), Dominance(0.6, 0.06, 0.06), _VOWEL),
    "E": (_VOWEL, Dominance(0.6, 0.06, 0.06), _VOWEL),
    "I": (_VOWEL, Dominance(0.6, 0.06, 0.06), Dominance(0.9, 0.06, 0.06)),
    "O": (_VOWEL, Dominance(1.2, 0.09, 0.07), _VOWEL),
    "U": (_VOWEL, Dominance(1.5, 0.09, 0.07), _VOWEL),
    "schwa": (Dominance(0.5, 0.05, 0.05), Dominance(0.2, 0.05, 0.05), Dominance(0.4, 0.05, 0.05)),
}

_IPA_GROUPS: dict[str, tuple[str, ...]] = {
    "sil": ("_", "#", "|", "‖"),
    "PP": ("p", "b", "m", "ɓ", "ʙ"),
    "FF": ("f", "v", "ɱ", "ʋ", "ɸ", "β"),
    "TH": ("θ", "ð"),
    "DD": ("t", "d", "ɾ", "ʈ", "ɖ", "ɗ"),
    "kk": ("k", "c", "ɟ", "g", "ɡ", "ŋ", "x", "ɣ", "χ", "ʁ", "h", "ɦ", "q", "ɢ", "ʕ", "ħ", "ç", "ʔ", "ɰ"),
    "CH": ("ʃ", "ʒ", "tʃ", "dʒ", "ʂ", "ʐ", "tʂ", "dʐ", "ʧ", "ʤ"),
    "SS": ("s", "z", "ts", "dz", "ɕ", "ʑ", "tɕ", "dʑ", "ʦ", "ʣ"),
    "nn": ("n", "l", "ɲ", "ɳ", "ɫ", "ɬ", "ɮ", "ʎ", "ʟ", "ɭ", "ɴ"),
    "RR": ("r", "ɹ", "ɻ", "ʀ", "ɚ", "ɝ", "ɺ", "ɽ"),
    "aa": ("a", "ɑ", "æ", "ɐ", "ɒ", "ʌ", "ɶ"),
    "E": ("e", "ɛ"),
    "I": ("i", "ɪ", "j", "ɨ", "ɯ", "ʝ", "ʅ", "ɿ"),
    "O": ("o", "ɔ", "ø", "œ", "ɵ", "ɞ"),
    "U": ("u", "ʊ", "w", "ɥ", "y", "ʏ", "ʉ", "ʍ"),
    "schwa": ("ə", "ɘ", "ɜ", "ɤ", "ᵻ", "ᵿ"),
}

ARPABET_TO_VISEMES: dict[str, tuple[str, ...]] = {
    "AA": ("aa",), "AE": ("aa",), "AH": ("schwa",), "AO": ("O",), "AW": ("aa", "U"), "AX": ("schwa",),
    "AY": ("aa", "I"), "B": ("PP",), "CH": ("CH",), "D": ("DD",), "DH": ("TH",), "DX": ("DD",),
    "EH": ("E",), "ER": ("RR",), "EY": ("E", "I"), "F": ("FF",), "G": ("kk",), "HH": ("kk",),
    "IH": ("I",), "IX": ("schwa",), "IY": ("I",), "JH": ("CH",), "K": ("kk",), "L": ("nn",),
    "M": ("PP",), "N": ("nn",), "NG": ("kk",), "OW": ("O", "U"), "OY": ("O", "I"), "P": ("PP",),
    "R": ("RR",), "S": ("SS",), "SH": ("CH",), "T": ("DD",), "TH": ("TH",), "UH": ("U",), "UW": ("U",),
    "V": ("FF",), "W": ("U",), "Y": ("I",), "Z": ("SS",), "ZH": ("CH",),
    "SIL": ("sil",), "SP": ("sil",), "SPN": ("sil",), "NSN": ("sil",), "PAU": ("sil",),
}  # fmt: skip

_VOWEL_CHARS = set("aeiouyæɑɒɐəɘɜɞɛɪʊʌɔøœɶɤɯɨʉɵᵻ")
_ARPABET = re.compile(r"^([A-Z]{1,3})[0-2]?$")
_STRIP = re.compile(r"[ˈˌ'ːˑ\u0361\u035c\-.\d˥˦˧˨˩ˀ]")
_UNKNOWN: Counter[str] = Counter()


def _strip_marks(symbol: str) -> str:
    """Drop stress, length, tone, tie bars, combining diacritics and modifier letters (ʰ ʲ ʷ ...)."""
    text = _STRIP.sub("", unicodedata.normalize("NFD", symbol.strip()))
    kept = [c for c in text if unicodedata.category(c) not in ("Mn", "Me", "Lm", "Sk", "Zs", "Cc")]
    return unicodedata.normalize("NFC", "".join(kept))


# Keys go through the same stripping as the input, so "ç" (c + cedilla) still finds its entry.
IPA_TO_VISEME: dict[str, str] = {_strip_marks(s): vis for vis, syms in _IPA_GROUPS.items() for s in syms}
_IPA_LONGEST = max(len(k) for k in IPA_TO_VISEME)


def _note_unknown(symbol: str, char: str) -> None:
    if _UNKNOWN[char] == 0:
        log.warning(
            "phoneme symbol %r: %r is not in the viseme table; mapped by character class", symbol, char
        )
    _UNKNOWN[char] += 1


def unknown_symbol_counts() -> dict[str, int]:
    """Characters met so far that were not in the table (mapped by fallback), with their counts."""
    return dict(_UNKNOWN)


@lru_cache(maxsize=4096)
def symbol_visemes(symbol: str) -> tuple[str, ...]:
    """Viseme names for one phoneme symbol (IPA or ARPAbet); never raises, never returns ().

    Pauses (``_``, empty, ``SIL``, ``sp``, ``<sil>``, ``+SPN+``) give ``("sil",)``. A multi-character
    IPA string is read greedily by longest known prefix (``tʃ`` -> CH, ``aɪ`` -> aa then I); a character
    missing from the table falls back to ``schwa`` if it looks like a vowel, else ``kk``.
    """
    raw = symbol.strip()
    if not raw or raw[0] in "+<[" or raw.upper() in ("SIL", "SP", "SPN", "NSN"):
        return ("sil",)
    match = _ARPABET.match(raw)
    if match and match.group(1) in ARPABET_TO_VISEMES:
        return ARPABET_TO_VISEMES[match.group(1)]
    text = _strip_marks(raw)
    out: list[str] = []
    i = 0
    while i < len(text):
        for size in range(min(_IPA_LONGEST, len(text) - i), 0, -1):
            viseme = IPA_TO_VISEME.get(text[i : i + size])
            if viseme is not None:
                break
        else:
            size, char = 1, text[i]
            base = unicodedata.normalize("NFD", char)[0].lower()
            viseme = IPA_TO_VISEME.get(base)
            if viseme is None:
                _note_unknown(symbol, char)
                if not char.isalpha():
                    i += 1  # punctuation carries no articulation
                    continue
                viseme = "schwa" if base in _VOWEL_CHARS else "kk"
        if not out or out[-1] != viseme:
            out.append(viseme)
        i += size
    if len(out) > 1:
        out = [v for v in out if v != "sil"] or ["sil"]
    return tuple(out) if out else ("sil",)


# Channels a closure owns outright at its middle (labels overrides the blend there): a bilabial
# shuts jaw and lips whatever its neighbours do, but keeps their pucker and smile.
PP_OWNS: tuple[str, ...] = (
    "jawOpen", "mouthClose", "mouthPressLeft", "mouthPressRight", "mouthRollLower", "mouthRollUpper",
    "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "mouthShrugLower", "mouthShrugUpper", "mouthFunnel", "tongueOut",
)  # fmt: skip
FF_OWNS: tuple[str, ...] = (
    "jawOpen", "mouthClose", "mouthRollLower", "mouthUpperUpLeft", "mouthUpperUpRight",
    "mouthLowerDownLeft", "mouthLowerDownRight", "mouthShrugUpper", "mouthFunnel", "tongueOut",
)  # fmt: skip
ROUNDED: tuple[str, ...] = ("O", "U")  # visemes whose pucker/funnel is a floor, never averaged away


def _expand(pose: dict[str, float]) -> dict[str, float]:
    """Pose names without a side suffix stand for both sides."""
    wanted = {n.lower(): n for n in ARKIT_NAMES}
    out: dict[str, float] = {}
    for name, value in pose.items():
        if name.lower() in wanted:
            out[wanted[name.lower()]] = value
            continue
        sides = [wanted.get(f"{name}left".lower()), wanted.get(f"{name}right".lower())]
        if None in sides:
            raise ValueError(f"viseme pose names {name!r}, which is not an ARKit blendshape")
        for side in sides:
            out[str(side)] = value
    return out


def group_of(name: str) -> str:
    """The channel group (APERTURE, ROUNDING or SPREAD) an ARKit blendshape blends in."""
    if name in _ROUNDING_SHAPES:
        return ROUNDING
    return SPREAD if name.startswith(_SPREAD_PREFIXES) else APERTURE


def pose_matrix() -> np.ndarray:
    """Target poses as float32 ``(len(VISEMES), 52)`` in ARKit order."""
    matrix = np.zeros((len(VISEMES), len(ARKIT_NAMES)), dtype=np.float32)
    for v, viseme in enumerate(VISEMES):
        for name, value in _expand(POSES[viseme]).items():
            matrix[v, ARKIT_NAMES.index(name)] = value
    return matrix


def dominance_table() -> np.ndarray:
    """Dominance parameters as float64 ``(len(VISEMES), len(GROUPS), 3)``: strength, before, after."""
    table = np.zeros((len(VISEMES), len(GROUPS), 3))
    for v, viseme in enumerate(VISEMES):
        for g, dom in enumerate(DOMINANCE[viseme]):
            table[v, g] = (dom.strength, dom.before, dom.after)
    return table


def mouth_openness(curves: np.ndarray, names: Sequence[str] | Rig = ARKIT_NAMES) -> np.ndarray:
    """Lip gap ``jawOpen - mouthClose`` per frame: curves ``(T, K)`` -> ``(T,)`` float32.

    ``names`` are the K column names (a ``Rig`` or a list, matched case-insensitively). About 0 means
    the lips touch (see ``LIPS_CLOSED_MAX_GAP``); larger means a more open mouth.
    """
    rig = names if isinstance(names, Rig) else Rig(tuple(names))
    curves = np.asarray(curves)
    if curves.ndim != 2 or curves.shape[1] != len(rig):
        raise ValueError(f"mouth_openness: expected curves (T, {len(rig)}), got shape {curves.shape}")
    gap = curves[:, rig.index("jawOpen")] - curves[:, rig.index("mouthClose")]
    return gap.astype(np.float32)
