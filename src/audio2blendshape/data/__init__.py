"""Training data: speech with curves, in one corpus layout for every source.

Lives here: ``espeak``/``espeak_timing``/``voice_variants``/``texts``/``synth`` (the generated corpus),
``festival``/``synth_festival`` (festival's diphone voices in it),
``visemes``/``labels`` (phonemes to ARKit curves), ``align``/``spell``/``letter_to_sound``/``transcribed``
(real transcribed speech, force-aligned; eSpeak's reading of words CMUdict lacks),
``label_run``/``label_gate``/``speaker_splits`` (labelling it at scale: workers, quality gate and report,
splits by speaker), ``importers`` (Live Link Face takes, any rig),
``augment``/``degrade`` (room, noise, channel and codec effects), ``speed`` (speed perturbation, labels
moved with it), ``augment_corpus`` (degraded or sped-up copies of a corpus), ``check_corpus`` (test-only
corpora read by festival's reserved HTS voice), ``corpus`` (the layout on disk),
``corpus_windows``/``windows``/``toy_speech`` (training views and generated toy speech), ``inspect``
(stats and checks), ``workers`` (corpus jobs on several cores).
May import: ``audio``, ``runtime`` (formats), ``models.features``, ``names``, ``atomic``. Never ``training``.
"""
