"""``data augment``: degraded copies of a corpus, for training on real recordings or scoring by condition."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from audio2blendshape.data.augment_corpus import CONDITIONS, augment_corpus
from audio2blendshape.data.corpus import SPLITS


def register_augment(subparsers: Any) -> None:
    """Add ``augment`` (under ``data``) to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "augment",
        help="write degraded copies of a dataset (rooms, noise, telephone, codecs, speed) with their labels",
    )
    parser.add_argument("source", type=Path, help="the dataset to copy")
    parser.add_argument("--out", type=Path, required=True, help="dataset the copies go to (resumable)")
    parser.add_argument("--condition", choices=CONDITIONS, default="mixed",
                        help="mixed: a random chain per copy; speed: 0.9 or 1.1 times as fast, labels moved "
                             "with it; others: one fixed damage")  # fmt: skip
    parser.add_argument("--copies", type=int, default=1, help="copies per utterance (default 1)")
    parser.add_argument("--splits", default=",".join(SPLITS), help="comma list of splits to copy")
    parser.add_argument("--seed", type=int, default=0, help="seeds every copy's effects (with its id)")
    parser.set_defaults(func=_run_augment)


def _run_augment(args: argparse.Namespace) -> int:
    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown:
        raise ValueError(f"--splits: unknown split(s) {unknown}; choose from {', '.join(SPLITS)}")
    summary = augment_corpus(args.source, args.out, args.condition, args.copies, splits, args.seed)
    print(f"{args.out}: {len(summary.written)} copies written ({summary.seconds / 3600:.3f} h), "
          f"{summary.skipped} already there")  # fmt: skip
    return 0
