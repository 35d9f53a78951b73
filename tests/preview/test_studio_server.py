"""The studio's server without a browser: its API, its exports, and that it is safe by default."""

from __future__ import annotations

import http.client
import io
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import run_cli
from preview.studio_page import serving

from audio2blendshape.preview.studio_server import (
    WEB_ROOT,
    StudioHTTPServer,
    byte_range,
    exposure_warning,
    make_server,
    static_file,
)
from audio2blendshape.preview.studio_store import BUNDLED, StudioConfig, StudioError, StudioStore
from audio2blendshape.runtime.writers import get_writer

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "examples" / "hello.wav"
LIMIT = 200_000  # bytes: a small upload limit so the 413 test sends little


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioHTTPServer]:
    config = StudioConfig(max_upload_bytes=LIMIT)
    with serving(StudioStore(tmp_path_factory.mktemp("studio"), {BUNDLED: None}, config)) as server:
        yield server


def request(
    server: StudioHTTPServer,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """A raw request (http.client sends the path exactly as given, unnormalised)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wav_bytes(seconds: float, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    t = np.arange(int(rate * seconds)) / rate
    soundfile.write(buffer, 0.3 * np.sin(2 * np.pi * 220 * t), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def test_binds_loopback_by_default_and_warns_for_other_hosts(server: StudioHTTPServer) -> None:
    assert server.server_address[0] == "127.0.0.1" and server.loopback_only
    assert exposure_warning("127.0.0.1") is None and exposure_warning("localhost") is None
    assert exposure_warning("::1") is None
    warning = exposure_warning("0.0.0.0")
    assert warning is not None and "0.0.0.0" in warning


def test_a_non_loopback_host_logs_the_warning(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    store = StudioStore(tmp_path, {BUNDLED: None})
    with caplog.at_level(logging.WARNING, logger="audio2blendshape.preview.studio_server"):
        exposed = make_server(store, "0.0.0.0", 0)
    exposed.server_close()
    assert any("anyone who can reach this machine" in r.getMessage() for r in caplog.records)
    assert not exposed.loopback_only


def test_the_page_and_its_modules_are_served_with_a_strict_policy(server: StudioHTTPServer) -> None:
    status, page = request(server, "GET", "/")
    assert status == 200 and b'type="importmap"' in page and b"studio.js" in page
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    connection.request("GET", "/vendor/three.module.js")
    response = connection.getresponse()
    assert response.status == 200 and b"REVISION" in response.read()
    policy = response.getheader("Content-Security-Policy") or ""
    assert "default-src 'self'" in policy and "http" not in policy  # nothing from a CDN
    connection.close()


@pytest.mark.parametrize(
    "path",
    [
        "/../pyproject.toml",
        "/..%2f..%2fpyproject.toml",
        "/%2e%2e/%2e%2e/pyproject.toml",
        "/js/../../studio_server.py",
        "/vendor/..%5c..%5cstudio_store.py",
        "/%252e%252e/studio_server.py",
        "/../../../../etc/passwd",
        "/studio_server.py",
        "/head/%00.glb",
        "//etc/passwd",
    ],
)
def test_no_path_traversal_through_the_file_routes(server: StudioHTTPServer, path: str) -> None:
    status, body = request(server, "GET", path)
    assert status in (400, 404)
    assert b"[tool" not in body and b"root:" not in body and b"import" not in body


def test_static_files_stay_under_the_web_root(tmp_path: Path) -> None:
    (tmp_path / "web").mkdir()
    (tmp_path / "secret.js").write_text("secret")
    (tmp_path / "web" / "ok.js").write_text("ok")
    (tmp_path / "web" / "link.js").symlink_to(tmp_path / "secret.js")
    root = tmp_path / "web"
    assert static_file(root, "/ok.js") == (root / "ok.js").resolve()
    assert static_file(root, "/link.js") is None  # a symlink out of the root
    assert static_file(root, "/../secret.js") is None
    assert static_file(root, "/ok.py") is None  # not a served file type
    assert static_file(WEB_ROOT, "/head/ict_face_arkit.glb") is not None


def test_requests_for_another_host_name_are_refused(server: StudioHTTPServer) -> None:
    """A page on evil.example that resolves its name to 127.0.0.1 (DNS rebinding) gets nothing."""
    status, _ = request(server, "GET", "/api/info", headers={"Host": "evil.example:8770"})
    assert status == 403
    status, _ = request(server, "GET", "/api/info", headers={"Host": f"localhost:{server.server_address[1]}"})
    assert status == 200


def test_uploads_over_the_limit_get_413_unread(server: StudioHTTPServer) -> None:
    status, body = request(server, "POST", "/api/upload?name=big.wav", body=b"\0" * (LIMIT + 1))
    assert status == 413 and b"over the limit" in body
    status, _ = request(server, "POST", "/api/upload?name=x.wav", body=None, headers={"Content-Length": "x"})
    assert status == 411


def test_uploads_are_only_decoded_as_audio_never_kept_or_run(
    server: StudioHTTPServer, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    script = f"#!/bin/sh\ntouch {marker}\n".encode()
    workdir = server.store.workdir
    for name in ("run.sh", "../../evil.wav", "x.wav"):
        status, body = request(server, "POST", f"/api/upload?name={name}", body=script)
        assert status in (400, 415), body
    assert not marker.exists()
    assert list(workdir.iterdir()) == []  # refused uploads are deleted
    assert not (workdir.parent / "evil.wav").exists()


# 16 kHz, and 44.1 kHz (a browser's recording), which the models featurise at its own rate.
@pytest.mark.parametrize("rate", [16000, 44100])
def test_an_uploaded_clip_animates_and_plays_back_as_the_samples_animated(
    server: StudioHTTPServer, rate: int, tmp_path: Path
) -> None:
    upload = wav_bytes(1.0, rate)
    status, body = request(server, "POST", "/api/upload?name=../tone.wav", body=upload)
    assert status == 200
    clip = json.loads(body)
    assert clip["name"] == "tone.wav" and clip["duration"] == pytest.approx(1.0)
    status, wav = request(server, "GET", f"/api/audio/{clip['id']}.wav")
    samples, played_rate = soundfile.read(io.BytesIO(wav), dtype="float32")
    assert status == 200 and played_rate == rate and len(samples) == rate
    status, body = request(server, "GET", f"/api/animation?clip={clip['id']}&model={BUNDLED}")
    animation = json.loads(body)
    assert status == 200 and len(animation["frames"]) == 60 and len(animation["names"]) == 52
    (tmp_path / "tone.wav").write_bytes(upload)  # what `animate` makes of the same file
    expected = server.store.animator(BUNDLED).animate(tmp_path / "tone.wav", fps=60, idle=True, seed=0)
    assert np.abs(np.asarray(animation["frames"]) - expected.weights).max() < 1e-5


def test_clip_audio_answers_byte_ranges_for_seeking(server: StudioHTTPServer) -> None:
    status, body = request(server, "POST", "/api/upload?name=ranges.wav", body=wav_bytes(0.5))
    path = f"/api/audio/{json.loads(body)['id']}.wav"
    status, whole = request(server, "GET", path)
    assert status == 200 and len(whole) > 16_000
    for header, part in [("bytes=100-199", whole[100:200]), ("bytes=16000-", whole[16000:]),
                         ("bytes=-44", whole[-44:]), ("bytes=0-99999999", whole)]:  # fmt: skip
        status, body = request(server, "GET", path, headers={"Range": header})
        assert (status, body) == (206, part), header
    assert request(server, "GET", path, headers={"Range": "bytes=0-1,5-9"}) == (200, whole)  # several: whole
    status, body = request(server, "GET", path, headers={"Range": f"bytes={len(whole)}-"})
    assert status == 416 and b"outside" in body


def test_byte_range_parsing() -> None:
    assert byte_range(None, 10) is None and byte_range("items=0-1", 10) is None
    assert byte_range("bytes=2-4", 10) == (2, 4) and byte_range("bytes=-3", 10) == (7, 9)
    assert byte_range("bytes=-30", 10) == (0, 9) and byte_range("bytes=x-y", 10) is None
    with pytest.raises(StudioError, match="outside"):
        byte_range("bytes=5-2", 10)


@pytest.mark.parametrize("fmt", ["csv", "json", "npy"])
def test_exports_are_the_cli_writers_files(server: StudioHTTPServer, fmt: str, tmp_path: Path) -> None:
    clip = next(iter(server.store.clips))
    status, body = request(server, "GET", f"/api/export?clip={clip}&model={BUNDLED}&format={fmt}")
    assert status == 200
    writer = get_writer(fmt)
    expected = writer(server.store.animation(clip, BUNDLED), tmp_path / f"a{writer.extension}").read_bytes()
    assert body == expected
    status, _ = request(server, "GET", f"/api/export?clip={clip}&model={BUNDLED}&format=exe")
    assert status == 400


def test_a_live_link_csv_capture_is_read_as_curves(server: StudioHTTPServer, tmp_path: Path) -> None:
    clip = next(iter(server.store.clips))
    animation = server.store.animation(clip, BUNDLED)
    csv = get_writer("csv")(animation, tmp_path / "take.csv").read_bytes()
    status, body = request(server, "POST", "/api/capture?name=take.csv", body=csv)
    assert status == 200
    capture = json.loads(body)
    frames = np.asarray(capture["animation"]["frames"])
    assert frames.shape == animation.weights.shape
    assert np.abs(frames - animation.weights).max() < 1e-5
    status, body = request(server, "POST", "/api/capture?name=take.csv", body=b"not,a\ncsv,take\n")
    assert status == 400 and str(server.store.workdir).encode() not in body


def test_unknown_clips_and_models_are_404(server: StudioHTTPServer) -> None:
    assert request(server, "GET", "/api/animation?clip=nope&model=bundled")[0] == 404
    clip = next(iter(server.store.clips))
    assert request(server, "GET", f"/api/animation?clip={clip}&model=/etc/passwd")[0] == 404
    assert request(server, "GET", "/api/audio/../../x.wav")[0] == 404


def test_the_studio_command_serves_the_clips_it_is_given() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "audio2blendshape", "studio", str(HELLO), "--no-browser", "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, line + (process.stderr.read() if process.poll() is not None and process.stderr else "")
        connection = http.client.HTTPConnection("127.0.0.1", int(match.group(1)), timeout=30)
        connection.request("GET", "/api/info")
        info = json.loads(connection.getresponse().read())
        assert info["models"] == [BUNDLED] and [c["name"] for c in info["clips"]] == ["hello.wav"]
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_preview_html_writes_a_standalone_take(tmp_path: Path) -> None:
    result = run_cli("preview", str(HELLO), "--html", str(tmp_path / "take.html"), "--fps", "30")
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "take.html").read_text(encoding="utf-8")
    assert "window.STUDIO_EMBED" in html and '"fps": 30.0' in html and "data:audio/wav;base64," in html
    refused = run_cli("preview", str(HELLO))
    assert refused.returncode == 2 and "--html" in refused.stderr
    refused = run_cli("preview", str(HELLO), "--html", str(tmp_path / "take.txt"))
    assert refused.returncode == 2 and "take.txt" in refused.stderr
