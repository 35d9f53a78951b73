"""``audio2blendshape data ...``: make (synth), label, import, augment, inspect and check datasets.

Argument parsing and printing only; the work is done in ``data/``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from audio2blendshape.audio.decode import AudioError
from audio2blendshape.cli.data_augment import register_augment
from audio2blendshape.cli.data_check import register_check_corpus
from audio2blendshape.cli.help import COMMAND_HELP
from audio2blendshape.data.align import AlignmentError
from audio2blendshape.data.corpus import SPLITS, CorpusError, build_manifest
from audio2blendshape.data.festival import DEFAULT_VOICES as FESTIVAL_VOICES
from audio2blendshape.data.festival import FestivalError
from audio2blendshape.data.importers import (
    DataImportError,
    Pending,
    assign_splits,
    livelink_loader,
    make_id,
    rig_loader,
    run_import,
)
from audio2blendshape.data.inspect import check, format_stats, stats
from audio2blendshape.data.label_gate import REASONS, Gate
from audio2blendshape.data.label_run import LabelOptions, LabelSummary, label_transcribed
from audio2blendshape.data.speaker_splits import SpeakerSplits
from audio2blendshape.data.synth import DEFAULT_LANGUAGES, LANGUAGES, SynthConfig, run_synth
from audio2blendshape.data.synth_festival import ENGINES, festival_languages
from audio2blendshape.data.transcribed import (
    LabelError,
    Transcribed,
    check_unique,
    is_table,
    read_transcripts,
    utterance_id,
)
from audio2blendshape.names import ARKIT_NAMES
from audio2blendshape.runtime.livelink_csv import LiveLinkCsvError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``data`` and its verbs (synth, label, import, augment, check-corpus, stats, check)."""
    parser = subparsers.add_parser("data", help=COMMAND_HELP["data"])
    verbs = parser.add_subparsers(dest="data_command", required=True)
    for add in (register_synth, register_label, register_import, register_augment, register_check_corpus,
                register_inspect):  # fmt: skip
        add(verbs)


# ---------------------------------------------------------------------------------------------- synth


