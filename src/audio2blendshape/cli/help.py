"""One-line help of every command, in one table.

``audio2blendshape --help`` shows it without importing the commands' modules (torch, onnxruntime...), and
each command module's ``register()`` takes its text from here.
"""

COMMAND_HELP: dict[str, str] = {
    "train": "train a model from a TOML config (resumes from its out_dir)",
    "grads": "one (16, 300, 80) batch through forward and backward: the gradient report",
    "average": "average two checkpoints' weights (a model soup) into one",
    "data": "make, import, label, inspect and check datasets",
    "animate": "speech audio -> blendshape animation (Live Link Face CSV, JSON or NPY)",
    "stream": "animate a file or the microphone live to VMC/Live Link/WS",
    "export-onnx": "export a FrameModel checkpoint to one ONNX file",
    "evaluate": "score checkpoints on a split: errors and lip sync",
    "preview": "animate an audio file and write a PNG plot of the curves or an MP4 of a 2D face",
    "studio": "a local web app: audio and a 3D face in sync, A/B takes, your own avatar",
}
