"""``audio2blendshape studio``: the local web app that plays animations on a 3D face (docs/studio.md)."""

from __future__ import annotations

import argparse
import tempfile
import webbrowser
from pathlib import Path
from typing import Any

from audio2blendshape.cli.help import COMMAND_HELP

DEFAULT_PORT = 8770


def run_studio(args: argparse.Namespace) -> int:
    """The ``studio`` handler: serve until Ctrl-C; errors propagate as ValueError/OSError."""
    from audio2blendshape.preview.studio_server import exposure_warning, make_server
    from audio2blendshape.preview.studio_store import BUNDLED, StudioConfig, StudioStore

    models: dict[str, Path | None] = {BUNDLED: None}
    for path in args.checkpoint or []:
        if not path.is_file():
            raise OSError(f"{path}: no such checkpoint")
        label = f"{path.parent.name}-{path.stem}" if path.parent.name else path.stem  # runs/x/last -> x-last
        models[label if label not in models else str(len(models))] = path
    config = StudioConfig(max_upload_bytes=args.max_upload_mb * 1024 * 1024, fps=args.fps)
    with tempfile.TemporaryDirectory(prefix="a2b-studio-") as workdir:
        store = StudioStore(Path(workdir), models, config)
        for audio in args.audio:
            store.add_file(audio)
        if warning := exposure_warning(args.host):
            print(f"warning: {warning}")
        server = make_server(store, args.host, args.port)
        print(f"studio at {server.url} (Ctrl-C stops it)", flush=True)
        if args.browser:
            webbrowser.open(server.url)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("studio stopped")
        finally:
            server.server_close()
    return 0


def register(subparsers: Any) -> None:
    """Add the ``studio`` command to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "studio",
        help=COMMAND_HELP["studio"],
        description="A local web app: pick, drop or record audio, watch it animate a 3D face in sync with "
        "the sound, scrub the curves, compare two checkpoints or a Live Link Face CSV side by side, load "
        "your own glTF/GLB/VRM avatar, export CSV/JSON/NPY. Runs offline, on 127.0.0.1 unless --host.",
    )
    parser.add_argument("audio", type=Path, nargs="*", help="audio files to open (WAV/FLAC/OGG/MP3)")
    parser.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        help="a checkpoint (.onnx or .safetensors) to offer beside the bundled model; repeat for more",
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT}; 0: any)"
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to listen on (default: 127.0.0.1, "
        "this machine only; anything else is reachable from the network and warns)",
    )
    parser.add_argument("--no-browser", dest="browser", action="store_false", help="do not open a browser")
    parser.add_argument("--fps", type=float, default=60.0, help="animation frame rate (default: 60)")
    parser.add_argument("--max-upload-mb", type=int, default=64, help="largest upload accepted (default: 64)")
    parser.set_defaults(func=run_studio)
