"""The studio in a real browser: headless Chromium (Debian's chromium + chromium-driver) through selenium.

The page's own state (``window.studio.state()``) is compared with the animation the server computed, and
screenshots of the 3D view with each other: the mouth must look different open and closed. Skipped, with the
reason, where Chromium, its driver or selenium is missing (a user's clone); ``.ci/run`` installs them.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from preview.avatar_files import gltf_document, write_gltf
from preview.studio_page import TOLERANCE, assert_head_follows, open_and_closed_times, open_page, state_at

from audio2blendshape.preview.html_export import write_standalone
from audio2blendshape.preview.studio_server import StudioHTTPServer
from audio2blendshape.preview.studio_store import BUNDLED
from audio2blendshape.runtime.writers import Animation, get_writer


def mouth_pixels(driver: Any) -> np.ndarray:
    """The view around the mouth (head A's teeth, widened), from a screenshot, as float RGB."""
    from PIL import Image

    rect = driver.execute_script("return window.studio.rect(0)")
    canvas = driver.find_element("id", "stage")
    image = Image.open(io.BytesIO(canvas.screenshot_as_png)).convert("RGB")
    scale = image.width / canvas.size["width"]
    height = rect["bottom"] - rect["top"]
    box = (rect["left"], rect["top"], rect["right"], rect["bottom"] + 0.6 * height)
    return np.asarray(image.crop(tuple(int(v * scale) for v in box)), dtype=np.float32)


def test_open_vowel_and_bilabial_closure_on_the_default_head(browser: Any, server: StudioHTTPServer) -> None:
    open_page(browser, server.url)
    clip = next(iter(server.store.clips))
    animation = server.store.animation(clip, BUNDLED)
    t_open, t_closed = open_and_closed_times(animation)
    names = list(animation.names)
    mouths = {}
    for label, t in (("open", t_open), ("closed", t_closed)):
        state = state_at(browser, t)
        assert state["time"] == pytest.approx(t, abs=1e-9)
        frame = animation.weights[round(t * animation.fps)]
        page = np.array([state["values"][name] for name in names])
        assert np.abs(page - frame).max() <= TOLERANCE  # the page shows what the server animated
        assert_head_follows(state)
        assert state["influences"]["jawOpen"] == pytest.approx(frame[names.index("jawOpen")], abs=TOLERANCE)
        assert state["missing"] == ["tongueOut"]  # the default head has 51 of the 52
        mouths[label] = mouth_pixels(browser)
    assert state_at(browser, t_open)["values"]["jawOpen"] > 0.4
    open_, closed = mouths["open"], mouths["closed"]
    assert open_.shape == closed.shape
    assert np.abs(open_ - closed).mean() > 8  # the mouth region visibly changes
    # Open: teeth and the mouth's dark red inside show; closed: lips and skin only.
    teeth, inside = {}, {}
    for label, pixels in mouths.items():
        teeth[label] = float(((pixels.min(axis=2) > 200) & (np.ptp(pixels, axis=2) < 40)).mean())
        inside[label] = float(((pixels[..., 0] < 150) & (pixels[..., 0] > 1.4 * pixels[..., 1])).mean())
    assert teeth["open"] > 0.004 and teeth["closed"] < 0.001, teeth
    assert inside["open"] > 0.04 > 0.02 > inside["closed"], inside


def test_a_b_view_with_a_live_link_capture(browser: Any, server: StudioHTTPServer, tmp_path: Path) -> None:
    open_page(browser, server.url)
    clip = next(iter(server.store.clips))
    animation = server.store.animation(clip, BUNDLED)
    half = Animation(animation.names, animation.fps, animation.weights * 0.5, animation.duration)
    capture = get_writer("csv")(half, tmp_path / "capture.csv")
    browser.find_element("id", "capture-file").send_keys(str(capture))
    deadline = time.monotonic() + 30
    while not browser.execute_script("return window.studio.state().ab") and time.monotonic() < deadline:
        time.sleep(0.2)
    t_open, _ = open_and_closed_times(animation)
    state = state_at(browser, t_open)
    assert state["ab"] and state["labels"] == [BUNDLED, "capture: capture.csv"]
    assert_head_follows(state)
    assert_head_follows(state, "B")
    assert state["valuesB"]["jawOpen"] == pytest.approx(0.5 * state["values"]["jawOpen"], abs=TOLERANCE)
    left, right = browser.execute_script("return [window.studio.rect(0), window.studio.rect(1)]")
    assert left["right"] < right["left"]  # two heads side by side
    browser.find_element("id", "stage").screenshot(str(tmp_path / "ab.png"))


def test_an_avatar_lacking_shapes_is_driven_by_the_ones_it_has(
    browser: Any, server: StudioHTTPServer, tmp_path: Path
) -> None:
    open_page(browser, server.url)
    targets = ["JawOpen", "eyeBlink_L", "blendShape1.mouthClose", "MouthPress_R", "SomethingElse"]
    avatar = write_gltf(tmp_path / "mine.gltf", *gltf_document([targets]))
    browser.find_element("id", "avatar-file").send_keys(str(avatar))
    deadline = time.monotonic() + 30
    while browser.execute_script("return window.studio.state().avatar") != "mine.gltf":
        assert time.monotonic() < deadline, browser.find_element("id", "status").text
        time.sleep(0.2)
    state = state_at(browser, 1.0)
    assert dict(state["bound"]) == {
        "JawOpen": "jawOpen",
        "eyeBlink_L": "eyeBlinkLeft",
        "blendShape1.mouthClose": "mouthClose",
        "MouthPress_R": "mouthPressRight",
    }
    assert (
        len(state["missing"]) == 48 and "jawOpen" not in state["missing"] and "tongueOut" in state["missing"]
    )
    assert_head_follows(state)
    shown = browser.find_element("id", "missing").text
    assert "lacks 48 of the 52" in shown and "tongueOut" in shown


def test_the_standalone_html_plays_from_disk(browser: Any, server: StudioHTTPServer, tmp_path: Path) -> None:
    clip = server.store.clip(next(iter(server.store.clips)))
    animation = server.store.animation(clip.id, BUNDLED)
    page = write_standalone(tmp_path / "take.html", animation, clip.samples, "hello.wav")
    html = page.read_text(encoding="utf-8")
    start = html.index('<script type="importmap">') + len('<script type="importmap">')
    imports = json.loads(html[start : html.index("</script>", start)])["imports"]
    assert imports and all(url.startswith("data:text/javascript;base64,") for url in imports.values())
    assert 'src="http' not in html and 'href="http' not in html  # nothing is fetched
    open_page(browser, page.as_uri())
    t_open, t_closed = open_and_closed_times(animation)
    for t in (t_open, t_closed):
        state = state_at(browser, t)
        frame = animation.weights[round(t * animation.fps)]
        assert np.abs(np.array([state["values"][n] for n in animation.names]) - frame).max() <= TOLERANCE
        assert_head_follows(state)
    duration, position = browser.execute_script(
        "const a = document.getElementById('audio'); return [a.duration, a.currentTime]"
    )
    assert duration == pytest.approx(clip.duration, abs=0.01)  # the embedded audio decodes
    assert position == pytest.approx(t, abs=0.01)  # and can be sought


def test_playback_follows_the_audio_clock_and_loops_a_selection(
    browser: Any, server: StudioHTTPServer
) -> None:
    open_page(browser, server.url)
    browser.execute_script("""
        document.getElementById('speed').value = '0.5';
        document.getElementById('speed').dispatchEvent(new Event('change'));
        window.studio.loop([1.0, 1.3]);
        window.studio.seek(1.0);
        window.studio.play();
    """)
    time.sleep(1.5)  # at half speed, 0.75 s of audio: past the loop's end, so it must have wrapped
    state = browser.execute_script("return window.studio.state()")
    audio = browser.execute_script(
        "const a = document.getElementById('audio'); return [a.playbackRate, a.paused]"
    )
    browser.execute_script("document.getElementById('audio').pause()")
    assert state["playing"] and audio == [0.5, False]
    assert 1.0 <= state["time"] <= 1.3 + 0.1
    assert_head_follows(state)
