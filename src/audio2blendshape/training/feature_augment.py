"""Training-time augmentation of log-mel windows for voices the model has never heard.

A FrameModel trained on the generated corpus closed its lips on 97% of m/b/p for one held-out eSpeak voice
and on 34% for another (evaluate's test split holds voices never heard in training): what separated them was
the voice, not the phoneme. Voices differ mostly in vocal-tract length, which scales every formant by one
factor, and in spectral balance. Both have cheap equivalents on log-mel features, applied per window:

* **warp** (vocal-tract-length perturbation): the mel axis is stretched by a factor drawn from
  ``[1 - warp, 1 + warp]``; output bin ``i`` reads the input at ``i / factor`` (linear interpolation, edges
  held). The mel scale is not linear in frequency, so this is an approximation, the usual one.
* **tilt**: a straight line across the bins, from ``-s/2`` at the lowest to ``+s/2`` at the highest, with
  ``s`` drawn from ``[-tilt, tilt]`` (feature units: 1.0 is the log-mel's whole scaling unit), added to
  the features: a brighter or darker voice or microphone.

Draws come from a seed, so a step's augmentation is reproducible and a resumed run continues exactly.
"""

from __future__ import annotations

import torch


def warp_bins(mel: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Stretch each window's mel axis: ``mel (B, T, F)``, ``factors (B,)`` (1: unchanged) -> ``(B, T, F)``."""
    batch, frames, bins = mel.shape
    axis = torch.arange(bins, device=mel.device, dtype=mel.dtype)
    source = (axis[None, :] / factors.to(mel.device, mel.dtype)[:, None]).clamp(0, bins - 1)  # (B, F)
    lower = source.floor().long().clamp(max=bins - 2)
    weight = (source - lower.to(mel.dtype))[:, None, :]
    index = lower[:, None, :].expand(batch, frames, bins)
    low, high = mel.gather(2, index), mel.gather(2, index + 1)
    return low + (high - low) * weight


def tilt_bins(mel: torch.Tensor, slopes: torch.Tensor) -> torch.Tensor:
    """Add a line across the bins: ``mel (B, T, F)``, ``slopes (B,)`` (top minus bottom) -> ``(B, T, F)``."""
    ramp = torch.linspace(-0.5, 0.5, mel.shape[-1], device=mel.device, dtype=mel.dtype)
    return mel + slopes.to(mel.device, mel.dtype)[:, None, None] * ramp


def augment_features(mel: torch.Tensor, warp: float, tilt: float, seed: int) -> torch.Tensor:
    """Warp and tilt each window of ``mel (B, T, F)`` with draws from ``seed``; both 0 returns ``mel``."""
    if not warp and not tilt:
        return mel
    if not 0.0 <= warp < 0.5 or tilt < 0.0:
        raise ValueError(f"feature warp must be in [0, 0.5) and tilt >= 0, got warp={warp}, tilt={tilt}")
    generator = torch.Generator().manual_seed(seed)
    uniform = torch.rand(2, mel.shape[0], generator=generator, dtype=torch.float64) * 2.0 - 1.0
    if warp:
        mel = warp_bins(mel, 1.0 + warp * uniform[0])
    if tilt:
        mel = tilt_bins(mel, tilt * uniform[1])
    return mel
