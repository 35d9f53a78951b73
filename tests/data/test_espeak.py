"""eSpeak NG binding: events line up with the PCM, spans tile the audio, errors are clear."""

from __future__ import annotations

import ctypes
import itertools

import numpy as np
import pytest
import soxr

from audio2blendshape.data.espeak import (
    PAUSE,
    EspeakError,
    PhonemeEvent,
    SpeechSettings,
    Synthesis,
    _Event,
    synthesize,
    variant_names,
)
from audio2blendshape.data.espeak_timing import normalize_symbol, phoneme_spans
from audio2blendshape.data.visemes import symbol_visemes

VOWELS = set("aeiouæɑɐəɛɪʊʌɔ")


def _rms(audio: np.ndarray, start: float, end: float, rate: int, margin: float = 0.0) -> float:
    a, b = int((start + margin) * rate), int((end - margin) * rate)
    segment = audio[a:b].astype(np.float64)
    return float(np.sqrt(np.mean(segment**2))) if segment.size else 0.0


def test_event_struct_matches_the_c_layout() -> None:
    # speak_lib.h: six 4-byte ints, a pointer, then an 8-byte union -> 40 bytes on 64-bit builds.
    assert ctypes.sizeof(ctypes.c_void_p) == 8
    assert _Event.user_data.offset == 24
    assert _Event.id.offset == 32
    assert ctypes.sizeof(_Event) == 40


def _pauses_are_silent(audio: np.ndarray, spans: list, shift: float = 0.0) -> bool:
    loud = float(np.percentile(np.abs(audio), 99))
    pauses = [s for s in spans if s.symbol == PAUSE and s.end - s.start > 0.06]
    # 5 ms margins allow for the resampler's ringing at the edges.
    return all(_rms(audio, s.start + shift, s.end + shift, 16000, 0.005) < 0.01 * loud for s in pauses)


def test_events_line_up_with_the_audio_after_resampling() -> None:
    speech = synthesize("Papa, mama, a bib. Bob paid.", SpeechSettings("en-us"))
    assert speech.sample_rate == 22050
    assert all(0 <= e.sample <= speech.samples.shape[0] for e in speech.events)
    spans = phoneme_spans(speech)
    audio = soxr.resample(speech.samples, speech.sample_rate, 16000, quality="HQ")
    assert len([s for s in spans if s.symbol == PAUSE and s.end - s.start > 0.06]) >= 3  # ", , ."
    assert _pauses_are_silent(audio, spans)
    # The check has teeth: spans 40 ms late (or early) put sound inside the pauses.
    assert not _pauses_are_silent(audio, spans, shift=0.04)
    assert not _pauses_are_silent(audio, spans, shift=-0.04)
    vowels = [s for s in spans if s.symbol.strip("ˈˌː") and set(s.symbol.strip("ˈˌː")) <= VOWELS]
    assert len(vowels) >= 8
    vowel_level = float(np.median([_rms(audio, s.start, s.end, 16000) for s in vowels]))
    loud = float(np.percentile(np.abs(audio), 99))
    assert all(_rms(audio, s.start, s.end, 16000) > 0.1 * loud for s in vowels)
    voiceless = [s for s in spans if s.symbol == "p"]
    voiced = [s for s in spans if s.symbol == "b"]
    assert len(voiceless) == 3 and len(voiced) == 4
    for span in voiceless:  # the lips are shut: far quieter than the vowels around them
        assert _rms(audio, span.start, span.end, 16000) < 0.35 * vowel_level, span
    assert np.mean([_rms(audio, s.start, s.end, 16000) for s in voiced]) < 0.5 * vowel_level


def test_bilabial_closure_is_the_quietest_stretch_between_its_vowels() -> None:
    speech = synthesize("a papa, a baba", SpeechSettings("en-us+m3"))
    spans = phoneme_spans(speech)
    audio, rate = speech.samples.astype(np.float64), speech.sample_rate
    hop = rate // 400  # 2.5 ms
    envelope = np.sqrt(np.convolve(audio**2, np.ones(2 * hop) / (2 * hop), mode="same"))
    medial = [
        i for i in range(1, len(spans) - 1) if spans[i].symbol in ("p", "b") and spans[i - 1].symbol != PAUSE
    ]
    assert len(medial) == 4  # a_p, a_p, a_b, a_b: every stop sits between two vowels
    for i in medial:
        before, stop, after = spans[i - 1], spans[i], spans[i + 1]
        a, b = int((before.start + before.end) / 2 * rate), int((after.start + after.end) / 2 * rate)
        quietest = (a + int(np.argmin(envelope[a:b]))) / rate
        assert stop.start - 0.01 <= quietest <= stop.end + 0.01, (stop, quietest)
        assert envelope[int(quietest * rate)] < 0.3 * envelope[a:b].max()


