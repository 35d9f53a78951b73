"""Expression: emotion, articulation, prosody-driven expressiveness and head motion over lip-sync curves.

Lives here: ``presets`` (the seven emotion presets and user JSON presets), ``blend`` (layering an
expression so that articulation survives), ``track`` (emotion cues over time, from the command line or a
JSON/CSV file, eased), ``articulation`` (muting or exaggerating mouth motion, timing kept), ``prosody``
(loudness, pitch, emphasis, phrases and rate from 16 kHz audio, streamable), ``expressiveness`` (brows,
eyes and cheeks from prosody), ``head_motion`` (seeded speech-driven nods and turns), ``layers``
(``ExpressionControls`` and the block-by-block ``ExpressionLayer`` the runtime applies).
May import: numpy, ``audio.constants``, ``names``. Never torch, safetensors, ``models``, ``training`` or
``runtime`` (the runtime imports this package, not the other way round).
"""
