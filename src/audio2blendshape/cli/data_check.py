"""``data check-corpus``: a reserved voice reads a corpus's texts into a test-only check corpus."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from audio2blendshape.data.check_corpus import run_check_corpus
from audio2blendshape.data.corpus import SPLITS
from audio2blendshape.data.festival import RESERVED_VOICES, FestivalError


def register_check_corpus(subparsers: Any) -> None:
    """Add ``check-corpus`` (under ``data``) to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "check-corpus",
        help="festival's reserved HTS voice reads a dataset's texts: a test-only corpus with exact timing, "
        "for independent checks (never for training)",
    )
    parser.add_argument("source", type=Path, help="the dataset whose texts are read")
    parser.add_argument("--out", type=Path, required=True, help="the check corpus to write (resumable)")
    parser.add_argument("--split", choices=SPLITS, default="test", help="the source split (default test)")
    parser.add_argument("--voice", choices=tuple(RESERVED_VOICES), default=next(iter(RESERVED_VOICES)),
                        help="the reserved festival voice")  # fmt: skip
    parser.add_argument("--workers", type=int, default=2, help="festival processes at once (default 2)")
    parser.set_defaults(func=_run_check_corpus)


def _run_check_corpus(args: argparse.Namespace) -> int:
    try:
        summary = run_check_corpus(args.source, args.split, args.voice, args.out, max(1, args.workers))
    except FestivalError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for message in summary.failed:
        print(f"failed: {message}", file=sys.stderr)
    print(
        f"{args.out}: {summary.written} utterances written in {summary.wall_seconds:.1f} s, "
        f"{summary.skipped} already there, {len(summary.failed)} failed, {summary.unreadable} source "
        f"utterances not readable by {args.voice}; the corpus holds {summary.total_hours:.3f} h"
    )
    return 1 if summary.failed else 0
