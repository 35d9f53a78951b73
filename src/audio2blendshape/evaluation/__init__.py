"""Evaluation: lip-sync figures and curve errors of checkpoints and baselines on a dataset split.

Lives here: ``lipsync`` (the metrics, pure numpy), ``baselines`` (mean pose, energy envelope), ``paired``
(two models' MSE compared utterance by utterance), ``evaluate``.
May import: ``runtime`` (to animate), ``data``, ``audio``, ``names``. Never ``training``.
"""
