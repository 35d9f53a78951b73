"""audio2blendshape: speech audio to per-frame ARKit blendshape weights."""

from .names import ARKIT, ARKIT_NAMES, Rig

__all__ = ["ARKIT", "ARKIT_NAMES", "Rig"]
__version__ = "0.1.0"
