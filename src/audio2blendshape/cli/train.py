"""``train`` (a run from a TOML config, resumable), ``grads`` (the seed's step 6 on one batch) and ``average``
(two checkpoints' weights averaged)."""

from __future__ import annotations

import argparse
from pathlib import Path

from audio2blendshape.audio.constants import WINDOW_FRAMES
from audio2blendshape.cli.help import COMMAND_HELP

DEFAULT_PLOT = "gradient_flow.png"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the top-level ``train`` and ``grads`` commands."""
    parser = subparsers.add_parser("train", help=COMMAND_HELP["train"])
    parser.add_argument("config", nargs="?", help="TOML config file (defaults apply to keys it leaves out)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one config field, e.g. --set train.lr=3e-4 (repeatable)")  # fmt: skip
    parser.add_argument("--no-report", dest="report", action="store_false",
                        help="skip the gradient report printed after training")  # fmt: skip
    parser.set_defaults(func=_run_train)
    parser = subparsers.add_parser("grads", help=COMMAND_HELP["grads"])
    parser.add_argument("checkpoint", nargs="?", help="a checkpoint (.safetensors); default: a fresh model")
    parser.add_argument("--batch", type=int, default=16, help="windows in the batch (seed: 16)")
    parser.add_argument("--frames", type=int, default=WINDOW_FRAMES, help="frames per window (seed: 300)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the batch and a fresh model")
    parser.add_argument("--max-norm", type=float, default=1.0, help="clip_grad_norm_ max_norm (inf: no clip)")
    parser.add_argument("--plot", default=DEFAULT_PLOT, help="where to write the gradient-flow PNG")
    parser.set_defaults(func=_run_grads)
    parser = subparsers.add_parser("average", help=COMMAND_HELP["average"])
    parser.add_argument("first", help="a checkpoint (.safetensors, or 'default': the bundled model)")
    parser.add_argument(
        "second", help="a checkpoint of the same model (its attention window may be narrower)"
    )
    parser.add_argument("--weight", type=float, required=True, help="the second's share, 0..1")
    parser.add_argument("-o", "--out", required=True, help="the averaged checkpoint to write")
    parser.set_defaults(func=_run_average)


def _run_train(args: argparse.Namespace) -> int:
    from audio2blendshape.training.config import load_config
    from audio2blendshape.training.gradient_report import report_text
    from audio2blendshape.training.loop import train

    config = load_config(args.config, args.overrides)
    summary = train(config)
    if args.report and summary["world"] == 1:
        plot = Path(config.train.out_dir) / DEFAULT_PLOT
        t = config.train
        checkpoint = Path(summary["checkpoint"])
        print(report_text(checkpoint, 16, config.data.window_frames, t.seed, plot, t.grad_clip))
    return 0


def _run_grads(args: argparse.Namespace) -> int:
    from audio2blendshape.training.gradient_report import report_text

    checkpoint = Path(args.checkpoint) if args.checkpoint else None
    print(report_text(checkpoint, args.batch, args.frames, args.seed, Path(args.plot), args.max_norm))
    return 0


def _run_average(args: argparse.Namespace) -> int:
    from audio2blendshape.training.weight_average import average_checkpoints

    out = average_checkpoints(args.first, args.second, args.weight, args.out)
    print(f"wrote {out}: (1 - {args.weight:g}) x {args.first} + {args.weight:g} x {args.second}")
    return 0
