"""Helpers of the studio's browser tests: Chromium's flags, opening the page, reading its state.

The page exposes its state as ``window.studio.state()`` (js/studio.js); the tests compare it with the
animation the server computed.
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from audio2blendshape.preview.studio_server import StudioHTTPServer, make_server, serve_in_thread
from audio2blendshape.preview.studio_store import StudioStore
from audio2blendshape.runtime.writers import Animation

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "examples" / "hello.wav"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver") or shutil.which("chromium-driver")
TOLERANCE = 1e-3
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--window-size=1200,900",
    "--autoplay-policy=no-user-gesture-required",
    # The microphone: granted without asking, and fed from a file of speech instead of a device.
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    f"--use-file-for-fake-audio-capture={HELLO}",
)


@contextlib.contextmanager
def serving(store: StudioStore) -> Iterator[StudioHTTPServer]:
    """The studio serving ``store``, with examples/hello.wav as its first clip, in a thread."""
    store.add_file(HELLO)
    server = make_server(store)
    serve_in_thread(server)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def open_page(driver: Any, url: str) -> None:
    driver.get(url)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, error = driver.execute_script(
            "return window.studio ? [window.studio.ready, window.studio.error] : [0, 0]"
        )
        assert not error, error
        if ready:
            return
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not get ready: {driver.find_element('id', 'status').text}")


def wait_for(driver: Any, script: str, seconds: float = 30) -> Any:
    """The first truthy value that ``script`` (JavaScript) returns, polled; fails with the status line."""
    deadline = time.monotonic() + seconds
    while True:
        value = driver.execute_script(script)
        if value:
            return value
        status = driver.find_element("id", "status").text
        assert time.monotonic() < deadline and not status.startswith("error"), f"{script!r}: {status}"
        time.sleep(0.1)


def wait_for_status(driver: Any, prefix: str, seconds: float = 15) -> str:
    """The status line once it starts with ``prefix`` (such as an error the test provoked)."""
    deadline = time.monotonic() + seconds
    while True:
        text = str(driver.find_element("id", "status").text)
        if text.startswith(prefix):
            return text
        assert time.monotonic() < deadline, text
        time.sleep(0.1)


def state(driver: Any) -> dict[str, Any]:
    return driver.execute_script("return window.studio.state()")


def state_at(driver: Any, t: float) -> dict[str, Any]:
    return driver.execute_script(f"window.studio.seek({t}); return window.studio.state();")


def assert_head_follows(page: dict[str, Any], which: str = "") -> None:
    """Each bound morph target's influence equals its curve's value (targets bound by name, weight 1)."""
    values, influences = page[f"values{which}"], page[f"influences{which}"]
    pairs = page[f"bound{which}"]
    assert pairs, "no morph target was bound"
    worst = max(abs(influences[target] - values[shape]) for target, shape in pairs)
    assert worst <= TOLERANCE, worst


def open_and_closed_times(animation: Animation) -> tuple[float, float]:
    """The frame of widest jaw (an open vowel) and of the firmest lip press with the jaw shut (m/b/p)."""
    names = list(animation.names)
    w = animation.weights
    jaw = w[:, names.index("jawOpen")]
    press = w[:, names.index("mouthPressLeft")] + w[:, names.index("mouthClose")]
    closed = np.where(jaw < 0.02, press, -1.0)
    return int(jaw.argmax()) / animation.fps, int(closed.argmax()) / animation.fps


def peak_time(animation: Animation, name: str) -> float:
    """The time of the frame where curve ``name`` is highest."""
    return int(animation.weights[:, list(animation.names).index(name)].argmax()) / animation.fps


def drop_files(driver: Any, files: dict[str, bytes]) -> None:
    """Drop ``files`` (name -> bytes) on the page: a real ``drop`` event whose DataTransfer holds Files."""
    encoded = {name: base64.b64encode(data).decode("ascii") for name, data in files.items()}
    driver.execute_script(
        """
        const transfer = new DataTransfer();
        for (const [name, text] of Object.entries(arguments[0])) {
          const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
          transfer.items.add(new File([bytes], name));
        }
        const target = document.getElementById('stage');
        const init = { dataTransfer: transfer, bubbles: true, cancelable: true };
        target.dispatchEvent(new DragEvent('dragover', init));
        target.dispatchEvent(new DragEvent('drop', init));
        """,
        encoded,
    )
