"""The ``audio2blendshape`` command line: one thin module per command group, imported only when run.

Only the module of the command being run is imported, so ``--help`` and a mistyped command answer at once.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from audio2blendshape.cli.help import COMMAND_HELP

# (module under cli/, the commands it registers)
COMMAND_MODULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("train", ("train", "grads", "average")),
    ("data", ("data",)),
    ("animate", ("animate",)),
    ("stream", ("stream", "export-onnx")),
    ("evaluate", ("evaluate",)),
    ("preview", ("preview",)),
    ("studio", ("studio",)),
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


# What `pip install 'audio2blendshape[train]'` adds to the inference-only base install.
TRAIN_EXTRA = frozenset(
    {"torch", "safetensors", "onnx", "onnxscript", "espeakng_loader", "faker", "pocketsphinx", "num2words"}
)


class MissingExtraError(ImportError):
    """A command that needs packages of the ``train`` extra, which this install lacks."""


def missing_extra(error: ImportError) -> MissingExtraError | None:
    """The user-facing error for an import of a ``train``-extra package, or None for any other failure."""
    if (error.name or "").split(".")[0] not in TRAIN_EXTRA:
        return None
    return MissingExtraError(
        f"{error.name} is not installed: this command needs the training extra "
        "(pip install 'audio2blendshape[train]')"
    )


def _command(argv: Sequence[str]) -> str:
    """The command word of ``argv`` ("" when there is none): the first argument that is not an option."""
    return next((arg for arg in argv if not arg.startswith("-")), "")


M_TOP_PAD = -2  # glibc mallopt parameter: bytes of slack kept when the heap grows or shrinks
HEAP_SLACK = 64 << 20


def keep_heap_pages() -> None:
    """Have glibc keep 64 MB of freed heap instead of returning it after every chunk.

    Each chunk's feature temporaries (a few MB) were given back to the kernel on free and faulted in again
    on the next chunk: on a 10-minute file that was 0.2 s of page faults, more than the features themselves.
    The CLI owns its process, so it sets this; elsewhere (musl, macOS, Windows) nothing happens.
    """
    with contextlib.suppress(OSError, AttributeError, TypeError):
        ctypes.CDLL(None).mallopt(M_TOP_PAD, HEAP_SLACK)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    keep_heap_pages()
    try:
        args = build_parser(_command(argv)).parse_args(argv)
    except ImportError as error:
        if (friendly := missing_extra(error)) is None:
            raise
        print(f"audio2blendshape {_command(argv)}: error: {friendly}", file=sys.stderr)
        return 2
    # Libraries (the ONNX exporter, onnxruntime) only warn; our own notes show; -v shows everything.
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    logging.getLogger("audio2blendshape").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        result: int = args.func(args)
        return result
    except ImportError as error:
        if (friendly := missing_extra(error)) is None or args.verbose:
            raise
        print(f"audio2blendshape {args.command}: error: {friendly}", file=sys.stderr)
        return 2
    except (ValueError, OSError, FloatingPointError) as error:
        if args.verbose or os.environ.get("AUDIO2BLENDSHAPE_DEBUG"):
            raise
        print(f"audio2blendshape {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
