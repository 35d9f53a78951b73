"""The minimal dataset interface the training loop reads: windows of log-mel frames with their curves.

A dataset is anything with ``names``, ``__len__`` and ``__getitem__`` returning a ``Window``. Curves are
sampled at the feature rate (100 frames/s), one row per mel frame, so a model chooses its own target from
them: SimplifiedModel the centre frame, a per-frame model every frame.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

import torch


class Window(NamedTuple):
    mel: torch.Tensor  # (T, N_MELS) log-mel frames
    curves: torch.Tensor  # (T, K) blendshape weights in [0, 1], row t belongs to mel frame t


@runtime_checkable
class WindowDataset(Protocol):
    names: tuple[str, ...]  # the K curve names, in column order

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Window: ...


class TensorWindows:
    """Windows held in memory as two stacked tensors ``(N, T, 80)`` and ``(N, T, K)``."""

    def __init__(self, mel: torch.Tensor, curves: torch.Tensor, names: tuple[str, ...]) -> None:
        if mel.ndim != 3 or curves.ndim != 3 or mel.shape[:2] != curves.shape[:2]:
            raise ValueError(f"mel {tuple(mel.shape)} and curves {tuple(curves.shape)} do not pair up")
        if curves.shape[2] != len(names):
            raise ValueError(f"curves have {curves.shape[2]} columns but {len(names)} names were given")
        self.mel = mel
        self.curves = curves
        self.names = names

    def __len__(self) -> int:
        return self.mel.shape[0]

    def __getitem__(self, index: int) -> Window:
        return Window(self.mel[index], self.curves[index])

    def batch(self, indices: torch.Tensor) -> Window:
        """Many windows at once: ``(B, T, 80)`` and ``(B, T, K)``, without a Python loop."""
        return Window(self.mel[indices], self.curves[indices])


def collate(dataset: WindowDataset, indices: torch.Tensor) -> Window:
    """Stack the windows at ``indices`` into ``(B, T, 80)`` and ``(B, T, K)``."""
    batch = getattr(dataset, "batch", None)
    if callable(batch):
        result: Window = batch(indices)
        return result
    items = [dataset[int(i)] for i in indices]
    return Window(torch.stack([w.mel for w in items]), torch.stack([w.curves for w in items]))
