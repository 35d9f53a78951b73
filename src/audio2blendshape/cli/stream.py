"""The ``stream`` and ``export-onnx`` commands: argument parsing and wiring.

``stream``: audio chunks (``audio.chunks``) through a ``Streamer`` to the live outputs, paced by
``live.session``. ``export-onnx``: ``models.onnx_export``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from audio2blendshape.audio.chunks import file_chunks, mic_chunks
from audio2blendshape.cli.expression import (
    FLAGS,
    add_expression_arguments,
    expression_controls,
    require_arkit,
)
from audio2blendshape.cli.help import COMMAND_HELP
from audio2blendshape.expression.layers import ExpressionControls
from audio2blendshape.live.session import COMPUTE_MARGIN_S, FrameSender, stream_audio
from audio2blendshape.names import ARKIT_NAMES
from audio2blendshape.runtime.backends import BACKENDS, load_stream_model
from audio2blendshape.runtime.streamer import Streamer


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the top-level ``stream`` and ``export-onnx`` commands."""
    _add_stream(subparsers)
    _add_export(subparsers)


def _add_stream(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("stream", help=COMMAND_HELP["stream"])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("input", nargs="?", help="an audio file to stream")
    source.add_argument("--mic", action="store_true", help="stream the default (or --mic-device) microphone")
    parser.add_argument("--vmc", metavar="HOST:PORT", help="VMC/OSC receiver, e.g. 127.0.0.1:39539")
    parser.add_argument(
        "--livelink", metavar="HOST:PORT", help="Unreal Live Link Face receiver, e.g. 127.0.0.1:11111"
    )
    parser.add_argument("--ws", metavar="PORT", help="serve a WebSocket on PORT (127.0.0.1) or HOST:PORT")
    parser.add_argument(
        "--realtime", action="store_true", help="play a file at real-time pace (the mic always is)"
    )
    parser.add_argument(
        "--checkpoint", help="a .safetensors checkpoint or an .onnx export (default: the bundled model)"
    )
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="auto: onnxruntime for .onnx and the bundled model, "
                        "torch for .safetensors")  # fmt: skip
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for inference (default 1)")
    parser.add_argument("--fps", type=float, default=60.0, help="output frames per second")
    parser.add_argument("--chunk-ms", type=float, default=20.0, help="audio per push, 10-100 ms")
    parser.add_argument("--no-idle", dest="idle", action="store_false", help="no blinks or gaze")
    parser.add_argument("--seed", type=int, default=0, help="seed of the idle layer and head motion")
    parser.add_argument("--resample-quality", choices=("HQ", "MQ", "LQ", "QQ"), default="HQ",
                        help="soxr quality off 16 kHz: HQ equals offline, LQ/QQ buffer less")  # fmt: skip
    parser.add_argument("--mic-rate", type=int, default=16_000, help="microphone sample rate in Hz")
    parser.add_argument("--mic-device", help="sounddevice input device (name or index)")
    parser.add_argument(
        "--seconds", type=float, help="stop after this much audio (default: the end / Ctrl-C)"
    )
    parser.add_argument("--osc-in", type=int, metavar="PORT",
                        help="take live emotion changes as OSC /a2b/emotion on 127.0.0.1:PORT")  # fmt: skip
    add_expression_arguments(parser)
    parser.set_defaults(func=run_stream_command)


