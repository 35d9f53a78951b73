"""Inference: audio to animation curves, offline (``Animator``) or streaming (``Streamer``), and the files.

Lives here: ``animator``, ``streamer``, ``backends`` (which model runs: ONNX or torch), ``onnx_backend``,
``idle`` (blinks and gaze), ``frame_rate`` (model steps to output frames), ``writers`` (Live Link Face CSV,
JSON, NPY), ``row_format`` (their text rows, formatted with numpy), ``head`` (the optional head rotation
channel), ``livelink_csv`` (reading captured takes).
May import: numpy, soxr, onnxruntime, ``expression``, ``audio``, ``names``, ``atomic``. Never torch,
``models`` or ``training``: PyTorch is reached only through ``backends.torch_backend``, by name, when a
``.safetensors`` checkpoint is run.
"""
