"""Label rules as invariants: phonemes -> visemes -> ARKit curves, coarticulation and prosody."""

from __future__ import annotations

import time

import numpy as np
import pytest

from audio2blendshape.audio.decode import AudioError
from audio2blendshape.data.labels import LabelConfig, label_utterance, num_label_frames, pitch_and_energy
from audio2blendshape.data.visemes import (
    JAW_SHUT_MAX,
    LIPS_CLOSED_MAX_GAP,
    VISEMES,
    PhonemeSpan,
    mouth_openness,
    symbol_visemes,
    unknown_symbol_counts,
)
from audio2blendshape.names import ARKIT_NAMES, Rig

SR = 16_000
COL = {n: i for i, n in enumerate(ARKIT_NAMES)}
MAX_RATE = 20.0  # curve units per second: no shape crosses its full range in under 50 ms
OPEN_JAW = 0.35  # jawOpen an open vowel of >= 100 ms must reach
NEUTRAL = 0.02  # every curve at the middle of a long pause stays below this


def tone(duration: float, f0: float = 130.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(round(duration * SR)) / SR
    return amp * sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8))


def utterance(phones: list[tuple[str, float]], f0: float = 130.0) -> tuple[np.ndarray, list[PhonemeSpan]]:
    """Audio and spans for (symbol, seconds) pairs: a harmonic tone per phoneme, zeros for pauses."""
    spans, parts, t = [], [], 0.0
    for symbol, duration in phones:
        spans.append(PhonemeSpan(t, t + duration, symbol))
        silent = symbol_visemes(symbol) == ("sil",)
        parts.append(np.zeros(round(duration * SR)) if silent else tone(duration, f0))
        t += duration
    return np.concatenate(parts).astype(np.float32), spans


def mid(span: PhonemeSpan, fps: float = 100.0) -> int:
    return round(0.5 * (span.start + span.end) * fps)


def random_utterance(seed: int) -> tuple[np.ndarray, list[PhonemeSpan]]:
    rng = np.random.default_rng(seed)
    inventory = ["p", "b", "m", "ˈa", "ɑː", "i", "u", "oʊ", "aɪ", "t", "s", "f", "k", "n", "ə", "ʃ", "θ"]
    inventory += ["AA1", "M", "B", "IY0", "tsʰ", "tɕ", "ɛ", "l", "ɹ"]
    phones = [("_", 0.5)]
    for _ in range(int(rng.integers(10, 30))):
        phones.append((str(rng.choice(inventory)), float(rng.uniform(0.02, 0.22))))
        if rng.random() < 0.1:
            phones.append(("_", float(rng.uniform(0.05, 0.6))))
    phones.append(("_", 0.6))
    return utterance(phones, f0=float(rng.uniform(90, 220)))


@pytest.mark.parametrize(
    ("symbol", "expected"),
    [
        ("p", ("PP",)), ("b", ("PP",)), ("m", ("PP",)), ("M", ("PP",)), ("B", ("PP",)),
        ("f", ("FF",)), ("v", ("FF",)), ("F", ("FF",)), ("θ", ("TH",)), ("DH", ("TH",)),
        ("ˈaɪ", ("aa", "I")), ("AY1", ("aa", "I")), ("oʊ", ("O", "U")), ("OW0", ("O", "U")),
        ("t͡ʃ", ("CH",)), ("tʃ", ("CH",)), ("tsʰ", ("SS",)), ("tɕʰ", ("SS",)), ("ɑu", ("aa", "U")),
        ("a˥˩", ("aa",)), ("i2", ("I",)), ("uː", ("U",)), ("ˌɛ", ("E",)), ("AA1", ("aa",)),
        ("_", ("sil",)), ("", ("sil",)), (" ", ("sil",)), ("SIL", ("sil",)), ("sp", ("sil",)),
        ("<sil>", ("sil",)), ("+SPN+", ("sil",)), ("ə", ("schwa",)), ("n̩", ("nn",)), ("ç", ("kk",)),
    ],
)  # fmt: skip
def test_symbols_map_to_the_documented_visemes(symbol: str, expected: tuple[str, ...]) -> None:
    assert symbol_visemes(symbol) == expected


