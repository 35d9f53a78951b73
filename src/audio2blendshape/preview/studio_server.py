"""The studio's local web server: the page, its static files, and a small JSON API over a ``StudioStore``.

Standard library only (``http.server``). Safe by default: it binds the loopback interface unless told
otherwise (and then warns), answers only requests addressed to a loopback host name when bound there (a web
page elsewhere cannot reach it through DNS rebinding), refuses bodies over the upload limit with 413 before
reading them, serves static files only from its own folder of known file types (no ``..``, no encoded
escape, no symlink out), and never runs anything it receives: uploads are decoded as audio or read as CSV.

Routes: ``GET /`` the page; ``GET /<file>`` static files; ``GET /api/info``; ``GET /api/audio/<clip>.wav``;
``GET /api/animation?clip=&model=``; ``GET /api/export?clip=&model=&format=csv|json|npy``;
``POST /api/upload?name=`` (audio bytes); ``POST /api/capture?name=`` (a Live Link Face CSV).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from audio2blendshape.preview.studio_store import BUNDLED, StudioError, StudioStore, animation_json

log = logging.getLogger(__name__)

WEB_ROOT = Path(str(resources.files("audio2blendshape.preview") / "web"))
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".glb": "model/gltf-binary",
    ".txt": "text/plain; charset=utf-8",
}
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")
# The page's own files and what the user hands it in the browser (blob:, data:); nothing from elsewhere.
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; media-src 'self' blob: data:; connect-src 'self' blob: data:"
)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) only reaches this machine."""
    if host.strip("[]") in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str) -> str | None:
    """The warning to print when the studio listens beyond this machine, else None."""
    if is_loopback(host):
        return None
    return (
        f"the studio listens on {host}: anyone who can reach this machine on that interface can use "
        "it (upload audio, run the model); bind 127.0.0.1 unless you need that"
    )


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The ``[first, last]`` bytes one ``Range: bytes=...`` header asks of a body of ``size`` bytes; None for
    no header or one this server does not serve partially (several ranges, another unit), which gets the
    whole body as HTTP allows. A StudioError 416 for a range that lies outside the body."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first_text, dash, last_text = header[len("bytes=") :].strip().partition("-")
    if not dash or not (first_text.isdigit() or last_text.isdigit()):
        return None
    if not first_text:  # bytes=-N: the last N bytes
        first, last = max(size - int(last_text), 0), size - 1
    else:
        first = int(first_text)
        last = min(int(last_text), size - 1) if last_text.isdigit() else size - 1
    if size == 0 or first > last or first >= size:
        raise StudioError(f"range {header!r} lies outside the {size} bytes", 416)
    return first, last