def _run_synth(args: argparse.Namespace) -> int:
    try:
        voices = tuple(v.strip() for v in args.festival_voices.split(",") if v.strip())
        languages = args.languages or ",".join(
            festival_languages(voices) if args.engine == "festival" else DEFAULT_LANGUAGES
        )
        config = SynthConfig(
            out=Path(args.out), hours=args.hours, languages=tuple(languages.split(",")), seed=args.seed,
            workers=max(1, args.workers), augment=args.augment, random_voices=args.random_voices,
            engine=args.engine, festival_voices=voices, festival_share=args.festival_share,
        )  # fmt: skip
        for flag, value in (("--augment", config.augment), ("--random-voices", config.random_voices)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{flag} is a probability in [0, 1], got {value}")
        summary = run_synth(config, progress=not args.no_progress)
    except (ValueError, FestivalError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    rate = summary.seconds_written / 3600 / max(summary.wall_seconds / 60, 1e-9)
    print(
        f"{config.out}: {summary.written} utterances written ({summary.seconds_written / 3600:.3f} h in "
        f"{summary.wall_seconds:.1f} s, {rate:.2f} h/min), {summary.skipped} already there, "
        f"{len(summary.failed)} failed; the dataset holds {summary.total_hours:.3f} h"
    )
    return 1 if summary.failed else 0


def register_synth(subparsers: Any) -> None:
    """Add ``synth`` (under ``data``) to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "synth", help="make a labelled synthetic corpus with eSpeak NG or festival (resumable, deterministic)"
    )
    parser.add_argument("--out", required=True, help="dataset directory (created; rerun to resume)")
    parser.add_argument("--hours", type=float, required=True, help="hours of audio to make (estimated)")
    parser.add_argument(
        "--languages", default="",
        help=f"comma list from {','.join(LANGUAGES)} (default {','.join(DEFAULT_LANGUAGES)}; "
        "with --engine festival, the languages its voices read)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of the plan (texts, voices, settings)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes")
    parser.add_argument(
        "--augment", type=float, default=0.0, help="probability of augmenting an utterance's audio (0..1)"
    )
    parser.add_argument(
        "--random-voices", type=float, default=0.0,
        help="share of training utterances spoken by a generated voice (0..1; held-out splits unchanged)",
    )  # fmt: skip
    parser.add_argument(
        "--engine", choices=ENGINES, default="espeak",
        help="espeak; festival (its diphone voices speak every utterance); mix (festival speaks "
        "--festival-share of the training utterances its voices can read)",
    )  # fmt: skip
    parser.add_argument(
        "--festival-voices", default=",".join(FESTIVAL_VOICES),
        help="comma list of festival diphone voices (English kal,ked; Italian lp,pc); HTS voices are refused",
    )  # fmt: skip
    parser.add_argument(
        "--festival-share", type=float, default=0.5,
        help="with --engine mix: share of the training utterances festival can read that it speaks (0..1)",
    )  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=_run_synth)


# ---------------------------------------------------------------------------------------------- label


def _items(args: argparse.Namespace) -> list[Transcribed]:
    if (args.audio is None) == (not args.transcripts):
        raise LabelError("give either one AUDIO file with --text, or --transcripts FILE (not both)")
    if args.transcripts:
        if args.text is not None:
            raise LabelError("--text goes with a single AUDIO file; --transcripts FILE holds its own texts")
        items = [item for path in args.transcripts for item in read_transcripts(path, args.speaker)]
        check_unique(items)  # across files too: two sources must not share an utterance id
        return items
    if args.text is None:
        raise LabelError(f'{args.audio}: give its transcript with --text "..."')
    if not args.text.strip():
        raise LabelError(f"{args.audio}: the transcript (--text) is empty")
    name = utterance_id(Path(args.audio.name))
    return [
        Transcribed(args.audio, args.text.strip(), name, args.speaker or args.audio.stem, str(args.audio))
    ]


def _split_of(args: argparse.Namespace) -> Callable[[Transcribed], str]:
    val = [s for listed in args.val_speakers for s in listed.split(",")]
    test = [s for listed in args.test_speakers for s in listed.split(",")]
    if not args.split_by_speaker:
        if args.val_speakers or args.test_speakers or args.held_out_fraction:
            raise LabelError("--val-speakers, --test-speakers, --held-out-fraction need --split-by-speaker")
        return lambda item: str(args.split)
    if args.split != "train":
        raise LabelError("--split-by-speaker puts every speaker not held out in train; drop --split")
    splits = SpeakerSplits.named(val, test, args.held_out_fraction)
    return lambda item: splits.split(item.speaker)


def _hours(seconds: dict[str, float]) -> str:
    listed = [f"{split} {seconds[split] / 3600:.3f} h" for split in SPLITS if split in seconds]
    return ", ".join(listed) or "0 h"


def _print_summary(out: Path, summary: LabelSummary) -> None:
    rejected = sum(len(ids) for ids in summary.rejected.values())
    reasons = ", ".join(f"{r} {len(summary.rejected[r])}" for r in REASONS if r in summary.rejected)
    print(
        f"wrote {len(summary.written)} utterance(s) ({_hours(summary.seconds)}) to {out} in "
        f"{summary.wall_seconds:.0f} s; rejected {rejected}{f' ({reasons})' if reasons else ''}; "
        f"{len(summary.existing)} already there; {len(summary.kept_rejected)} rejected by an earlier run "
        f"(--retry-rejected tries them again)\nthe dataset holds {_hours(summary.dataset_seconds)}"
        + (f"; every verdict is in {summary.report}" if summary.report else "")
    )
    if summary.other_split:
        print(
            f"warning: {len(summary.other_split)} utterance(s) already in the dataset are in another split "
            f"than asked (e.g. {summary.other_split[0]}) and stay there; label into a new --out to re-split",
            file=sys.stderr,
        )


def run_label(args: argparse.Namespace) -> int:
    """The ``data label`` handler: 0 when clips were written or are already there, 1 on an error."""
    try:
        items = _items(args)
        gate = args.gate if args.gate is not None else any(is_table(p) for p in args.transcripts)
        options = LabelOptions(
            fps=args.fps, seed=args.seed, gate=Gate(min_score=args.min_score) if gate else None,
            skip_oov=args.skip_oov, skip_failed=args.skip_failed, retry_rejected=args.retry_rejected,
            workers=max(1, args.workers), dictionary=args.dict, letter_to_sound=args.letter_to_sound,
        )  # fmt: skip
        summary = label_transcribed(items, args.out, _split_of(args), options)
    except (LabelError, AlignmentError, AudioError, CorpusError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    _print_summary(args.out, summary)
    if not summary.written and not summary.existing:
        print("error: no utterance was written", file=sys.stderr)
        return 1
    return 0


def register_label(subparsers: Any) -> None:
    """Add ``label`` (under ``data``) to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "label",
        help="force-align transcribed English speech and write labelled ARKit curves into a dataset",
        description="Force-align transcribed English speech with pocketsphinx, label it with ARKit curves "
        "and write it into a dataset. Resumable: clips already there are skipped.",
    )
    add = parser.add_argument
    add("audio", nargs="?", type=Path, help="one audio file (with --text)")
    add("--text", help="the transcript of AUDIO")
    add("--transcripts", type=Path, metavar="FILE", action="append", default=[],
        help="lines 'audio<TAB>text[<TAB>speaker]', or a table with a header naming id and text "
        "(audio <id>.flac or .wav beside FILE); repeat for several")  # fmt: skip
    add("--out", type=Path, required=True, help="dataset directory (created or extended)")
    add("--speaker", help="speaker of every clip (default: the table's column, or AUDIO's or FILE's stem)")
    add("--split", choices=SPLITS, default="train", help="dataset split (default: train)")
    add("--split-by-speaker", action="store_true", help="hold out whole speakers for val and test")
    add("--val-speakers", action="append", default=[], metavar="A,B", help="speaker ids for val")
    add("--test-speakers", action="append", default=[], metavar="C,D", help="speaker ids for test")
    add("--held-out-fraction", type=float, default=0.0, metavar="F",
        help="share of other speakers held out (by a hash of the id) for the splits not named")  # fmt: skip
    add("--gate", action=argparse.BooleanOptionalAction, default=None,
        help="reject clips whose transcript does not fit the audio (default: on for tables)")  # fmt: skip
    add("--min-score", type=float, default=Gate.min_score, help="the gate's acoustic score per frame")
    add("--letter-to-sound", action=argparse.BooleanOptionalAction, default=True,
        help="words the dictionary lacks: pronounced by eSpeak NG (default), or rejected as oov")  # fmt: skip
    add("--retry-rejected", action="store_true", help="try again the clips an earlier run rejected")
    add("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes")
    add("--fps", type=float, default=100.0, help="curve frame rate (default: 100)")
    add("--seed", type=int, default=0, help="seeds the labeler's per-utterance style")
    add("--dict", type=Path, metavar="FILE", help="extra pronunciations, lines 'word PH1 PH2 ...' (ARPAbet)")
    add("--skip-oov", action="store_true", help="without the gate: drop clips with unknown words")
    add("--skip-failed", action="store_true", help="without the gate: drop clips that cannot be labelled")
    add("--skip-existing", action="store_true", help=argparse.SUPPRESS)  # now the default; kept for scripts
    parser.set_defaults(func=run_label)


# ---------------------------------------------------------------------------------------------- import


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="dataset directory (created or added to)")
    parser.add_argument("--language", default="und", help="language tag of the speech (e.g. en, zh)")
    parser.add_argument("--speaker", default="unknown", help="speaker name recorded with every utterance")
    parser.add_argument("--split", default="train", choices=SPLITS, help="split of files not named below")
    parser.add_argument("--val", nargs="+", action="extend", default=[], metavar="NAME", help="files for val")
    parser.add_argument(
        "--test", nargs="+", action="extend", default=[], metavar="NAME", help="files for test"
    )
    parser.add_argument("--prefix", default="", help="prepended to every utterance id")
    parser.add_argument("--replace", action="store_true", help="overwrite utterances already in --out")


