"""Letter-to-sound for words CMUdict lacks: eSpeak NG's US English reading, in ARPAbet.

Read speech is full of names and rare words that CMUdict (pocketsphinx's dictionary) does not have.
eSpeak NG pronounces any word, from its own dictionary or its spelling rules (``espeak.text_to_phonemes``
asks it without speaking), and ``IPA_TO_ARPABET`` maps each of its en-us phonemes to the phones
pocketsphinx's English model knows, written as its dictionary writes them: no stress digits.

Against CMUdict's own entries (any of a word's variants, stress ignored) the reading matches exactly for
22 of 24 common words (the test's list) and 61 % of 20,000 random CMUdict words, which are mostly
names, where eSpeak and CMUdict guess vowels differently: 10 % of their phones differ, most often a
reduced vowel (IH for AH), or NG for N before K in "in-", "con-" and "un-" words.

A reading is refused (the word stays out of the vocabulary) when eSpeak reads the word as several words
(a Roman numeral: "ii" is "roman two"), when it holds a phoneme the table lacks (a foreign sound), and
for words without a vowel letter, which eSpeak spells letter by letter: in a transcript such a token is
an abbreviation whose spoken form is unknown ("st" may be "saint" or "street") or a slip.
"""

from __future__ import annotations

from collections.abc import Sequence

from audio2blendshape.data.espeak import EspeakError, text_to_phonemes

VOICE = "en-us"  # the accent of pocketsphinx's acoustic model and of CMUdict
_STRESS = "ˈˌ"  # eSpeak's stress marks, which come attached to the phoneme after them
_VOWEL_LETTERS = frozenset("aeiouyàáâäåæèéêëìíîïòóôöøùúûüÿœ")
_WORD_MARKS = "'-"  # a word may hold these besides letters: "o'er", "well-nigh"

# One eSpeak en-us phoneme (IPA, as eSpeak writes it) -> ARPAbet phones. Every phoneme eSpeak uses for
# 20,000 CMUdict words is here except a few foreign ones (ɬ, ɔ̃, nʲ), which make a word fail.
IPA_TO_ARPABET: dict[str, str] = {
    # Consonants.
    "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "ɡ": "G",
    "f": "F", "v": "V", "θ": "TH", "ð": "DH", "s": "S", "z": "Z", "ʃ": "SH", "ʒ": "ZH", "h": "HH",
    "tʃ": "CH", "dʒ": "JH", "m": "M", "n": "N", "ŋ": "NG", "l": "L", "ɹ": "R", "r": "R", "w": "W", "j": "Y",
    "ɾ": "T",  # eSpeak flaps only /t/ ("water", never "rider"), and CMUdict writes the flap as T
    "ʔ": "T",  # the glottal stop of "button" stands for /t/, which CMUdict keeps: B AH T AH N
    "x": "K",  # "loch": ARPAbet has no velar fricative, and English speakers say K
    "n̩": "AH N",  # syllabic n ("button"): CMUdict writes a schwa before the N
    "əl": "AH L",  # eSpeak's syllabic l ("bottle", "finally") is one phoneme; CMUdict writes AH L
    # Vowels. eSpeak marks length (ː) where CMUdict's vowel set has no short twin, so both map alike.
    "i": "IY",  # the unstressed final vowel of "happy"; CMUdict writes IY
    "iː": "IY", "iːː": "IY",
    "ɪ": "IH",
    "ᵻ": "IH",  # eSpeak's reduced i ("rebound", the "-ed" of "wanted"): CMUdict writes IH more often than AH
    "eɪ": "EY", "ɛ": "EH", "æ": "AE",
    "ə": "AH", "ʌ": "AH",  # CMUdict has no separate schwa: AH is both, stressed or not
    "ɐ": "AH",  # the reduced a of "about"
    "ɑː": "AA", "ɔː": "AO",
    "ɔ": "AO",  # eSpeak's short o before l, n, s ("alternates", "costliest"): CMUdict mostly AO
    "oʊ": "OW", "ʊ": "UH", "uː": "UW",
    "aɪ": "AY", "aʊ": "AW", "ɔɪ": "OY",
    "ɚ": "ER", "ɜː": "ER",  # unstressed and stressed r-coloured schwa: CMUdict writes both ER
    # Vowels eSpeak writes as one phoneme where CMUdict writes two phones.
    "ɑːɹ": "AA R", "ɔːɹ": "AO R", "ɛɹ": "EH R", "ʊɹ": "UH R",
    "ɪɹ": "IH R",  # "near", "beer", "fear" in CMUdict ("here" has IY R, the rarer spelling)
    "iə": "IY AH",  # two syllables in US English ("idea", "area")
    "aɪɚ": "AY ER",  # "fire"
    "aɪə": "AY AH",  # "science", "reliance"
}  # fmt: skip


def to_arpabet(phonemes: Sequence[str]) -> str | None:
    """ARPAbet phones (space separated) of one word's eSpeak phonemes; None if one has no ARPAbet match."""
    phones: list[str] = []
    for phoneme in phonemes:
        mapped = IPA_TO_ARPABET.get(phoneme.strip(_STRESS))
        if mapped is None:
            return None
        for phone in mapped.split():
            # eSpeak writes the r that links an r-coloured vowel to the next vowel ("generous" is
            # dʒɛnɚɹəs), where CMUdict has one R: JH EH N ER AH S.
            if phone == "R" and phones and phones[-1] in ("R", "ER"):
                continue
            phones.append(phone)
    return " ".join(phones) if phones else None


def pronounce(word: str) -> str | None:
    """eSpeak's en-us reading of ``word`` in ARPAbet phones, or None when it is refused (module docstring).

    Also None when eSpeak NG cannot be loaded: the word then stays out of the vocabulary, as without
    the fallback.
    """
    letters = [c for c in word.lower() if c not in _WORD_MARKS]
    if not letters or not all(c.isalpha() for c in letters) or not _VOWEL_LETTERS.intersection(letters):
        return None
    try:
        words = text_to_phonemes(word.lower(), VOICE)
    except EspeakError:
        return None
    return to_arpabet(words[0]) if len(words) == 1 else None
