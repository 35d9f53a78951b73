"""``audio2blendshape evaluate``: score checkpoints, baselines and the labels on a dataset split."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from audio2blendshape.cli.help import COMMAND_HELP
from audio2blendshape.data.corpus import SPLITS
from audio2blendshape.evaluation.evaluate import evaluate_dataset
from audio2blendshape.expression.layers import ExpressionControls
from audio2blendshape.expression.presets import EMOTIONS


def register(subparsers: Any) -> None:
    """Add the top-level ``evaluate`` command to an argparse subparsers object."""
    # fmt: off
    parser = subparsers.add_parser("evaluate", help=COMMAND_HELP["evaluate"])
    parser.add_argument("checkpoints", nargs="*", metavar="CHECKPOINT",
                        help="checkpoint files; 'default': the bundled model; none: oracle and baselines")
    parser.add_argument("--data", type=Path, required=True, help="dataset directory")
    parser.add_argument("--split", default="test", choices=SPLITS, help="split to score (default: test)")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the figures as JSON")
    parser.add_argument("--no-baselines", dest="baselines", action="store_false",
                        help="skip the baseline rows")
    parser.add_argument("--limit", type=int, metavar="N", help="score only the split's first N utterances")
    parser.add_argument("--speakers", metavar="A,B", help="only these speakers' utterances (comma list)")
    parser.add_argument("--emotion", action="append", default=[], metavar="NAME=INTENSITY",
                        help="also score each checkpoint with this emotion (repeatable; 'all': every "
                        "built-in preset at full intensity)")
    parser.add_argument("--articulation", type=float, metavar="X",
                        help="also score with this articulation strength (0.5-1.5), with each --emotion")
    parser.set_defaults(func=_run)
    # fmt: on


def _expressions(args: argparse.Namespace) -> list[tuple[str, ExpressionControls]]:
    """(label, controls) per ``--emotion`` (``all``: every built-in preset at 1), with ``--articulation``."""
    specs = [s for spec in args.emotion for s in ([f"{e}=1" for e in EMOTIONS] if spec == "all" else [spec])]
    articulation = 1.0 if args.articulation is None else args.articulation
    if not specs and args.articulation is not None:
        return [(f"articulation {articulation:g}", ExpressionControls(articulation=articulation))]
    suffix = f", articulation {articulation:g}" if args.articulation is not None else ""
    return [(spec + suffix, ExpressionControls.build(spec, articulation=articulation)) for spec in specs]


def _run(args: argparse.Namespace) -> int:
    paths = [None if c == "default" and not Path(c).exists() else c for c in args.checkpoints]
    speakers = [s.strip() for s in args.speakers.split(",") if s.strip()] if args.speakers else None
    if (args.emotion or args.articulation is not None) and not paths:
        raise ValueError("--emotion and --articulation score checkpoints: name at least one (e.g. default)")
    report = evaluate_dataset(
        paths, args.data, args.split, args.baselines, args.limit, speakers, _expressions(args)
    )
    print(report.table())
    if args.json is not None:
        report.write_json(args.json)
        print(f"wrote {args.json}")
    return 0
