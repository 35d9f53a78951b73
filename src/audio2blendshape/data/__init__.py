"""Training data: speech with curves, in one corpus layout for every source.

Lives here: ``espeak``/``espeak_timing``/``voice_variants``/``texts``/``synth`` (the generated corpus), ``visemes``/``labels``
(phonemes to ARKit curves), ``align``/``transcribed`` (real transcribed speech, force-aligned),
``importers`` (Live Link Face takes, any rig), ``augment`` (audio augmentation), ``corpus`` (the layout on
disk), ``corpus_windows``/``windows``/``toy_speech`` (training views and generated toy speech),
``inspect`` (stats and checks).
May import: ``audio``, ``runtime`` (formats), ``models.features``, ``names``, ``atomic``. Never ``training``.
"""
