"""``animate AUDIO… [-o OUT] [--format csv|json|npy] [--fps 60] [--checkpoint P] [--no-idle] [--emotion …]``.

Each AUDIO is a file or a directory (its audio files, not recursing). Outputs go next to each input with
the format's suffix, or into ``-o``: a file when there is a single input file and ``-o`` has a suffix, a
directory otherwise. ``--format`` defaults to the suffix of an ``-o`` file, else ``csv``. Every output is
planned before any work starts, so name clashes and would-be overwrites of an input are reported at once;
a file that fails is reported and the others still run (exit status 2 if any failed).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audio2blendshape.atomic import deferred_sync
from audio2blendshape.audio.decode import AudioError
from audio2blendshape.cli.expression import add_expression_arguments, expression_controls, require_arkit
from audio2blendshape.cli.help import COMMAND_HELP
from audio2blendshape.runtime.backends import BACKENDS
from audio2blendshape.runtime.frame_rate import check_fps
from audio2blendshape.runtime.writers import FORMATS, WRITERS, WriterError, format_from_suffix

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".w64")
LONG_AUDIO_BYTES = 2_000_000  # inputs bigger than this (about a minute of 16 kHz WAV) get a progress bar


class AnimateUsageError(ValueError):
    """Inputs or options that cannot be used; raised before any audio is processed."""


@dataclass(frozen=True)
class Job:
    """One input file and where its animation goes."""

    audio: Path
    output: Path


def expand_inputs(paths: list[Path]) -> tuple[list[Path], bool]:
    """Audio files named or found in named directories (sorted), and whether any directory was given."""
    files: list[Path] = []
    any_directory = False
    for path in paths:
        if path.is_dir():
            any_directory = True
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                raise AnimateUsageError(
                    f"{path}: no audio files ({', '.join(AUDIO_SUFFIXES)}) in the directory"
                )
            files += found
        elif path.exists():
            files.append(path)
        else:
            raise AnimateUsageError(f"{path}: no such file or directory")
    return files, any_directory


def choose_format(requested: str | None, out: Path | None, out_is_file: bool) -> str:
    """``--format``, else the suffix of an ``-o`` file, else csv; a clash between the two is an error."""
    if out is None or not out_is_file:
        return requested or "csv"
    if requested is None:
        return format_from_suffix(out)
    if out.suffix.lower() in {w.extension for w in WRITERS.values()} and format_from_suffix(out) != requested:
        raise AnimateUsageError(
            f"-o {out} names a .{format_from_suffix(out)} file but --format is {requested}"
        )
    return requested


def plan_jobs(inputs: list[Path], out: Path | None, requested_format: str | None) -> tuple[list[Job], str]:
    """Each input's output path and the format; rejects clashes and outputs that would overwrite an input."""
    files, any_directory = expand_inputs(inputs)
    out_is_file = (
        out is not None
        and len(files) == 1
        and not any_directory
        and not out.is_dir()
        and not str(out).endswith(("/", os.sep))
        and out.suffix != ""
    )
    fmt = choose_format(requested_format, out, out_is_file)
    extension = WRITERS[fmt].extension
    if out is None:
        jobs = [Job(f, f.with_suffix(extension)) for f in files]
    elif out_is_file:
        jobs = [Job(files[0], out)]
    else:
        jobs = [Job(f, out / (f.stem + extension)) for f in files]
    sources = {f.resolve() for f in files}
    seen: dict[Path, Path] = {}
    for job in jobs:
        target = job.output.resolve()
        if target in sources:
            raise AnimateUsageError(f"{job.output}: the output would overwrite an input audio file")
        if target in seen:
            raise AnimateUsageError(
                f"{job.output}: both {seen[target]} and {job.audio} would be written there; use -o DIR "
                "with inputs whose names differ"
            )
        seen[target] = job.audio
    return jobs, fmt


def run_jobs(args: argparse.Namespace) -> int:
    """The ``animate`` command: plan, load the checkpoint once, animate and write every input."""
    from audio2blendshape.runtime.animator import CHUNK_SECONDS, Animator

    jobs, fmt = plan_jobs([Path(p) for p in args.audio], args.output, args.format)
    expression = expression_controls(args)
    fps = check_fps(args.fps)
    if fmt == "csv" and fps != round(fps):
        raise AnimateUsageError(f"--fps {fps:g}: Live Link Face CSV needs an integer frame rate")
    # --threads: on a busy machine 1 thread can beat 2 (see docs/animate.md)
    animator = Animator.load(args.checkpoint, device=args.device, backend=args.backend, threads=args.threads)
    if fmt == "csv" and not animator.is_arkit:
        raise AnimateUsageError(
            f"{animator.source}: the checkpoint's rig has {len(animator.names)} shapes, not the 52 ARKit "
            "ones, so it cannot be written as Live Link Face CSV; use --format json or npy"
        )
    if expression is not None:
        require_arkit(animator.is_arkit, animator.source, len(animator.names))
    failed = 0
    # An fsync per output costs more than animating a short clip: one sync at the end covers them all.
    with deferred_sync():
        for job in jobs:
            try:
                progress = job.audio.stat().st_size > LONG_AUDIO_BYTES
                animation = animator.animate(
                    job.audio, fps=fps, idle=args.idle, seed=args.seed, progress=progress,
                    chunk_seconds=args.chunk_seconds or CHUNK_SECONDS, expression=expression,
                )  # fmt: skip
                animation.write(job.output, format=fmt)
            except (AudioError, WriterError, OSError) as error:
                failed += 1
                print(f"audio2blendshape animate: error: {error}", file=sys.stderr)
                continue
            frames = f"{animation.frames} frames at {animation.fps:g} fps, {animation.duration:.2f} s"
            print(f"{job.output}  ({frames})")
    if failed:
        print(f"audio2blendshape animate: {failed} of {len(jobs)} inputs failed", file=sys.stderr)
    return 2 if failed else 0


def register(subparsers: Any) -> None:
    """Add the top-level ``animate`` command to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "animate", help=COMMAND_HELP["animate"],
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("audio", nargs="+", help="audio files and/or directories of audio files")
    parser.add_argument("-o", "--output", type=Path, help="output file (one input) or directory")
    parser.add_argument(
        "--format", choices=FORMATS, help="output format (default: from -o's suffix, else csv)"
    )
    parser.add_argument("--fps", type=float, default=60.0, help="output frames per second (default 60)")
    parser.add_argument("--checkpoint", help="a .safetensors checkpoint or .onnx export (default: bundled)")
    parser.add_argument("--no-idle", dest="idle", action="store_false",
                        help="no blinks or eye movement (added by default for ARKit rigs)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of the blinks, eye and head movement")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1 or auto")
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="auto: onnxruntime for .onnx and the bundled model, "
                        "torch for .safetensors")  # fmt: skip
    parser.add_argument("--chunk-seconds", type=float,
                        help="audio seconds per chunk (default 20); bounds memory, not results")  # fmt: skip
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    add_expression_arguments(parser)
    parser.set_defaults(func=run_jobs)