def test_every_symbol_maps_and_unknown_ones_are_counted() -> None:
    rng = np.random.default_rng(0)
    alphabet = list("ɐɑɒæɓʙβɔɕçɗɖðʤəɘɚɛɜɝɞɟʄɡɠɢʛɦɧħɥʜɨɪʝɭɬɫɮʟɱɯɰŋɳɲɴøɵɸθœɶʘɹɺɾɻʀʁɽʂʃʈʧʉʊʋⱱʌɣɤʍχʎʏʑʐʒʔʡʕʢǀǁǂǃ")
    alphabet += [*"ˈˌːˑʼʴʰʱʲʷˠˤ˞̥̬̩̯̃͡˥˦˧˨˩0123456789_-.!? ", "☃", "Ж", "q"]
    for _ in range(500):
        symbol = "".join(rng.choice(alphabet, size=int(rng.integers(0, 6))))
        visemes = symbol_visemes(symbol)
        assert visemes and all(v in VISEMES for v in visemes), symbol
    assert symbol_visemes("Ж") == ("kk",)  # an unknown letter falls back to a consonant
    assert unknown_symbol_counts().get("Ж", 0) >= 1


def test_shape_dtype_and_frame_count() -> None:
    audio, spans = utterance([("_", 0.2), ("m", 0.08), ("a", 0.2), ("_", 0.3)])
    curves = label_utterance(audio, spans)
    assert curves.shape == (len(audio) // 160, 52) and curves.dtype == np.float32
    assert label_utterance(audio, spans, fps=30.0).shape == (int(len(audio) * 30 / SR), 52)
    assert num_label_frames(4640) == 29  # 4640 / 16000 * 100 is 28.999... in floating point
    assert all(num_label_frames(n) == n // 160 for n in range(0, 20_000, 37))


@pytest.mark.parametrize("seed", range(8))
def test_rule_invariants_on_random_utterances(seed: int) -> None:
    audio, spans = random_utterance(seed)
    for fps in (100.0, 30.0):
        curves = label_utterance(audio, spans, fps=fps, seed=seed)
        assert np.isfinite(curves).all() and curves.min() >= 0.0 and curves.max() <= 1.0
        eyes = [i for i, n in enumerate(ARKIT_NAMES) if n.startswith("eye")]
        assert not curves[:, eyes].any(), "eye columns are left to the idle layer"
        assert np.abs(np.diff(curves, axis=0)).max() <= MAX_RATE / fps
        gap, jaw = mouth_openness(curves), curves[:, COL["jawOpen"]]
        for span in spans:
            if symbol_visemes(span.symbol) == ("PP",):
                frame = mid(span, fps)
                assert gap[frame] <= LIPS_CLOSED_MAX_GAP, f"lips open at {span} ({fps} fps)"
                assert jaw[frame] <= JAW_SHUT_MAX, f"jaw open at {span} ({fps} fps)"


def test_open_vowels_open_the_jaw_even_between_bilabials() -> None:
    audio, spans = utterance([("_", 0.3), ("m", 0.06), ("ˈa", 0.1), ("p", 0.05), ("ɑː", 0.12), ("b", 0.04)])
    curves = label_utterance(audio, spans)
    for span in spans:
        if span.symbol in ("ˈa", "ɑː"):
            assert curves[mid(span), COL["jawOpen"]] >= OPEN_JAW, span


def test_silence_returns_to_neutral() -> None:
    audio, spans = utterance([("ˈa", 0.2), ("u", 0.15), ("_", 0.5), ("i", 0.2), ("m", 0.1), ("_", 0.4)])
    curves = label_utterance(audio, spans)
    for span in (spans[2], spans[5]):
        assert curves[mid(span)].max() <= NEUTRAL, span
    # A region no span covers is silence too.
    gappy = [spans[0], spans[1], spans[3], spans[4]]
    assert label_utterance(audio, gappy)[mid(spans[2])].max() <= NEUTRAL


def test_rounding_is_never_averaged_away() -> None:
    # A 50 ms /u/ squeezed between spread /i/s still reaches 90 % of its pucker (0.6 in the table).
    audio, spans = utterance([("_", 0.2), ("i", 0.15), ("u", 0.05), ("i", 0.15), ("_", 0.2)])
    curves = label_utterance(audio, spans, config=LabelConfig(style_jitter=0.0))
    assert curves[mid(spans[2]), COL["mouthPucker"]] >= 0.54


def test_neighbours_shape_consonants() -> None:
    audio, spans = utterance([("_", 0.2), ("b", 0.07), ("u", 0.2), ("_", 0.3), ("b", 0.07), ("i", 0.2)])
    curves = label_utterance(audio, spans)
    # A /b/ before /u/ is already rounded; before /i/ it is not, and both are closed.
    assert curves[mid(spans[1]), COL["mouthPucker"]] >= 0.2
    assert curves[mid(spans[4]), COL["mouthPucker"]] <= 0.05
    # A lingual consonant between open vowels keeps the jaw far more open than its own pose (0.15).
    audio, spans = utterance([("_", 0.2), ("a", 0.15), ("t", 0.06), ("a", 0.15), ("_", 0.2)])
    assert label_utterance(audio, spans)[mid(spans[2]), COL["jawOpen"]] >= 0.3


def test_pitch_tracker_and_prosody() -> None:
    f0, level = pitch_and_energy(tone(1.0, 150.0).astype(np.float32))
    voiced = f0[5:-5]
    assert np.all(np.abs(voiced / 150.0 - 1.0) < 0.03)
    noise_f0, _ = pitch_and_energy((np.random.default_rng(0).standard_normal(SR) * 0.1).astype(np.float32))
    assert (noise_f0 > 0).mean() < 0.2
    assert level[10] > -20 and pitch_and_energy(np.zeros(SR, np.float32))[1].max() < -100

    # Same vowel, second half 9 semitones higher: the brows rise there.
    audio = np.concatenate([tone(1.0, 120.0), tone(1.0, 202.0)]).astype(np.float32)
    spans = [PhonemeSpan(0.0, 2.0, "a")]
    curves = label_utterance(audio, spans, config=LabelConfig(style_jitter=0.0))
    brow = curves[:, COL["browInnerUp"]]
    assert brow[130:190].mean() > brow[10:90].mean() + 0.1
    assert curves[:, COL["browOuterUpLeft"]].max() <= brow.max()
    # A loud stretch squints the cheeks more than a quiet one.
    audio = np.concatenate([tone(1.0, 130.0, 0.02), tone(1.0, 130.0, 0.5)]).astype(np.float32)
    cheek = label_utterance(audio, spans)[:, COL["cheekSquintLeft"]]
    assert cheek[130:190].mean() > cheek[10:90].mean() + 0.05


def test_seeded_style() -> None:
    audio, spans = random_utterance(3)
    a, b = label_utterance(audio, spans, seed=5), label_utterance(audio, spans, seed=5)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, label_utterance(audio, spans, seed=6))


def test_bad_input_is_reported() -> None:
    audio, spans = utterance([("a", 0.2), ("m", 0.1)])
    with pytest.raises(ValueError, match=r"span 1 .*'m'.*ends before it starts"):
        label_utterance(audio, [spans[0], PhonemeSpan(0.25, 0.2, "m")])
    with pytest.raises(ValueError, match="finite"):
        label_utterance(audio, [PhonemeSpan(float("nan"), 0.2, "a")])
    with pytest.raises(ValueError, match=r"after the audio ends \(0\.300 s\)"):
        label_utterance(audio, [PhonemeSpan(1.0, 1.2, "a")])
    with pytest.raises(ValueError, match="fps"):
        label_utterance(audio, spans, fps=0.0)
    broken = audio.copy()
    broken[800] = np.nan
    with pytest.raises(AudioError, match=r"0\.050 s"):
        label_utterance(broken, spans)


def test_mouth_openness_reads_columns_by_name() -> None:
    names = list(reversed(ARKIT_NAMES))
    curves = np.zeros((3, 52), np.float32)
    curves[:, names.index("jawOpen")] = [0.5, 0.1, 0.0]
    curves[:, names.index("mouthClose")] = [0.1, 0.1, 0.0]
    assert np.allclose(mouth_openness(curves, names), [0.4, 0.0, 0.0])
    assert np.allclose(mouth_openness(curves, Rig(tuple(n.upper() for n in names))), [0.4, 0.0, 0.0])
    with pytest.raises(ValueError, match=r"\(T, 52\)"):
        mouth_openness(np.zeros((3, 5)))


def test_labelling_is_fast() -> None:
    rng = np.random.default_rng(1)
    audio = (rng.standard_normal(300 * SR) * 0.05).astype(np.float32)  # 5 minutes
    starts = np.cumsum(rng.uniform(0.04, 0.2, size=3000))
    symbols = ["p", "a", "t", "i", "m", "u", "s", "ə", "oʊ", "_"]
    spans = [PhonemeSpan(float(s), float(s + 0.04), symbols[i % 10]) for i, s in enumerate(starts) if s < 299]
    began = time.perf_counter()
    label_utterance(audio, spans)
    assert time.perf_counter() - began < 10.0  # an hour must stay well under a minute (measured ~1 s/5 min)
