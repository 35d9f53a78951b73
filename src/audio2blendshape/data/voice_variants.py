"""Random eSpeak voice variants: new voices for training, one per seed.

The bundled model once closed its lips on 92% of m/b/p for some held-out eSpeak voices and on 62% for
others: voices it had not heard mattered more than phonemes. eSpeak ships about fifty human-sounding
variants; a variant is a small text file (``voices/!v/<name>``) of formant scalings, pitch, voicing and
source settings, so any number of new ones can be written. ``random_variant(seed)`` writes one, drawn
around a vocal-tract length so the formants move together as they do between real speakers, with
independent jitter, source and noise settings on top.

Klatt modes 2 and 3 are never drawn: the validation and test variants ``klatt2`` and ``klatt3`` are those
modes with nothing else changed, and a held-out voice must stay unheard.
"""

from __future__ import annotations

import numpy as np

KLATT_MODES = (1, 4, 5, 6)  # Klatt source models drawn (0 = eSpeak's own); 2 and 3 are held out
KLATT_SHARE = 0.35  # share of random voices that use a Klatt source model
TRACT = (0.85, 1.25)  # vocal-tract factor range: every formant frequency scales by about this
FORMANT_JITTER = 0.07  # each formant's frequency moves by up to this fraction on its own
DROPPABLE = range(3, 9)  # formants that may be switched off (a thinner, buzzier timbre)
DROP_SHARE = 0.12  # chance that each droppable formant is switched off


def _formant_lines(rng: np.random.Generator, tract: float) -> list[str]:
    lines = []
    for formant in range(9):
        frequency = tract * (1.0 + FORMANT_JITTER * (2.0 * rng.random() - 1.0))
        height = 0 if formant in DROPPABLE and rng.random() < DROP_SHARE else int(rng.integers(50, 151))
        width = int(rng.integers(50, 201))
        lines.append(f"formant {formant} {round(100 * frequency)} {height} {width}")
    return lines


def random_variant(seed: int) -> str:
    """The text of an eSpeak variant file for voice ``seed`` (any non-negative int; same seed, same text)."""
    if seed < 0:
        raise ValueError(f"a random voice seed must be non-negative, got {seed}")
    rng = np.random.default_rng([seed, 7])
    tract = TRACT[0] + (TRACT[1] - TRACT[0]) * rng.random()
    # Longer tracts (lower formants) mostly come with lower voices, as between men, women and children.
    base = int(np.clip(70 + 300 * (tract - TRACT[0]) + rng.normal(0, 25), 60, 260))
    lines = [f"name random {seed}", f"pitch {base} {base + int(rng.integers(25, 111))}"]
    lines += _formant_lines(rng, tract)
    lines += [
        f"flutter {int(rng.integers(0, 21))}",
        f"roughness {int(rng.integers(0, 5))}",
        f"voicing {int(rng.integers(40, 151))}",
        f"consonants {int(rng.integers(60, 151))} {int(rng.integers(60, 151))}",
    ]
    if rng.random() < 0.3:
        lines.append("breath " + " ".join(str(int(v)) for v in rng.integers(0, 7, size=8)))
    if rng.random() < 0.2:
        lines.append(f"echo {int(rng.integers(20, 151))} {int(rng.integers(3, 16))}")
    if rng.random() < KLATT_SHARE:
        lines.append(f"klatt {KLATT_MODES[int(rng.integers(len(KLATT_MODES)))]}")
    return "\n".join(lines) + "\n"
