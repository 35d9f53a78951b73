"""audio2blendshape: speech audio to per-frame ARKit blendshape weights.

The public API, short and stable (``docs/architecture.md`` maps the package)::

    from audio2blendshape import Animator, Streamer, Animation, ARKIT_NAMES
    Animator.load().animate("talk.wav").write("talk.csv")

Names are imported on first use, so ``import audio2blendshape`` (and the CLI's ``--help``) stays instant.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from audio2blendshape.names import ARKIT, ARKIT_NAMES, Rig

if TYPE_CHECKING:
    from audio2blendshape.audio.decode import AudioError, load_audio
    from audio2blendshape.live.outputs import LiveOutputs, open_live_outputs
    from audio2blendshape.runtime.animator import Animator
    from audio2blendshape.runtime.onnx_backend import OnnxFrameModel
    from audio2blendshape.runtime.streamer import Streamer, StreamFrames
    from audio2blendshape.runtime.writers import Animation, read_json_animation

__version__ = "0.1.0"

_LAZY = {
    "Animator": "audio2blendshape.runtime.animator",
    "Streamer": "audio2blendshape.runtime.streamer",
    "StreamFrames": "audio2blendshape.runtime.streamer",
    "Animation": "audio2blendshape.runtime.writers",
    "read_json_animation": "audio2blendshape.runtime.writers",
    "OnnxFrameModel": "audio2blendshape.runtime.onnx_backend",
    "LiveOutputs": "audio2blendshape.live.outputs",
    "open_live_outputs": "audio2blendshape.live.outputs",
    "AudioError": "audio2blendshape.audio.decode",
    "load_audio": "audio2blendshape.audio.decode",
}

__all__ = [
    "ARKIT",
    "ARKIT_NAMES",
    "Animation",
    "Animator",
    "AudioError",
    "LiveOutputs",
    "OnnxFrameModel",
    "Rig",
    "StreamFrames",
    "Streamer",
    "load_audio",
    "open_live_outputs",
    "read_json_animation",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'audio2blendshape' has no attribute {name!r}")
