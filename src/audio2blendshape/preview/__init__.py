"""Previews for people: a PNG plot of the curves, an MP4 of a 2D face, the studio (a 3D face in the browser).

Lives here: ``make`` (plots, video, sidecar phoneme marks), ``face2d`` (the face drawing), ``studio_store``
(the studio's clips, models, animations, uploads), ``studio_server`` (its local web server), ``html_export``
(a take as one self-contained HTML file). ``web/`` holds the page, its modules, the vendored three.js and the
default head (ICT-FaceKit, MIT).
May import: ``runtime``, ``audio``, ``data`` (dataset records), ``names``. Never torch or ``training``.
"""
