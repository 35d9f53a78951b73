"""The ``audio2blendshape`` command line."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .audio import WINDOW_FRAMES

DEFAULT_PLOT = "gradient_flow.png"


def _add_train(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train a model from a TOML config (resumes from its out_dir)"
    )
    parser.add_argument("config", nargs="?", help="TOML config file (defaults apply to keys it leaves out)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one config field, e.g. --set train.lr=3e-4 (repeatable)")  # fmt: skip
    parser.add_argument("--no-report", dest="report", action="store_false",
                        help="skip the gradient report printed after training")  # fmt: skip
    parser.set_defaults(func=_run_train)


def _add_grads(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "grads", help="one (16, 300, 80) batch through forward and backward: the gradient report"
    )
    parser.add_argument("checkpoint", nargs="?", help="a checkpoint (.safetensors); default: a fresh model")
    parser.add_argument("--batch", type=int, default=16, help="windows in the batch (seed: 16)")
    parser.add_argument("--frames", type=int, default=WINDOW_FRAMES, help="frames per window (seed: 300)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the batch and a fresh model")
    parser.add_argument("--max-norm", type=float, default=1.0, help="clip_grad_norm_ max_norm (inf: no clip)")
    parser.add_argument("--plot", default=DEFAULT_PLOT, help="where to write the gradient-flow PNG")
    parser.set_defaults(func=_run_grads)


def _run_train(args: argparse.Namespace) -> int:
    from .config import load_config
    from .train import train

    config = load_config(args.config, args.overrides)
    summary = train(config)
    if args.report and summary["world"] == 1:
        plot = Path(config.train.out_dir) / DEFAULT_PLOT
        t = config.train
        checkpoint = Path(summary["checkpoint"])
        print(_report_text(checkpoint, 16, config.data.window_frames, t.seed, plot, t.grad_clip))
    return 0


def _report_text(
    checkpoint: Path | None, batch: int, frames: int, seed: int, plot: Path, max_norm: float
) -> str:
    import torch

    from .checkpoint import build_model, load_checkpoint
    from .config import Config
    from .losses import BlendshapeLoss
    from .names import ARKIT_NAMES
    from .report import gradient_report
    from .synthetic import synthetic_windows

    torch.manual_seed(seed)
    if checkpoint is not None:
        loaded = load_checkpoint(checkpoint)
        model, config, names = loaded.model, loaded.config, loaded.names
        source = f"checkpoint {checkpoint} (step {loaded.step})"
    else:
        config, names = Config(), ARKIT_NAMES
        model, source = build_model(config, len(names)), "a freshly initialised SimplifiedModel"
    data = synthetic_windows(batch, seed + 10_000, frames)
    curves = data.curves
    if tuple(n.lower() for n in names) != tuple(n.lower() for n in ARKIT_NAMES):
        # Generated speech is labelled for ARKit; another rig's columns get seeded random targets.
        curves = torch.rand(batch, frames, len(names), generator=torch.Generator().manual_seed(seed))
    report = gradient_report(model, data.mel, curves, BlendshapeLoss(names, config.loss), max_norm=max_norm,
                             warn_norm=config.train.grad_warn_norm, plot_path=plot)  # fmt: skip
    header = (
        f"gradient report: {source}; batch mel {tuple(data.mel.shape)} -> weights ({batch}, {len(names)})"
    )
    return header + "\n\n" + report.format()


def _run_grads(args: argparse.Namespace) -> int:
    checkpoint = Path(args.checkpoint) if args.checkpoint else None
    print(_report_text(checkpoint, args.batch, args.frames, args.seed, Path(args.plot), args.max_norm))
    return 0


def _add_data(subparsers: argparse._SubParsersAction) -> None:
    from . import data_tools, importers, label_cli, synth

    parser = subparsers.add_parser("data", help=COMMAND_HELP["data"])
    verbs = parser.add_subparsers(dest="data_command", required=True)
    for module in (synth, label_cli, importers, data_tools):
        module.register(verbs)


def _add_module(name: str) -> Callable[[argparse._SubParsersAction], None]:
    def register(subparsers: argparse._SubParsersAction) -> None:
        importlib.import_module(f".{name}", __package__).register(subparsers)

    return register


# One-line help of the commands whose modules import torch: `audio2blendshape --help` shows it without
# importing them, and each module's register() takes its text from here.
COMMAND_HELP: dict[str, str] = {
    "data": "make, import, label, inspect and check datasets",
    "animate": "speech audio -> blendshape animation (Live Link Face CSV, JSON or NPY)",
    "stream": "animate a file or the microphone live to VMC/Live Link/WS",
    "export-onnx": "export a FrameModel checkpoint to one ONNX file",
    "evaluate": "score checkpoints on a split: errors and lip sync",
    "preview": "animate an audio file and write a PNG plot of the curves or an MP4 of a 2D face",
}
# Only the module of the command being run is imported, so --help and a mistyped command answer at once.
LAZY_COMMANDS: tuple[tuple[Callable[[argparse._SubParsersAction], None], tuple[str, ...]], ...] = (
    (_add_data, ("data",)),
    (_add_module("animate_cli"), ("animate",)),
    (_add_module("stream_cli"), ("stream", "export-onnx")),
    (_add_module("evaluate"), ("evaluate",)),
    (_add_module("preview"), ("preview",)),
)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or (``command`` given) one whose other torch-importing commands are stubs."""
    parser = argparse.ArgumentParser(
        prog="audio2blendshape", description="Speech audio to ARKit blendshape animation."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_train(subparsers)
    _add_grads(subparsers)
    for register, names in LAZY_COMMANDS:
        if command is None or command in names:
            register(subparsers)
        else:
            for name in names:
                subparsers.add_parser(name, help=COMMAND_HELP[name], add_help=False)
    return parser


def _command(argv: Sequence[str]) -> str:
    """The command word of ``argv`` ("" when there is none): the first argument that is not an option."""
    return next((arg for arg in argv if not arg.startswith("-")), "")


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_command(argv)).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s"
    )
    try:
        result: int = args.func(args)
        return result
    except (ValueError, OSError, FloatingPointError) as error:
        if args.verbose or os.environ.get("AUDIO2BLENDSHAPE_DEBUG"):
            raise
        print(f"audio2blendshape {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
