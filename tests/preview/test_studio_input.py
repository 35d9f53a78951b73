"""The studio page's inputs in headless Chromium: dropped audio, the microphone, the timeline's mouse.

Chromium runs with a fake microphone fed from examples/hello.wav (``studio_page.FLAGS``). Dropping sends a
real ``drop`` event whose DataTransfer holds a File; the timeline gets real pointer input through selenium.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from preview.studio_page import (
    HELLO,
    TOLERANCE,
    assert_head_follows,
    drop_files,
    open_and_closed_times,
    open_page,
    state,
    state_at,
    wait_for,
    wait_for_status,
)

from audio2blendshape.preview.studio_server import StudioHTTPServer
from audio2blendshape.preview.studio_store import BUNDLED


def wait_for_new_clip(driver: Any, server: StudioHTTPServer, known: set[str]) -> str:
    """The id of the clip the page selected once it is not one of ``known`` and its animation has shown."""
    clip = wait_for(
        driver,
        f"const s = window.studio.state(); return !{sorted(known)!r}.includes(s.clip)"
        " && !s.status.startsWith('animating') && Object.keys(s.values).length && s.clip",
    )
    return str(clip)


def assert_page_shows(driver: Any, server: StudioHTTPServer, clip: str) -> None:
    """The page animates ``clip`` with what the server computed for it, and the head follows."""
    animation = server.store.animation(clip, BUNDLED)
    page = state(driver)
    assert page["duration"] == pytest.approx(animation.duration, abs=1e-6)
    for t in open_and_closed_times(animation):
        page = state_at(driver, t)
        frame = animation.weights[round(t * animation.fps)]
        assert np.abs(np.array([page["values"][n] for n in animation.names]) - frame).max() <= TOLERANCE
        assert_head_follows(page)


def test_an_audio_file_dropped_on_the_page_is_animated_and_selected(
    browser: Any, server: StudioHTTPServer
) -> None:
    open_page(browser, server.url)
    known = set(server.store.clips)
    drop_files(browser, {"dropped hello.wav": HELLO.read_bytes()})
    clip = wait_for_new_clip(browser, server, known)
    assert server.store.clip(clip).name == "dropped hello.wav"
    page = state(browser)
    assert page["clip"] == clip and [clip, "dropped hello.wav (4.9 s)"] in page["clips"]
    assert_page_shows(browser, server, clip)
    assert server.store.animation(clip, BUNDLED).weights[:, 0].size > 100  # the whole clip, not a stub


def test_a_take_recorded_from_the_microphone_is_animated(browser: Any, server: StudioHTTPServer) -> None:
    open_page(browser, server.url)
    known = set(server.store.clips)
    record = browser.find_element("id", "record")
    record.click()
    deadline = time.monotonic() + 10
    while record.text != "■ stop":
        status = browser.find_element("id", "status").text
        if "no microphone" in status:
            pytest.skip(f"this Chromium offers no fake microphone: {status}")
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    time.sleep(1.5)
    record.click()
    clip = wait_for_new_clip(browser, server, known)
    recorded = server.store.clip(clip)
    assert recorded.name == "recording-1.wav" and record.text == "● record"
    assert 1.2 < recorded.duration < 3.0, recorded.duration
    assert np.sqrt(np.mean(recorded.samples**2)) > 0.01  # the fake device's speech, not silence
    assert_page_shows(browser, server, clip)


def timeline_point(driver: Any, fraction: float) -> tuple[Any, int, float]:
    """The timeline element, the x offset from its centre of ``fraction`` of its width, and that time."""
    canvas = driver.find_element("id", "timeline")
    width = driver.execute_script("return document.getElementById('timeline').getBoundingClientRect().width")
    duration = state(driver)["duration"]
    offset = round((fraction - 0.5) * width)
    return canvas, offset, (width / 2 + offset) / width * duration


def test_a_click_on_the_timeline_seeks_and_a_shift_drag_selects_a_loop(
    browser: Any, server: StudioHTTPServer
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    open_page(browser, server.url)
    frame = 1 / server.store.animation(next(iter(server.store.clips)), BUNDLED).fps
    canvas, offset, t = timeline_point(browser, 0.3)
    ActionChains(browser).move_to_element_with_offset(canvas, offset, 0).click().perform()
    page = state(browser)
    assert page["time"] == pytest.approx(t, abs=2 * frame) and not page["loop"]
    assert browser.execute_script("return document.getElementById('audio').currentTime") == pytest.approx(
        page["time"], abs=0.01
    )
    assert_head_follows(page)
    _, start, t_start = timeline_point(browser, 0.5)
    _, end, t_end = timeline_point(browser, 0.7)
    (
        ActionChains(browser)
        .key_down(Keys.SHIFT)
        .move_to_element_with_offset(canvas, start, 10)
        .click_and_hold()
        .move_by_offset((end - start) // 2, 0)
        .move_by_offset(end - start - (end - start) // 2, 0)
        .release()
        .key_up(Keys.SHIFT)
        .perform()
    )
    selected = state(browser)
    assert selected["loop"] == pytest.approx([t_start, t_end], abs=2 * frame) and selected["looping"]
    assert selected["time"] == page["time"]  # selecting does not move the playhead
    # A plain drag scrubs: the playhead ends where the pointer was let go.
    (
        ActionChains(browser)
        .move_to_element_with_offset(canvas, end, 0)
        .click_and_hold()
        .move_by_offset(start - end, 0)
        .release()
        .perform()
    )
    assert state(browser)["time"] == pytest.approx(t_start, abs=2 * frame)
    assert state(browser)["loop"] == selected["loop"]


def test_an_unreadable_drop_says_why(browser: Any, server: StudioHTTPServer) -> None:
    open_page(browser, server.url)
    drop_files(browser, {"notes.txt": b"not audio"})
    assert "notes.txt" in wait_for_status(browser, "error")