def _pairs(first: Sequence[Path], second: Sequence[Path] | None, suffix: str, what: str) -> list[Path]:
    """``second`` paired with ``first`` in order, or found beside each as the same stem with ``suffix``."""
    if second:
        if len(second) != len(first):
            raise DataImportError(
                f"{len(first)} {what} files but {len(second)} --audio files; pair them in order"
            )
        return list(second)
    found = [f.with_suffix(suffix) for f in first]
    missing = [str(f) for f in found if not f.is_file()]
    if missing:
        raise DataImportError(f"no audio beside {what} file(s): {', '.join(missing)}; pass --audio")
    return found


def _rig_inputs(args: argparse.Namespace) -> tuple[list[Path], list[Path], Path]:
    if args.dir is not None:
        if args.curves:
            raise DataImportError("give either a directory or --curves files, not both")
        if not args.dir.is_dir():
            raise DataImportError(f"{args.dir}: not a directory")
        curves = sorted(args.dir.glob("*.npy"))
        if not curves:
            raise DataImportError(f"{args.dir}: no .npy curve files")
        names = args.names or next(
            (args.dir / n for n in ("names.txt", "blendshape_names.txt") if (args.dir / n).is_file()), None
        )
        if names is None:
            raise DataImportError(f"{args.dir}: no names.txt or blendshape_names.txt; pass --names")
        return curves, _pairs(curves, args.audio, ".wav", "curve"), names
    if not args.curves or args.names is None:
        raise DataImportError("give a directory, or --curves files with --names")
    return list(args.curves), _pairs(args.curves, args.audio, ".wav", "curve"), args.names


