"""Letter-to-sound (letter_to_sound.py): eSpeak NG's reading of words CMUdict lacks, in ARPAbet."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from audio2blendshape.audio.constants import SAMPLE_RATE
from audio2blendshape.audio.decode import load_audio, prepare_waveform
from audio2blendshape.data.align import Aligner, OutOfVocabularyError
from audio2blendshape.data.espeak import SpeechSettings, synthesize, text_to_phonemes
from audio2blendshape.data.letter_to_sound import IPA_TO_ARPABET, pronounce, to_arpabet

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ARPABET = {
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH", "IH",
    "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW", "V", "W",
    "Y", "Z", "ZH",
}  # fmt: skip
# Everyday words CMUdict has; eSpeak's readings of 22 of them match one of CMUdict's exactly (misses:
# "beautiful" and "family", where eSpeak has IY or IH for CMUdict's reduced AH).
COMMON = (
    "hello", "world", "water", "people", "mother", "little", "between", "question", "thought", "morning",
    "yesterday", "beautiful", "language", "important", "children", "family", "remember", "answer", "country",
    "together", "because", "different", "number", "garden",
)  # fmt: skip


@cache
def _cmudict() -> dict[str, list[str]]:
    import pocketsphinx

    wanted = set(COMMON)
    entries: dict[str, list[str]] = {}
    path = Path(pocketsphinx.get_model_path()) / "en-us" / "cmudict-en-us.dict"
    for line in path.read_text(encoding="utf-8").splitlines():
        word, _, phones = line.partition(" ")
        word = re.sub(r"\(\d+\)$", "", word)
        if word in wanted:
            entries.setdefault(word, []).append(" ".join(p.rstrip("012") for p in phones.split()))
    return entries


def test_common_words_come_out_as_cmudict_has_them() -> None:
    dictionary = _cmudict()
    assert set(dictionary) == set(COMMON)
    readings = {word: pronounce(word) for word in COMMON}
    exact = [word for word, phones in readings.items() if phones in dictionary[word]]
    assert len(exact) >= 20, {w: (readings[w], dictionary[w]) for w in COMMON if w not in exact}
    assert readings["water"] == "W AO T ER"  # the flap is a T
    assert readings["thought"] == "TH AO T"


def test_the_table_writes_arpabet_only() -> None:
    assert all(set(phones.split()) <= ARPABET for phones in IPA_TO_ARPABET.values())
    # The linking r after an r-coloured vowel is dropped; a foreign phoneme fails the word.
    assert to_arpabet(["dʒ", "ˈɛ", "n", "ɚ", "ɹ", "ə", "s"]) == "JH EH N ER AH S"
    assert to_arpabet(["ɬ", "ˈæ", "n"]) is None


def test_a_made_up_word_gets_a_plausible_reading() -> None:
    assert pronounce("blorfington") == "B L AO R F IH NG T AH N"
    assert pronounce("Shopboy") == "SH AA P B OY"
    assert pronounce("o'er") == "AO R"


@pytest.mark.parametrize("word", ["ii", "xxix", "qwxzv", "st", "x2", "", "-"])
def test_several_words_spelt_letters_and_non_words_are_refused(word: str) -> None:
    assert pronounce(word) is None  # "ii" and "xxix" are Roman numerals, eSpeak reads "roman two"


def test_looking_up_leaves_speech_unchanged() -> None:
    settings = SpeechSettings("en-us+f3", seed=3)
    before = synthesize("mama papa", settings)
    assert text_to_phonemes("hello world", "en") == [["h", "ə", "l", "ˈəʊ"], ["w", "ˈɜː", "l", "d"]]
    after = synthesize("mama papa", settings)
    assert np.array_equal(before.samples, after.samples) and before.events == after.events


def test_a_respelt_word_aligns_as_the_word() -> None:
    audio = load_audio(EXAMPLES / "hello.wav")
    text = (EXAMPLES / "hello.txt").read_text(encoding="utf-8")
    aligner = Aligner()
    assert aligner.pronunciation("voyce") is None
    real = aligner.align_scored(audio, text)
    respelt = aligner.align_scored(audio, text.replace("voice", "voyce"))
    assert aligner.pronunciation("voyce") == aligner.pronunciation("voice") == "V OY S"
    spans = [(w.start, w.end, w.phones) for w in real.words]
    assert [(w.start, w.end, w.phones) for w in respelt.words] == spans
    assert respelt.score == real.score


def test_a_made_up_word_aligns_where_espeak_said_it() -> None:
    spoken = synthesize("mama blorfington papa", SpeechSettings("en-us"))
    audio = prepare_waveform(spoken.samples, spoken.sample_rate, "espeak")
    audio = np.concatenate([np.zeros(SAMPLE_RATE // 4, np.float32), audio])
    words = [w for w in Aligner().align_words(audio, "Mama Blorfington papa.") if w.word != "<sil>"]
    assert [w.word for w in words] == ["mama", "blorfington", "papa"]
    assert " ".join(p.symbol for p in words[1].phones) == "B L AO R F IH NG T AH N"
    # Against eSpeak's own phoneme starts, as test_align checks dictionary words (ɔːɹ is one phoneme).
    starts = np.array([0.25 + e.sample / spoken.sample_rate for e in spoken.events if e.symbol])
    phones = [p for w in words for p in w.phones if p.symbol != "R"]
    errors = np.abs(np.array([p.start for p in phones]) - starts)
    assert np.median(errors) < 0.03 and np.percentile(errors, 90) < 0.07, errors


def test_the_off_switch_keeps_unknown_words_out() -> None:
    with pytest.raises(OutOfVocabularyError) as caught:
        Aligner(letter_to_sound=False).words("mama blorfington papa voyce", "clip.wav")
    assert caught.value.words == ("blorfington", "voyce")
    assert Aligner().words("mama blorfington papa voyce") == ["mama", "blorfington", "papa", "voyce"]


def test_a_quote_after_punctuation_leaves_a_dictionary_word() -> None:
    # Found labelling LibriSpeech ("... what we do now,' said Hyacinth"): eSpeak is not asked for "now,".
    assert Aligner(letter_to_sound=False).words("we do now,' said he.\"") == ["we", "do", "now", "said", "he"]
