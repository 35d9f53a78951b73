"""Previews for people: a PNG plot of the curves, an MP4 of a 2D face moved by them.

Lives here: ``make`` (plots, video, sidecar phoneme marks), ``face2d`` (the face drawing).
May import: ``runtime``, ``audio``, ``data`` (dataset records), ``names``. Never torch or ``training``.
"""
