"""The minimal dataset interface the training loop reads: windows of log-mel frames with their curves.

A dataset is anything with ``names``, ``__len__`` and ``__getitem__`` returning a ``Window``. Curves are
sampled at the feature rate (100 frames/s), one row per mel frame, so a model chooses its own target from
them: SimplifiedModel the centre frame, a per-frame model every frame.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from typing import NamedTuple, Protocol, runtime_checkable

import torch


class Window(NamedTuple):
    mel: torch.Tensor  # (T, N_MELS) log-mel frames
    curves: torch.Tensor  # (T, K) blendshape weights in [0, 1], row t belongs to mel frame t
    visemes: torch.Tensor | None = None  # (T,) int64 viseme id per frame (data.visemes), -1 unknown


UNKNOWN_VISEME = -1  # a frame whose viseme is not known (no phoneme timing): ignored by the viseme probe


def known_visemes(window: Window) -> torch.Tensor:
    """The window's viseme ids ``(..., T)``, all ``UNKNOWN_VISEME`` when it carries none."""
    if window.visemes is not None:
        return window.visemes
    return torch.full(window.mel.shape[:-1], UNKNOWN_VISEME, dtype=torch.int64, device=window.mel.device)


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


class MixedWindows:
    """Several window datasets of one rig as one, each repeated ``repeats[i]`` times: its sampling weight.

    A small corpus that matters (real speech beside hours of generated speech) is seen more often by
    listing it more often, not by a sampler with state: window ``j`` of the mix is always the same window,
    so the training loop's seeded permutation, and resuming, work unchanged.
    """

    def __init__(self, parts: Sequence[WindowDataset], repeats: Sequence[int] | None = None) -> None:
        repeats = list(repeats) if repeats is not None else [1] * len(parts)
        if not parts or len(repeats) != len(parts) or min(repeats) < 1:
            raise ValueError(f"{len(parts)} datasets need as many repeat counts >= 1, got {repeats}")
        for part in parts[1:]:
            if [n.lower() for n in part.names] != [n.lower() for n in parts[0].names]:
                raise ValueError("the mixed datasets must have the same curve names in the same order")
        self.parts, self.repeats = list(parts), repeats
        self.names = parts[0].names
        self.ends = list(itertools.accumulate(len(p) * r for p, r in zip(parts, repeats, strict=True)))

    def __len__(self) -> int:
        return self.ends[-1]

    def _locate(self, index: int) -> tuple[int, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} of {len(self)}")
        part = bisect.bisect_right(self.ends, index)
        local = index - (self.ends[part - 1] if part else 0)
        return part, local % len(self.parts[part])

    def __getitem__(self, index: int) -> Window:
        part, local = self._locate(int(index))
        return self.parts[part][local]

    def batch(self, indices: torch.Tensor) -> Window:
        """``(B, T, 80)`` and ``(B, T, K)``, each part's windows gathered in one call."""
        located = [self._locate(int(i)) for i in indices]
        mel: list[torch.Tensor | None] = [None] * len(located)
        curves: list[torch.Tensor | None] = [None] * len(located)
        visemes: list[torch.Tensor | None] = [None] * len(located)
        for part in sorted({p for p, _ in located}):
            rows = [row for row, (p, _) in enumerate(located) if p == part]
            window = collate(self.parts[part], torch.tensor([located[row][1] for row in rows]))
            ids = known_visemes(window)
            for k, row in enumerate(rows):
                mel[row], curves[row], visemes[row] = window.mel[k], window.curves[k], ids[k]
        return Window(torch.stack(mel), torch.stack(curves), torch.stack(visemes))  # type: ignore[arg-type]


def collate(dataset: WindowDataset, indices: torch.Tensor) -> Window:
    """Stack the windows at ``indices``: ``(B, T, 80)``, ``(B, T, K)`` and visemes ``(B, T)`` (or None)."""
    batch = getattr(dataset, "batch", None)
    if callable(batch):
        result: Window = batch(indices)
        return result
    items = [dataset[int(i)] for i in indices]
    visemes = torch.stack([known_visemes(w) for w in items])
    return Window(torch.stack([w.mel for w in items]), torch.stack([w.curves for w in items]), visemes)