def static_file(root: Path, url_path: str) -> Path | None:
    """The file under ``root`` that ``url_path`` names, or None when it names nothing servable.

    The path is percent-decoded once; segments ``..``, ``.``, empty ones, backslashes and NUL are refused
    before touching the disk, and the resolved file must still lie under ``root`` (a symlink cannot lead out).
    """
    path = unquote(url_path)
    if "\\" in path or "\x00" in path or "%" in path:
        return None
    parts = path.lstrip("/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        return None
    candidate = root.joinpath(*parts).resolve()
    if not candidate.is_relative_to(root.resolve()) or candidate.suffix not in CONTENT_TYPES:
        return None
    return candidate if candidate.is_file() else None


class StudioHandler(BaseHTTPRequestHandler):
    """One request. The server object carries ``store`` and ``loopback_only``."""

    server: StudioHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("studio: " + format, *args)

    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        headers = {
            "Content-Type": content_type,
            "Content-Length": str(len(body)),
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": CSP,
            "Referrer-Policy": "no-referrer",
            **(extra or {}),
        }
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_ranged(self, body: bytes, content_type: str) -> None:
        """The body, or the part a ``Range`` header asks for (206): seeking in a long clip's audio."""
        try:
            wanted = byte_range(self.headers.get("Range"), len(body))
        except StudioError as error:
            return self._send(
                416, str(error).encode(), "text/plain", {"Content-Range": f"bytes */{len(body)}"}
            )
        if wanted is None:
            return self._send(200, body, content_type, {"Accept-Ranges": "bytes"})
        first, last = wanted
        extra = {"Accept-Ranges": "bytes", "Content-Range": f"bytes {first}-{last}/{len(body)}"}
        self._send(206, body[first : last + 1], content_type, extra)

    def _json(self, data: object, status: int = 200) -> None:
        self._send(status, json.dumps(data, separators=(",", ":")).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json({"error": message}, status)

    def _host_allowed(self) -> bool:
        """When bound to loopback, only requests naming a loopback host (no DNS rebinding)."""
        if not self.server.loopback_only:
            return True
        try:
            host = urlsplit("//" + (self.headers.get("Host") or "")).hostname or ""
        except ValueError:  # a malformed Host header
            return False
        return is_loopback(host)

    def do_GET(self) -> None:
        self._dispatch(self._get)

    def do_HEAD(self) -> None:
        self._dispatch(self._get)

    def do_POST(self) -> None:
        self._dispatch(self._post)

    def _dispatch(self, route: Any) -> None:
        if not self._host_allowed():
            self.close_connection = True
            return self._error(403, "the studio answers only requests addressed to this machine")
        url = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        try:
            route(url.path, query)
        except StudioError as error:
            self._error(error.status, str(error))
        except (ValueError, OSError) as error:  # a model or a writer refusing the input
            log.warning("studio: %s", error)
            self._error(400, str(error))

    def _get(self, path: str, query: dict[str, str]) -> None:
        store = self.server.store
        if path == "/api/info":
            clips = [{"id": c.id, "name": c.name, "duration": c.duration} for c in store.clips.values()]
            return self._json(
                {
                    "models": list(store.models),
                    "clips": clips,
                    "max_upload_bytes": store.config.max_upload_bytes,
                }
            )
        if path.startswith("/api/audio/") and path.endswith(".wav"):
            return self._send_ranged(store.wav(path[len("/api/audio/") : -4]), "audio/wav")
        if path == "/api/animation":
            animation = store.animation(query.get("clip", ""), query.get("model", BUNDLED))
            return self._json(animation_json(animation))
        if path == "/api/export":
            fmt = query.get("format", "csv")
            body, name = store.export(query.get("clip", ""), query.get("model", BUNDLED), fmt)
            disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
            return self._send(200, body, "application/octet-stream", disposition)
        file = static_file(WEB_ROOT, "/index.html" if path == "/" else path)
        if file is None:
            return self._error(404, "not found")
        self._send(200, file.read_bytes(), CONTENT_TYPES[file.suffix])

    def _body(self) -> bytes:
        """The request body, refused (413, connection closed unread) over the upload limit."""
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise StudioError("a Content-Length is required", 411)
        if int(length) > self.server.store.config.max_upload_bytes:
            self.close_connection = True
            limit = self.server.store.config.max_upload_bytes
            raise StudioError(f"upload of {int(length)} bytes is over the limit of {limit} bytes", 413)
        return self.rfile.read(int(length))

    def _post(self, path: str, query: dict[str, str]) -> None:
        store = self.server.store
        origin = self.headers.get("Origin")
        if origin and self.server.loopback_only and not is_loopback(urlsplit(origin).hostname or ""):
            raise StudioError("uploads are accepted only from the studio's own page", 403)
        if path == "/api/upload":
            clip = store.add_upload(self._body(), query.get("name", "audio.wav"))
            return self._json({"id": clip.id, "name": clip.name, "duration": clip.duration})
        if path == "/api/capture":
            capture_id, animation = store.add_capture(self._body(), query.get("name", "take.csv"))
            return self._json({"id": capture_id, "animation": animation_json(animation)})
        self._error(404, "not found")


class StudioHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server holding the studio's store."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], store: StudioStore) -> None:
        self.store = store
        self.loopback_only = is_loopback(address[0])
        super().__init__(address, StudioHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else str(host)
        return f"http://{'[' + shown + ']' if ':' in shown else shown}:{port}/"


def make_server(store: StudioStore, host: str = "127.0.0.1", port: int = 0) -> StudioHTTPServer:
    """A studio server bound to ``host:port`` (port 0: any free port), warning when not on loopback."""
    warning = exposure_warning(host)
    if warning:
        log.warning(warning)
    try:
        return StudioHTTPServer((host, port), store)
    except OSError as error:
        raise OSError(f"the studio cannot listen on {host}:{port} ({error.strerror or error})") from error


def serve_in_thread(server: StudioHTTPServer) -> threading.Thread:
    """Run ``server`` in a daemon thread (tests, and the CLI while it waits for Ctrl-C)."""
    thread = threading.Thread(target=server.serve_forever, name="studio", daemon=True)
    thread.start()
    return thread