def test_spans_tile_the_audio_and_cover_every_default_language() -> None:
    for voice, text in (
        ("en-us+f3", "The weather is lovely today."),
        ("en+m2", "Whose book is this?"),
        ("de+klatt", "Guten Morgen, wie geht es dir?"),
        ("fr+f1", "Bonjour, je suis très content."),
        ("es+m4", "El perro come rápido."),
        ("cmn+f4", "你好，我们今天去北京吃饭。"),
    ):
        speech = synthesize(text, SpeechSettings(voice, rate=200, pitch=60, pitch_range=80, volume=120))
        spans = phoneme_spans(speech)
        assert spans[0].start == 0.0 and spans[-1].end == pytest.approx(speech.duration)
        for left, right in itertools.pairwise(spans):
            assert left.end == pytest.approx(right.start) and left.end > left.start
        spoken = [s for s in spans if s.symbol != PAUSE]
        assert len(spoken) >= 10, voice
        # Every non-pause symbol means a mouth shape in the viseme table (nothing read as silence).
        assert all(symbol_visemes(s.symbol) != ("sil",) for s in spoken), [s.symbol for s in spoken]


def test_mandarin_mnemonics_become_ipa() -> None:
    assert normalize_symbol("s.") == "ʂ"
    assert normalize_symbol("ts.h") == "ʈʂʰ"
    assert normalize_symbol("tɕh") == "tɕʰ"
    assert normalize_symbol("tsh") == "tsʰ"
    assert normalize_symbol("ˈi.") == "ˈɨ"
    assert normalize_symbol("ˈaʊ") == "ˈaʊ"
    speech = synthesize("是吃", SpeechSettings("cmn"))
    symbols = [s.symbol for s in phoneme_spans(speech)]
    assert "ʂ" in symbols and "ʈʂʰ" in symbols


def test_span_rules_on_handmade_events() -> None:
    rate = 1000
    samples = np.full(1000, 0.3, np.float32)
    samples[200:400] = 0.0  # a real pause
    samples[760:800] = 0.0  # a silent tail: the closure of the stop that follows
    events = (
        PhonemeEvent(100, "p"),
        PhonemeEvent(200, ""),
        PhonemeEvent(300, ""),
        PhonemeEvent(400, "ˈa"),
        PhonemeEvent(500, "ʲ"),
        PhonemeEvent(600, "(en)"),
        PhonemeEvent(700, ""),  # unnamed but loud: a transitional vowel
        PhonemeEvent(800, "t"),
        PhonemeEvent(800, "s"),  # zero length: dropped
    )
    spans = phoneme_spans(Synthesis(samples, rate, events))
    got = [(round(s.start, 3), round(s.end, 3), s.symbol) for s in spans]
    assert got == [
        (0.0, 0.1, PAUSE),
        (0.1, 0.2, "p"),
        (0.2, 0.4, PAUSE),
        (0.4, 0.7, "ˈaʲ"),
        (0.7, 0.76, "ə"),
        (0.76, 1.0, "s"),
    ]


def test_bad_voices_and_texts_are_refused() -> None:
    with pytest.raises(EspeakError, match="variant 'nosuchvariant'"):
        synthesize("hello", SpeechSettings("en-us+nosuchvariant"))
    with pytest.raises(EspeakError, match="xx-nowhere"):
        synthesize("hello", SpeechSettings("xx-nowhere"))
    with pytest.raises(EspeakError, match="empty"):
        synthesize("   ", SpeechSettings("en-us"))
    with pytest.raises(EspeakError, match="outside"):
        synthesize("hello", SpeechSettings("en-us", rate=20))
    assert {"f3", "m2", "klatt"} <= set(variant_names())


def test_settings_change_the_speech() -> None:
    text = "Settings should change how this sounds."
    slow = synthesize(text, SpeechSettings("en-us", rate=120))
    fast = synthesize(text, SpeechSettings("en-us", rate=300))
    assert fast.duration < 0.7 * slow.duration
    quiet = synthesize(text, SpeechSettings("en-us", volume=40))
    loud = synthesize(text, SpeechSettings("en-us", volume=160))
    assert np.abs(loud.samples).mean() > 2.0 * np.abs(quiet.samples).mean()


def test_same_text_and_settings_give_the_same_samples_whatever_came_before() -> None:
    text, settings = "Breathy voices use eSpeak's noise generator.", SpeechSettings("en-us+f3", seed=7)
    first = synthesize(text, settings)
    synthesize("Something else entirely, to move the generator on.", SpeechSettings("de+klatt", rate=300))
    second = synthesize(text, settings)
    np.testing.assert_array_equal(first.samples, second.samples)
    assert first.events == second.events
    other_seed = synthesize(text, SpeechSettings("en-us+f3", seed=8))
    assert not np.array_equal(other_seed.samples, first.samples)  # the seed reaches the breath noise
