"""Training-time views of a corpus: fixed-length windows of log-mel frames with their curves.

Everything is preloaded: the split's log-mel (from the ``mel/`` cache) and its curves, resampled to the mel
rate, are concatenated into two tensors ``(N, 80)`` and ``(N, K)``; a window is a start row into them, so
``batch(indices)`` is a single gather. A corpus is small (hours of speech are a few hundred MB at most).

``CorpusWindows`` gives the seed's 3 s windows (SimplifiedModel predicts the centre frame) with a small
hop; ``CorpusSequences`` gives long non-overlapping windows (10 s) for a per-frame model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audio2blendshape.audio.constants import (
    LOG_FLOOR,
    LOG_OFFSET,
    LOG_SCALE,
    WINDOW_FRAMES,
)
from audio2blendshape.data.corpus import (
    MANIFEST_FILE,
    SPLITS,
    CorpusError,
    load_curves,
    load_mel,
    read_manifest,
    read_names,
    record_phonemes,
    resample_curves,
)
from audio2blendshape.data.labels import frame_visemes
from audio2blendshape.data.visemes import SILENCE
from audio2blendshape.data.windows import UNKNOWN_VISEME, Window

SILENCE_MEL = (float(np.log10(LOG_FLOOR)) + LOG_OFFSET) / LOG_SCALE  # the feature value of digital silence
SEQUENCE_FRAMES = 1000  # 10 s windows for sequence models


def window_starts(frames: int, window: int, hop: int) -> np.ndarray:
    """Start rows of windows of ``window`` frames every ``hop`` frames, plus one flush with the end.

    ``frames`` must be at least ``window``; the extra last window keeps an utterance's tail in training.
    """
    if frames < window:
        raise ValueError(f"{frames} frames cannot hold a window of {window}")
    starts = np.arange(0, frames - window + 1, hop, dtype=np.int64)
    if starts[-1] != frames - window:
        starts = np.append(starts, frames - window)
    return starts


def _pad(
    mel: np.ndarray, curves: np.ndarray, visemes: np.ndarray, frames: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Extend a short utterance to ``frames``: silence for the mel (and its viseme where known), the last
    pose held for the curves."""
    extra = frames - mel.shape[0]
    mel = np.concatenate([mel, np.full((extra, mel.shape[1]), SILENCE_MEL, dtype=np.float32)])
    curves = np.concatenate([curves, np.repeat(curves[-1:], extra, axis=0)])
    fill = UNKNOWN_VISEME if visemes.size and visemes[0] == UNKNOWN_VISEME else SILENCE
    return mel, curves, np.concatenate([visemes, np.full(extra, fill, dtype=np.int64)])


def record_visemes(record: dict[str, Any], frames: int, where: Path) -> np.ndarray:
    """Viseme id per mel frame ``(frames,)`` from the record's phoneme timing; ``UNKNOWN_VISEME`` without."""
    try:
        spans = record_phonemes(record)
        if spans is None:
            return np.full(frames, UNKNOWN_VISEME, dtype=np.int64)
        return frame_visemes(spans, float(record["duration"]), frames)
    except (TypeError, ValueError) as error:
        raise CorpusError(f"{where}: utterance {record.get('id')!r}: bad phoneme timing: {error}") from error


def _wanted(split: str | Sequence[str] | None) -> set[str]:
    chosen = set(SPLITS) if split is None else {split} if isinstance(split, str) else set(split)
    unknown = chosen - set(SPLITS)
    if unknown:
        raise CorpusError(f"unknown split(s) {sorted(unknown)}; choose from {', '.join(SPLITS)}")
    return chosen


