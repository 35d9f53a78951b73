"""The expression options shared by ``animate`` and ``stream``: emotion, track, presets, articulation,
expressiveness, head motion; parsed into ``expression.layers.ExpressionControls``."""

from __future__ import annotations

import argparse
from typing import Any

from audio2blendshape.expression.articulation import check_articulation
from audio2blendshape.expression.expressiveness import check_expressiveness
from audio2blendshape.expression.head_motion import check_amplitude
from audio2blendshape.expression.layers import ExpressionControls
from audio2blendshape.expression.presets import EMOTIONS

FLAGS = ("--emotion", "--emotion-track", "--preset", "--articulation", "--expressiveness", "--head-motion")


def _ranged(check: Any) -> Any:
    def parse(text: str) -> float:
        try:
            return float(check(float(text)))
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parse


def add_expression_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the expression options (ARKit rigs only; the defaults change nothing)."""
    group = parser.add_argument_group("expression (ARKit rigs; docs/expression.md)")
    emotion = group.add_mutually_exclusive_group()
    emotion.add_argument(
        "--emotion", metavar="NAME=INTENSITY",
        help=f"a constant emotion: {', '.join(EMOTIONS)} or a --preset name; intensity 0-1 (e.g. happy=0.6)",
    )  # fmt: skip
    emotion.add_argument(
        "--emotion-track", metavar="FILE",
        help="emotion cues over time, .json or .csv (time, preset, intensity, ramp)",
    )  # fmt: skip
    group.add_argument(
        "--preset", action="append", default=[], metavar="FILE.json",
        help="a user preset (ARKit name -> weight), named by the file's stem; repeatable",
    )  # fmt: skip
    group.add_argument(
        "--articulation", type=_ranged(check_articulation), default=1.0, metavar="X",
        help="mouth motion 0.5 (muted) to 1.5 (exaggerated), timing kept (default 1)",
    )  # fmt: skip
    group.add_argument(
        "--expressiveness", type=_ranged(check_expressiveness), default=0.0, metavar="X",
        help="prosody-driven brows, eyes, cheeks: 0 off (default), 1 natural, up to 2",
    )  # fmt: skip
    group.add_argument(
        "--head-motion", type=_ranged(check_amplitude), default=0.0, metavar="X",
        help="speech-driven head nods and turns: 0 off (default), 1 natural, up to 2 (seeded by --seed)",
    )  # fmt: skip


def expression_controls(args: argparse.Namespace) -> ExpressionControls | None:
    """The controls the options ask for, or None when none was given (output as without the layer)."""
    given = (
        args.emotion is not None or args.emotion_track is not None or args.preset
        or args.articulation != 1.0 or args.expressiveness > 0 or args.head_motion > 0
    )  # fmt: skip
    if not given:
        return None
    return ExpressionControls.build(
        args.emotion,
        args.emotion_track,
        args.preset,
        args.articulation,
        args.expressiveness,
        args.head_motion,
    )


def require_arkit(is_arkit: bool, source: str, shapes: int, flags: tuple[str, ...] = FLAGS) -> None:
    """A ValueError naming the checkpoint when expression options (``flags``, the command's) are given for a
    rig that is not ARKit."""
    if not is_arkit:
        raise ValueError(
            f"{source}: {', '.join(flags)} need the 52 ARKit shapes, and this checkpoint's rig has {shapes}"
        )