def _add_export(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export-onnx", help=COMMAND_HELP["export-onnx"])
    parser.add_argument("--checkpoint", help="a .safetensors checkpoint (default: the bundled one)")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("-o", "--output", help="the .onnx file to write")
    target.add_argument("--bundled", action="store_true",
                        help="rebuild the package's own ONNX files from its bundled checkpoint")  # fmt: skip
    parser.add_argument("--streaming", action="store_true", help="the fixed-window streaming variant")
    parser.add_argument(
        "--new-steps", type=int, default=1, help="--streaming: output steps per call (20 ms each)"
    )
    parser.set_defaults(func=run_export_command)


def run_export_command(args: argparse.Namespace) -> int:
    from audio2blendshape.models.onnx_export import OPSET, export_checkpoint
    from audio2blendshape.runtime.onnx_backend import OnnxFrameModel, OnnxWindowModel

    if args.bundled:
        return _export_bundled()
    path = export_checkpoint(args.checkpoint, args.output, args.streaming, args.new_steps)
    loaded = (OnnxWindowModel if args.streaming else OnnxFrameModel)(path)
    inputs = ", ".join(f"{i.name} {i.shape}" for i in loaded.session.get_inputs())
    outputs = ", ".join(f"{o.name} {o.shape}" for o in loaded.session.get_outputs())
    print(f"wrote {path} ({loaded.metadata['variant']}, opset {OPSET}): {inputs} -> {outputs}; "
          f"{len(loaded.names)} shapes, context {loaded.context_steps} + look-ahead {loaded.lookahead_steps} "
          f"steps at {loaded.steps_per_second:g} steps/s")  # fmt: skip
    return 0


def _expression(args: argparse.Namespace, names: tuple[str, ...], source: str) -> ExpressionControls | None:
    """The stream's expression controls: as asked, or neutral ones (so WebSocket and OSC commands can
    change the emotion live) for an ARKit rig; None for another rig, which refuses the options."""
    controls = expression_controls(args)
    keys = {n.lower() for n in names}
    arkit = len(names) == len(ARKIT_NAMES) and keys == {n.lower() for n in ARKIT_NAMES}
    if controls is not None or args.osc_in is not None:
        require_arkit(arkit, source, len(names), (*FLAGS, "--osc-in"))
    return controls if controls is not None else ExpressionControls() if arkit else None


def run_stream_command(args: argparse.Namespace) -> int:
    from audio2blendshape.live.control import ExpressionCommands, OscControl
    from audio2blendshape.live.outputs import open_live_outputs

    if not 10.0 <= args.chunk_ms <= 100.0:
        raise ValueError(f"--chunk-ms must be within 10..100, got {args.chunk_ms}")
    if not (args.vmc or args.livelink or args.ws):
        raise ValueError("nothing to stream to: give --vmc HOST:PORT, --livelink HOST:PORT or --ws PORT")
    websocket = f"127.0.0.1:{args.ws}" if args.ws and args.ws.isdigit() else args.ws
    model = load_stream_model(args.checkpoint, args.backend, args.threads)
    file_source = None if args.mic else file_chunks(args.input, args.chunk_ms)
    rate = args.mic_rate if file_source is None else file_source.sample_rate
    with contextlib.ExitStack() as stack:
        # The microphone opens first, so a missing one is reported before any output starts, and is closed
        # by the stack on any later error; it polls the sender made below, before the first chunk is awaited.
        chunks = stack.enter_context(
            contextlib.closing(
                file_source
                if file_source is not None
                else mic_chunks(rate, args.chunk_ms, args.mic_device, lambda: sender.send_due())
            )
        )
        expression = _expression(args, tuple(model.names), args.checkpoint or "the bundled model")
        streamer = Streamer(model, rate, args.fps, args.idle, args.seed,
                            resample_quality=args.resample_quality, expression=expression)  # fmt: skip
        commands = ExpressionCommands(streamer) if expression is not None else None
        realtime = args.realtime or args.mic
        latency = streamer.latency(args.chunk_ms / 1000).total_s + COMPUTE_MARGIN_S if realtime else None
        on_message = commands.handle_json if commands is not None else None
        outputs = stack.enter_context(
            open_live_outputs(args.vmc, args.livelink, websocket, fps=args.fps, on_message=on_message)
        )
        if commands is not None and args.osc_in is not None:
            stack.enter_context(OscControl(commands, args.osc_in))
        sender = FrameSender(outputs, streamer.names, latency)
        if latency is not None:
            print(f"streaming with {latency * 1e3:.1f} ms latency; Ctrl-C stops", file=sys.stderr)
        paced = args.realtime and not args.mic
        report = stream_audio(streamer, chunks, sender, paced, args.seconds)
    print(report.summary(latency, streamer.state.nonfinite_samples))
    return 0


def _export_bundled() -> int:
    import importlib.resources

    from audio2blendshape.models.onnx_export import export_bundled

    assets = Path(str(importlib.resources.files("audio2blendshape").joinpath("assets")))
    for path in export_bundled(assets):
        print(f"wrote {path}")
    return 0
