"""Avatars in the studio page (headless Chromium): VRM 0.x and 1.0 expressions, GLB target names, .gltf files.

The avatars are built here (``avatar_files``); each test loads one through the page's own paths (the
*avatar…* file input, or a drop) and reads the morph influences back from three.js's meshes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from preview.avatar_files import binds, gltf_document, vrm0, vrm1, write_glb, write_gltf
from preview.studio_page import (
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


def pick_avatar(driver: Any, *files: Path) -> None:
    """Choose ``files`` in the *avatar…* file input (several at once, as a file dialog does)."""
    driver.find_element("id", "avatar-file").send_keys("\n".join(str(f) for f in files))


def wait_for_avatar(driver: Any, name: str) -> None:
    wait_for(driver, f"return window.studio.state().avatar === {name!r}")


def check_influences(
    driver: Any, server: StudioHTTPServer, expected: dict[str, tuple[str, float]], unused: list[str]
) -> None:
    """At the peak and the trough of each curve, each target in ``expected`` (target -> (curve, weight))
    shows weight x the curve's value and the ``unused`` targets stay at rest; the ones whose curve moves
    a lot in the clip (jaw, blinks, smiles) move with it."""
    animation = server.store.animation(next(iter(server.store.clips)), BUNDLED)
    names = list(animation.names)
    columns = {curve: animation.weights[:, names.index(curve)] for curve, _ in expected.values()}
    times = sorted({int(f(w)) / animation.fps for w in columns.values() for f in (np.argmax, np.argmin)})
    seen: dict[str, list[float]] = {target: [] for target in expected}
    for t in times:
        page = state_at(driver, t)
        for target, (curve, weight) in expected.items():
            assert page["influences"][target] == pytest.approx(weight * page["values"][curve], abs=TOLERANCE)
            seen[target].append(page["influences"][target])
        assert all(page["influences"][target] == 0 for target in unused)
    for target, (curve, weight) in expected.items():
        spread = float(np.ptp(columns[curve]))
        if spread > 0.2:
            assert np.ptp(seen[target]) == pytest.approx(weight * spread, abs=TOLERANCE), target


def check_lacks(driver: Any, bound: set[str]) -> None:
    page = state(driver)
    assert set(page["missing"]) == set(page["values"]) - bound and len(page["values"]) == 52
    shown = driver.find_element("id", "missing").text
    assert f"lacks {52 - len(bound)} of the 52" in shown
    assert all(name in shown for name in page["missing"]) and not any(f" {name}," in shown for name in bound)


def test_a_vrm0_avatar_is_driven_through_its_perfect_sync_blend_shape_groups(
    browser: Any, server: StudioHTTPServer, tmp_path: Path
) -> None:
    targets = ["Fcl_MTH_Open", "Fcl_EYE_Close_L", "Fcl_EYE_Close_R", "MouthClose", "Fcl_MTH_Close"]
    bind = lambda index, weight=100: {"mesh": 1, "index": index, "weight": weight}  # noqa: E731
    groups = [
        {"name": "A", "presetName": "a", "binds": [bind(4)]},  # a preset: JawOpen below drives the jaw
        {"name": "JawOpen", "presetName": "unknown", "binds": [bind(0)]},
        {"name": "EyeBlinkLeft", "presetName": "unknown", "binds": [bind(1)]},
        {"name": "EyeBlinkRight", "presetName": "unknown", "binds": [bind(2, 50)]},
        {"name": "MouthClose", "presetName": "unknown", "binds": [bind(4)]},  # the target of that name wins
        {"name": "MouthSmileLeft", "presetName": "unknown", "binds": []},  # bound to nothing: lacking
    ]
    open_page(browser, server.url)
    pick_avatar(browser, vrm0(tmp_path / "perfect-sync.vrm", targets, groups))
    wait_for_avatar(browser, "perfect-sync.vrm")
    page = state(browser)
    assert dict(page["bound"]) == {
        "MouthClose": "mouthClose",
        "JawOpen": "jawOpen",
        "EyeBlinkLeft": "eyeBlinkLeft",
        "EyeBlinkRight": "eyeBlinkRight",
    }
    expected = {
        "Fcl_MTH_Open": ("jawOpen", 1.0),
        "Fcl_EYE_Close_L": ("eyeBlinkLeft", 1.0),
        "Fcl_EYE_Close_R": ("eyeBlinkRight", 0.5),
        "MouthClose": ("mouthClose", 1.0),
    }
    check_influences(browser, server, expected, unused=["Fcl_MTH_Close"])
    check_lacks(browser, {"jawOpen", "eyeBlinkLeft", "eyeBlinkRight", "mouthClose"})
    turned = browser.execute_script("return window.studio.stage.heads[0].gltf.scene.rotation.y")
    assert turned == pytest.approx(math.pi)  # VRM 0.x faces -Z


def test_a_vrm1_avatar_is_driven_through_its_expressions(
    browser: Any, server: StudioHTTPServer, tmp_path: Path
) -> None:
    targets = ["Mouth_A", "Eye_L", "Eye_R", "Smile_R", "Mouth_Wide"]
    face = 2  # the node of the face mesh (mesh 1): bindings must not confuse the two
    preset = {
        "aa": binds(face, (4, 1.0)),
        "blinkLeft": binds(face, (4, 1.0)),
        "blinkRight": binds(face, (2, 1.0)),
    }
    custom = {
        "JawOpen": binds(face, (0, 1.0)),
        "eyeBlinkLeft": binds(face, (1, 1.0)),
        "mouthSmileRight": binds(face, (3, 0.8)),
    }
    open_page(browser, server.url)
    pick_avatar(browser, vrm1(tmp_path / "expressions.vrm", targets, preset, custom))
    wait_for_avatar(browser, "expressions.vrm")
    assert dict(state(browser)["bound"]) == {
        "JawOpen": "jawOpen",
        "eyeBlinkLeft": "eyeBlinkLeft",
        "mouthSmileRight": "mouthSmileRight",
        "blinkRight": "eyeBlinkRight",  # no eyeBlinkRight expression: the preset stands in
    }
    expected = {
        "Mouth_A": ("jawOpen", 1.0),
        "Eye_L": ("eyeBlinkLeft", 1.0),
        "Eye_R": ("eyeBlinkRight", 1.0),
        "Smile_R": ("mouthSmileRight", 0.8),
    }
    check_influences(browser, server, expected, unused=["Mouth_Wide"])
    check_lacks(browser, {"jawOpen", "eyeBlinkLeft", "eyeBlinkRight", "mouthSmileRight"})
    assert browser.execute_script("return window.studio.stage.heads[0].gltf.scene.rotation.y") == 0


def test_a_glb_with_suffixed_and_lower_case_target_names(
    browser: Any, server: StudioHTTPServer, tmp_path: Path
) -> None:
    targets = [
        "jawopen",
        "eyeBlink_L",
        "EYEBLINK_R",
        "mouth_smile_left",
        "L_browDown",
        "Face:cheekPuff",
        "Basis",
    ]
    open_page(browser, server.url)
    pick_avatar(browser, write_glb(tmp_path / "names.glb", *gltf_document([targets])))
    wait_for_avatar(browser, "names.glb")
    animation = server.store.animation(next(iter(server.store.clips)), BUNDLED)
    page = state_at(browser, open_and_closed_times(animation)[0])  # an open vowel
    assert dict(page["bound"]) == {
        "jawopen": "jawOpen",
        "eyeBlink_L": "eyeBlinkLeft",
        "EYEBLINK_R": "eyeBlinkRight",
        "mouth_smile_left": "mouthSmileLeft",
        "L_browDown": "browDownLeft",
        "Face:cheekPuff": "cheekPuff",
    }
    assert_head_follows(page)
    assert page["influences"]["jawopen"] > 0.4 and page["influences"]["Basis"] == 0
    check_lacks(browser, set(dict(page["bound"]).values()))


def test_a_gltf_with_external_buffers_needs_its_files_picked_together(
    browser: Any, server: StudioHTTPServer, tmp_path: Path
) -> None:
    document, blob = gltf_document([["jawOpen", "mouthClose"]])
    model = write_gltf(tmp_path / "split.gltf", document, blob, external="parts/split face.bin")
    open_page(browser, server.url)
    pick_avatar(browser, model)  # alone: the page cannot read parts/split face.bin, and says so
    status = wait_for_status(browser, "error")
    assert "split.gltf keeps its data in split face.bin" in status and "together" in status
    assert state(browser)["avatar"].startswith("default head")
    pick_avatar(browser, model, tmp_path / "parts" / "split face.bin")
    wait_for_avatar(browser, "split.gltf")
    page = state_at(browser, 1.0)
    assert dict(page["bound"]) == {"jawOpen": "jawOpen", "mouthClose": "mouthClose"}
    assert_head_follows(page)
    # Dropped together, the same.
    open_page(browser, server.url)
    drop_files(browser, {"split.gltf": model.read_bytes(), "split face.bin": blob})
    wait_for_avatar(browser, "split.gltf")
    assert_head_follows(state_at(browser, 1.0))


def test_a_vrm_dropped_on_the_page_becomes_the_avatar(
    browser: Any, server: StudioHTTPServer, tmp_path: Path
) -> None:
    custom = {"jawOpen": binds(2, (0, 1.0))}
    avatar = vrm1(tmp_path / "dropped.vrm", ["open"], {}, custom)
    open_page(browser, server.url)
    drop_files(browser, {"dropped.vrm": avatar.read_bytes()})
    wait_for_avatar(browser, "dropped.vrm")
    page = state_at(browser, 1.0)
    assert dict(page["bound"]) == {"jawOpen": "jawOpen"}
    assert page["influences"]["open"] == pytest.approx(page["values"]["jawOpen"], abs=TOLERANCE)
