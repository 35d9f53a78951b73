"""``audio2blendshape preview``: a PNG plot of the curves, an MP4 of a 2D face, or a standalone HTML take."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from audio2blendshape.cli.help import COMMAND_HELP
from audio2blendshape.preview.make import preview


def run_preview(args: argparse.Namespace) -> int:
    """The ``preview`` handler; errors propagate as ValueError/OSError for the CLI to report."""
    if args.out is None and args.html is None:
        raise ValueError("give -o OUT (.png or .mp4), --html TAKE.html, or both")
    if args.out is not None:
        out = preview(args.audio, args.out, checkpoint=args.checkpoint, fps=args.fps, text=args.text,
                      top=args.top, size=args.size, idle=args.idle, seed=args.seed)  # fmt: skip
        print(f"wrote {out}")
    if args.html is not None:
        from audio2blendshape.preview.html_export import export_take

        page = export_take(
            args.audio, args.html, args.checkpoint, fps=args.fps, idle=args.idle, seed=args.seed
        )
        print(f"wrote {page} (plays offline in a browser: audio, animation and the 3D head inside)")
    return 0


def register(subparsers: Any) -> None:
    """Add the top-level ``preview`` command to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "preview",
        help=COMMAND_HELP["preview"],
        description="Animate AUDIO with a checkpoint and write OUT: a .png plots the most active curves "
        "over time (any rig); an .mp4 draws a 2D face moved by the ARKit weights, with the audio. Phoneme "
        "marks are shown when AUDIO has a sidecar <stem>.phonemes.json or is a dataset clip (audio/<id>.wav "
        "beside meta/<id>.json).",
    )
    parser.add_argument("audio", type=Path, help="speech audio (WAV/FLAC/OGG/MP3)")
    parser.add_argument("-o", "--out", type=Path, help="out.png (curve plot) or out.mp4 (face video)")
    parser.add_argument("--html", type=Path, help="also (or only) write TAKE.html: one self-contained "
                        "page with the audio, the animation and the 3D head, playable offline")  # fmt: skip
    parser.add_argument(
        "--checkpoint", type=Path, help="a checkpoint (.safetensors); default: the bundled one"
    )
    parser.add_argument("--fps", type=float, default=30.0, help="animation frame rate (default: 30)")
    parser.add_argument("--text", help="what is said: the plot's title, the video's caption "
                        "(default: <stem>.txt beside AUDIO, or the dataset record's text)")  # fmt: skip
    parser.add_argument("--top", type=int, default=8, help="curves in the plot, by variance (default: 8)")
    parser.add_argument(
        "--size", type=int, default=480, help="video width and height in pixels (default: 480)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the blinks and gaze")
    parser.add_argument("--no-idle", dest="idle", action="store_false", help="no blinks or gaze")
    parser.set_defaults(func=run_preview)
