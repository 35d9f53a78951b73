"""Audio in: decoding to 16 kHz mono, chunked sample streams, and log-mel features — numpy only.

Lives here: ``constants`` (the numbers every feature uses), ``decode`` (files and arrays to samples),
``sample_stream`` (long files block by block), ``mp3`` (MP3 through FFmpeg, damaged frames as silence),
``chunks`` (file and microphone chunks for live use), ``mel`` (log-mel, whole-clip and incremental).
May import: numpy, soundfile, soxr, PyAV, ``names``. Never torch, ``models`` or ``training`` (the runtime
deploys this package without them).
"""
