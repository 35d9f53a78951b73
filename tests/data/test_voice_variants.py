"""Generated eSpeak voices: deterministic per seed, read by eSpeak from its private data folder."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from audio2blendshape.data.espeak import EspeakError, SpeechSettings, synthesize
from audio2blendshape.data.voice_variants import KLATT_MODES, random_variant

TEXT = "Mama saw a bee by the sea."


def _centroid(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples)) ** 2
    frequencies = np.fft.rfftfreq(samples.shape[0], 1.0 / rate)
    return float((spectrum * frequencies).sum() / spectrum.sum())


def _scaled_voice(percent: int) -> str:
    return "pitch 100 140\n" + "".join(f"formant {i} {percent} 100 100\n" for i in range(9))


def test_espeak_speaks_a_variant_file_it_was_given_as_text() -> None:
    low = synthesize(TEXT, SpeechSettings("en-us+lowtract", variant_text=_scaled_voice(85)))
    high = synthesize(TEXT, SpeechSettings("en-us+hightract", variant_text=_scaled_voice(125)))
    assert _centroid(high.samples, high.sample_rate) > 1.15 * _centroid(low.samples, low.sample_rate)
    # The same name with new text is a new voice, not eSpeak's cached copy of the old one.
    again = synthesize(TEXT, SpeechSettings("en-us+lowtract", variant_text=_scaled_voice(125)))
    np.testing.assert_array_equal(again.samples, high.samples)


def test_generated_variant_names_are_checked() -> None:
    with pytest.raises(EspeakError, match="installed variant"):
        synthesize(TEXT, SpeechSettings("en-us+f3", variant_text=_scaled_voice(100)))
    with pytest.raises(EspeakError, match="letters, digits"):
        synthesize(TEXT, SpeechSettings("en-us+../escape", variant_text=_scaled_voice(100)))


def test_random_variants_are_deterministic_varied_and_never_a_held_out_klatt_mode() -> None:
    assert random_variant(5) == random_variant(5)
    texts = [random_variant(seed) for seed in range(300)]
    assert len(set(texts)) == len(texts)
    modes = [int(m) for t in texts for m in re.findall(r"^klatt (\d+)$", t, re.MULTILINE)]
    assert set(modes) == set(KLATT_MODES) and not {2, 3} & set(modes)
    assert 0.2 < len(modes) / len(texts) < 0.5
    first_formant = [int(re.search(r"^formant 1 (\d+)", t, re.MULTILINE).group(1)) for t in texts]  # type: ignore[union-attr]
    assert min(first_formant) < 88 and max(first_formant) > 120
    base_pitch = [int(re.search(r"^pitch (\d+)", t, re.MULTILINE).group(1)) for t in texts]  # type: ignore[union-attr]
    assert np.corrcoef(first_formant, base_pitch)[0, 1] > 0.5  # shorter tracts, higher voices
    with pytest.raises(ValueError, match="non-negative"):
        random_variant(-1)


def test_random_variants_all_speak() -> None:
    durations = []
    for seed in range(8):
        speech = synthesize(TEXT, SpeechSettings(f"de+rand{seed}", seed=1, variant_text=random_variant(seed)))
        assert np.abs(speech.samples).max() > 0.05
        durations.append(speech.samples.shape[0])
    assert len(set(durations)) > 1


def test_without_a_private_data_folder_installed_voices_still_speak() -> None:
    # In a child process: re-initialising eSpeak here would move this process's engine off its folder.
    script = """
import pytest
import audio2blendshape.data.espeak as espeak
def no_links(installed):
    raise OSError("symbolic links not supported")
espeak._private_data_folder = no_links
assert espeak.synthesize("Hello there.", espeak.SpeechSettings("en-us+f3")).samples.size > 0
with pytest.raises(espeak.EspeakError, match="could not be made .symbolic links not supported"):
    espeak.synthesize("Hello there.", espeak.SpeechSettings("en-us+mine", variant_text="pitch 100 140\\n"))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
