"""The picture in docs/expression.md: chosen curves of examples/hello.wav with and without each layer.

    python bench/expression/plot_layers.py [-o docs/img/expression_layers.png]

Five panels share the time axis: the lip gap (jawOpen - mouthClose) and mouthSmileLeft under a full smile
(the gap is untouched where the lips close); jawOpen at articulation 0.6 and 1.4; browInnerUp and
cheekSquintLeft with expressiveness 1; the head's yaw, pitch and roll with head motion 1 (seed 0).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from audio2blendshape.expression.layers import ExpressionControls
from audio2blendshape.names import ARKIT_NAMES
from audio2blendshape.runtime.animator import Animator

REPO = Path(__file__).resolve().parents[2]
COL = {name: i for i, name in enumerate(ARKIT_NAMES)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-o", "--output", type=Path, default=REPO / "docs" / "img" / "expression_layers.png")
    args = parser.parse_args()
    audio, fps = REPO / "examples" / "hello.wav", 60.0
    animator = Animator.load()

    def run(**controls: Any) -> tuple[np.ndarray, np.ndarray | None]:
        animation = animator.animate(
            audio, fps=fps, idle=False, expression=ExpressionControls.build(**controls)
        )
        return animation.weights, animation.head

    plain, _ = run()
    happy, _ = run(emotion="happy=1")
    muted, _ = run(articulation=0.6)
    loud, _ = run(articulation=1.4)
    lively, _ = run(expressiveness=1.0)
    _, head = run(head_motion=1.0)
    t = np.arange(len(plain)) / fps
    gap = lambda w: w[:, COL["jawOpen"]] - w[:, COL["mouthClose"]]  # noqa: E731
    fig, axes = plt.subplots(5, 1, figsize=(11, 11), sharex=True)
    panels = [
        ("emotion happy=1: lip gap", [(gap(plain), "none"), (gap(happy), "happy=1")]),
        ("emotion happy=1: mouthSmileLeft", [(plain[:, COL["mouthSmileLeft"]], "none"),
                                             (happy[:, COL["mouthSmileLeft"]], "happy=1")]),
        ("articulation: jawOpen", [(plain[:, COL["jawOpen"]], "1 (none)"), (muted[:, COL["jawOpen"]], "0.6"),
                                   (loud[:, COL["jawOpen"]], "1.4")]),
        ("expressiveness 1: brows and cheeks", [(plain[:, COL["browInnerUp"]], "browInnerUp, none"),
                                                (lively[:, COL["browInnerUp"]], "browInnerUp, 1"),
                                                (lively[:, COL["cheekSquintLeft"]], "cheekSquintLeft, 1")]),
    ]  # fmt: skip
    for ax, (title, lines) in zip(axes, panels, strict=False):
        for values, label in lines:
            ax.plot(t, values, label=label, lw=1.2)
        ax.set_title(title, fontsize=10, loc="left")
        ax.legend(fontsize=8, loc="upper right")
        ax.grid(alpha=0.3)
    assert head is not None
    for column, label in enumerate(("yaw", "pitch", "roll")):
        axes[4].plot(t, np.degrees(head[:, column]), label=label, lw=1.2)
    axes[4].set_title("head motion 1 (seed 0), degrees; none: all 0", fontsize=10, loc="left")
    axes[4].legend(fontsize=8, loc="upper right")
    axes[4].grid(alpha=0.3)
    axes[4].set_xlabel("time (s), examples/hello.wav")
    fig.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=80)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
