"""The ``audio2blendshape`` command line: one thin module per command group, imported only when run.

Only the module of the command being run is imported, so ``--help`` and a mistyped command answer at once.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from audio2blendshape.cli.help import COMMAND_HELP

# (module under cli/, the commands it registers)
COMMAND_MODULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("train", ("train", "grads")),
    ("data", ("data",)),
    ("animate", ("animate",)),
    ("stream", ("stream", "export-onnx")),
    ("evaluate", ("evaluate",)),
    ("preview", ("preview",)),
)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or (``command`` given) one whose other commands are stubs (not imported)."""
    parser = argparse.ArgumentParser(
        prog="audio2blendshape", description="Speech audio to ARKit blendshape animation."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module, names in COMMAND_MODULES:
        if command is None or command in names:
            importlib.import_module(f"audio2blendshape.cli.{module}").register(subparsers)
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