def _finish(args: argparse.Namespace, names: Sequence[str], pending: list[Pending]) -> int:
    splits = assign_splits(pending, args.split, args.val, args.test)
    records = run_import(
        args.out, names, pending, splits, language=args.language, speaker=args.speaker,
        replace=args.replace, progress=print,
    )  # fmt: skip
    hours = sum(r["duration"] for r in records) / 3600
    print(f"imported {len(records)} utterances ({hours * 60:.1f} min) into {args.out}")
    return 0


def _import_rig(args: argparse.Namespace) -> int:
    from audio2blendshape.names import Rig

    curves, audio, names_file = _rig_inputs(args)
    names = Rig.from_file(names_file).names
    pending = [
        Pending(make_id(c.stem, args.prefix), c.stem, f"{c} + {a}", rig_loader(c, a, len(names), args.fps))
        for c, a in zip(curves, audio, strict=True)
    ]
    return _finish(args, names, pending)


def _import_livelink(args: argparse.Namespace) -> int:
    audio = _pairs(args.csv, args.audio, ".wav", "CSV")
    pending = [
        Pending(
            make_id(c.stem, args.prefix), c.stem, f"{c} + {a}",
            livelink_loader(c, a, args.fps, args.audio_start, args.trim),
        )
        for c, a in zip(args.csv, audio, strict=True)
    ]  # fmt: skip
    return _finish(args, ARKIT_NAMES, pending)


def _guarded(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (DataImportError, CorpusError, LiveLinkCsvError, AudioError, ValueError, OSError) as error:
            print(f"error: {error}")
            return 1

    return run


def register_import(subparsers: Any) -> None:
    """Add ``import livelink`` and ``import rig`` to an argparse subparsers object (under ``data``)."""
    parser = subparsers.add_parser(
        "import", help="import Live Link Face CSV or any-rig curves into a dataset"
    )
    kinds = parser.add_subparsers(dest="kind", required=True)
    live = kinds.add_parser("livelink", help="Live Link Face CSV takes (52 ARKit curves) with their audio")
    live.add_argument("csv", nargs="+", type=Path, help="CSV files")
    live.add_argument("--audio", nargs="+", type=Path, help="one audio file per CSV (default: CSV stem .wav)")
    live.add_argument("--fps", type=float, help="frame rate (default: largest FF + 1, a standard rate)")
    live.add_argument("--audio-start", help="timecode HH:MM:SS:FF of the audio's first sample")
    live.add_argument("--trim", action="store_true", help="cut audio and curves to their overlap")
    _common(live)
    live.set_defaults(func=_guarded(_import_livelink))
    rig = kinds.add_parser("rig", help="(frames, K) .npy curves of any rig with a names file and audio")
    rig.add_argument("dir", nargs="?", type=Path, help="directory pairing X.npy with X.wav")
    rig.add_argument("--curves", nargs="+", type=Path, default=[], help=".npy files (frames, K)")
    rig.add_argument("--audio", nargs="+", type=Path, help="one audio file per --curves file")
    rig.add_argument("--names", type=Path, help="curve names, one per line, in column order")
    rig.add_argument("--fps", type=float, required=True, help="frame rate of the curves")
    _common(rig)
    rig.set_defaults(func=_guarded(_import_rig))


# ---------------------------------------------------------------------------------------------- stats, check


def _stats_command(args: argparse.Namespace) -> int:
    result = stats(args.dir)  # a CorpusError reaches the command line's handler: stderr, exit status 2
    print(json.dumps(result, indent=1) if args.json else format_stats(result))
    return 0


def _check_command(args: argparse.Namespace) -> int:
    if args.rebuild_manifest:
        build_manifest(args.dir)
    problems = check(args.dir)
    for problem in problems:
        print(problem)
    print(f"{args.dir}: {len(problems)} problem(s)" if problems else f"{args.dir}: ok")
    return 1 if problems else 0


def register_inspect(subparsers: Any) -> None:
    """Add ``stats`` and ``check`` to an argparse subparsers object (wired under ``data``)."""
    parser = subparsers.add_parser("stats", help="hours per language/speaker/split and per-shape activity")
    parser.add_argument("dir", type=Path, help="dataset directory")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=_stats_command)
    parser = subparsers.add_parser("check", help="validate a dataset; nonzero exit on any problem")
    parser.add_argument("dir", type=Path, help="dataset directory")
    parser.add_argument(
        "--rebuild-manifest", action="store_true", help="rebuild manifest.jsonl from meta/ first"
    )
    parser.set_defaults(func=_check_command)
