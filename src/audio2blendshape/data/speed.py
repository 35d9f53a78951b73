"""Speed perturbation: an utterance played faster or slower, its labels moved in time to match.

Reading 16 kHz audio as if it had been sampled at ``factor`` × 16 kHz plays it ``factor`` times as fast:
tempo, pitch and formants move together, as in the speed perturbation that ASR training uses on small real
corpora (Ko et al., Interspeech 2015: factors 0.9 and 1.1). A small real corpus gains speaking rates and
vocal-tract lengths that it does not have, without a synthesiser's sound. Unlike every condition of
``degrade_audio``, this one moves speech in time, so the curves and the phoneme spans move with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import soxr

from audio2blendshape.audio.constants import SAMPLE_RATE
from audio2blendshape.data.corpus import resample_curves
from audio2blendshape.data.visemes import PhonemeSpan

SPEED_FACTORS: tuple[float, ...] = (0.9, 1.1)  # Kaldi's pair; a copy per factor at most
MIN_FACTOR, MAX_FACTOR = 0.5, 2.0  # beyond these, speech stops sounding like speech


def change_speed(
    audio: np.ndarray,
    curves: np.ndarray,
    fps: float,
    phonemes: Sequence[PhonemeSpan] | None,
    factor: float,
) -> tuple[np.ndarray, np.ndarray, list[PhonemeSpan] | None]:
    """Play an utterance ``factor`` times as fast.

    ``audio``: float ``(n,)`` at 16 kHz; ``curves``: ``(T, K)`` at ``fps``, frame i at i / fps.
    Returns float32 audio ``(m,)``, m ≈ n / factor; float32 curves ``(round(m · fps / 16000), K)``, as many
    frames as the new audio lasts (a source whose curves end a frame early or late keeps its last frame),
    linearly interpolated: new frame j shows the source at time j · factor / fps; and the spans' times
    divided by ``factor`` (None stays None).
    """
    if not MIN_FACTOR <= factor <= MAX_FACTOR:
        raise ValueError(f"speed factor {factor} is outside [{MIN_FACTOR}, {MAX_FACTOR}]")
    faster = soxr.resample(np.asarray(audio, np.float32), SAMPLE_RATE * factor, SAMPLE_RATE, quality="HQ")
    frames = max(1, round(faster.shape[0] * fps / SAMPLE_RATE))
    # Read at fps / factor, new frame j lands on source frame j * factor: played as fast as the audio.
    moved = resample_curves(curves, fps, frames, rate=fps / factor)
    spans = None
    if phonemes is not None:
        spans = [PhonemeSpan(s.start / factor, s.end / factor, s.symbol) for s in phonemes]
    return faster.astype(np.float32), moved, spans