class CorpusWindows:
    """Windows of ``window_frames`` mel frames with one curve row per frame, over one split of a corpus.

    Satisfies the ``WindowDataset`` protocol: ``window[i]`` is ``Window(mel (W, 80), curves (W, K))`` and
    ``batch(indices)`` returns ``(B, W, 80)`` and ``(B, W, K)``. Utterances shorter than a window are padded
    (silence, last pose held) when ``pad_short`` is true and skipped otherwise; ``skipped`` lists them.
    """

    def __init__(
        self,
        root: str | Path,
        split: str | Sequence[str] | None = "train",
        window_frames: int = WINDOW_FRAMES,
        hop_frames: int | None = None,
        *,
        pad_short: bool = True,
        device: torch.device | str = "cpu",
    ) -> None:
        self.root = Path(root)
        self.window_frames = int(window_frames)
        self.hop_frames = int(hop_frames) if hop_frames is not None else max(1, self.window_frames // 10)
        if self.window_frames < 1 or self.hop_frames < 1:
            raise ValueError(f"window ({window_frames}) and hop ({hop_frames}) must be positive frame counts")
        self.names: tuple[str, ...] = read_names(self.root)
        wanted = _wanted(split)
        self.records: list[dict[str, Any]] = [r for r in read_manifest(self.root) if r.get("split") in wanted]
        if not self.records:
            raise CorpusError(f"{self.root}: no utterances in split(s) {', '.join(sorted(wanted))}")
        self.skipped: list[str] = []
        mel, curves, visemes, starts, self._owners = self._load(pad_short)
        self.mel: torch.Tensor = mel.to(device)  # (N, 80) every kept utterance, end to end
        self.curves: torch.Tensor = curves.to(device)  # (N, K) at the mel rate
        self.visemes: torch.Tensor = visemes.to(device)  # (N,) viseme id per row, UNKNOWN_VISEME if untimed
        self.starts: torch.Tensor = starts.to(device)  # (windows,) first row of each window
        self._steps = torch.arange(self.window_frames, device=device)

    def _load(
        self, pad_short: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
        mels: list[np.ndarray] = []
        curves: list[np.ndarray] = []
        visemes: list[np.ndarray] = []
        starts: list[np.ndarray] = []
        owners: list[np.ndarray] = []
        offset = 0
        for number, record in enumerate(self.records):
            mel = load_mel(self.root, record)
            raw = load_curves(self.root, record)
            if raw.shape[1] != len(self.names):
                raise CorpusError(
                    f"{self.root / record['curves']}: {raw.shape[1]} columns "
                    f"but names.txt lists {len(self.names)} names"
                )
            rows = resample_curves(raw, float(record["fps"]), mel.shape[0])
            ids = record_visemes(record, mel.shape[0], self.root / MANIFEST_FILE)
            if mel.shape[0] < self.window_frames:
                if not pad_short:
                    self.skipped.append(str(record["id"]))
                    continue
                mel, rows, ids = _pad(mel, rows, ids, self.window_frames)
            found = window_starts(mel.shape[0], self.window_frames, self.hop_frames)
            mels.append(mel)
            curves.append(rows)
            visemes.append(ids)
            starts.append(found + offset)
            owners.append(np.full(found.shape, number, dtype=np.int64))
            offset += mel.shape[0]
        if not starts:
            raise CorpusError(f"{self.root}: every utterance is shorter than {self.window_frames} frames")
        return (
            torch.from_numpy(np.concatenate(mels)),
            torch.from_numpy(np.concatenate(curves)),
            torch.from_numpy(np.concatenate(visemes)),
            torch.from_numpy(np.concatenate(starts)),
            np.concatenate(owners),
        )

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    def __getitem__(self, index: int) -> Window:
        """Window ``index``: mel ``(W, 80)`` and curves ``(W, K)``."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"window {index} out of range for {len(self)} windows")
        start = int(self.starts[index])
        stop = start + self.window_frames
        return Window(self.mel[start:stop], self.curves[start:stop], self.visemes[start:stop])

    def batch(self, indices: torch.Tensor) -> Window:
        """Windows at ``indices`` ``(B,)``: mel ``(B, W, 80)`` and curves ``(B, W, K)``, one gather each."""
        rows = (self.starts[indices.to(self.starts.device)][:, None] + self._steps[None, :]).reshape(-1)
        shape = (-1, self.window_frames)
        # index_select copies whole rows, faster than advanced indexing with a 2-D index
        mel = self.mel.index_select(0, rows).view(*shape, self.mel.shape[1])
        curves = self.curves.index_select(0, rows).view(*shape, self.curves.shape[1])
        return Window(mel, curves, self.visemes.index_select(0, rows).view(*shape))

    def utterance(self, index: int) -> str:
        """Id of the utterance window ``index`` comes from."""
        return str(self.records[int(self._owners[index])]["id"])

    @property
    def hours(self) -> float:
        """Hours of audio in the preloaded split (padding excluded)."""
        return sum(float(r["duration"]) for r in self.records if r["id"] not in self.skipped) / 3600


class CorpusSequences(CorpusWindows):
    """Long windows for per-frame sequence models: 10 s by default, not overlapping (hop = window)."""

    def __init__(
        self,
        root: str | Path,
        split: str | Sequence[str] | None = "train",
        window_frames: int = SEQUENCE_FRAMES,
        hop_frames: int | None = None,
        *,
        pad_short: bool = True,
        device: torch.device | str = "cpu",
    ) -> None:
        hop = hop_frames if hop_frames is not None else window_frames
        super().__init__(root, split, window_frames, hop, pad_short=pad_short, device=device)
