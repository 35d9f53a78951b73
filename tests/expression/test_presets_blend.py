"""Presets, user presets, the blend rules and articulation, on synthetic curves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from audio2blendshape.expression.articulation import scale_articulation
from audio2blendshape.expression.blend import CLOSED_GAP, blend_expression, openness
from audio2blendshape.expression.presets import BUILTIN, EMOTIONS, PresetError, PresetLibrary, load_preset
from audio2blendshape.names import ARKIT_NAMES

COL = {n: i for i, n in enumerate(ARKIT_NAMES)}


def speech(frames: int = 240, seed: int = 0) -> np.ndarray:
    """Synthetic lip-sync curves: jaw opening and closing, bilabial closures, some rounding and smile."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / 60.0
    curves = np.zeros((frames, len(ARKIT_NAMES)), np.float32)
    jaw = 0.3 + 0.28 * np.sin(2 * np.pi * 2.3 * t)
    close = 0.08 * np.clip((0.14 - jaw) / 0.06, 0.0, 1.0)  # the jaw's low points are bilabial closures
    curves[:, COL["jawOpen"]] = jaw
    curves[:, COL["mouthClose"]] = close
    curves[:, COL["mouthPressLeft"]] = curves[:, COL["mouthPressRight"]] = np.where(jaw < 0.1, 0.3, 0.0)
    curves[:, COL["mouthFunnel"]] = np.clip(0.6 * np.sin(2 * np.pi * 0.7 * t), 0, 1)
    curves[:, COL["mouthSmileLeft"]] = curves[:, COL["mouthSmileRight"]] = rng.uniform(0, 0.1, frames)
    return curves


def test_presets_are_valid_arkit_weights() -> None:
    assert EMOTIONS == ("neutral", "happy", "sad", "angry", "surprised", "fearful", "disgusted")
    library = PresetLibrary()
    for name in EMOTIONS:
        assert set(BUILTIN[name]) <= set(ARKIT_NAMES), name
        vector = library.vector(name)
        assert vector.shape == (52,) and vector.min() >= 0 and vector.max() <= 1
        assert (vector.any()) == (name != "neutral"), name
        assert vector[COL["mouthClose"]] == 0, f"{name} would fake closures"
    happy = library.vector("HAPPY")
    assert happy[COL["mouthSmileLeft"]] > 0.5 and happy[COL["cheekSquintRight"]] > 0.3


def test_user_presets_load_and_bad_ones_name_the_file(tmp_path: Path) -> None:
    good = tmp_path / "smirk.json"
    good.write_text(json.dumps({"MouthSmileLeft": 0.5, "browInnerUp": 0.1}))
    name, vector = load_preset(good)
    assert name == "smirk" and vector[COL["mouthSmileLeft"]] == 0.5 and vector.sum() == pytest.approx(0.6)
    assert PresetLibrary.from_files([good]).vector("smirk")[COL["browInnerUp"]] == pytest.approx(0.1)
    cases = {
        "a.json": ("{not json", "not a preset JSON"),
        "b.json": ("[1, 2]", "non-empty JSON object"),
        "c.json": ('{"mouthSmile": 0.5}', "'mouthSmile' is not one of the 52 ARKit"),
        "d.json": ('{"jawOpen": 1.5}', r"outside \[0, 1\]"),
        "e.json": ('{"jawOpen": "x"}', "not a number"),
        "happy.json": ('{"jawOpen": 0.1}', "built-in preset"),
    }
    for file, (text, needle) in cases.items():
        path = tmp_path / file
        path.write_text(text)
        with pytest.raises(PresetError, match=needle) as error:
            load_preset(path)
        assert str(path) in str(error.value)
    with pytest.raises(PresetError, match="unknown emotion preset 'giddy'"):
        PresetLibrary().vector("giddy")


@pytest.mark.parametrize("name", EMOTIONS)
def test_every_preset_keeps_the_closures_and_the_order_of_openness(name: str) -> None:
    lip = speech()
    out = blend_expression(lip, np.tile(PresetLibrary().vector(name), (len(lip), 1)))
    closed = openness(lip) <= CLOSED_GAP
    assert closed.sum() > 10
    np.testing.assert_allclose(openness(out)[closed], openness(lip)[closed], atol=1e-6)
    # Frames are ordered by openness as before: open vowels stay more open than closures.
    order = np.argsort(openness(lip), kind="stable")
    assert np.all(np.diff(openness(out)[order]) >= -1e-6)
    assert out.min() >= 0 and out.max() <= 1


def test_lips_meet_under_a_full_smile() -> None:
    lip = speech()
    out = blend_expression(lip, np.tile(PresetLibrary().vector("happy"), (len(lip), 1)))
    closed = openness(lip) <= CLOSED_GAP
    assert np.all(openness(out)[closed] <= CLOSED_GAP)
    # Nothing that parts the lips is added at a closure, the press is kept, and the smile is still seen.
    for shape in ("mouthUpperUpLeft", "mouthLowerDownRight", "jawOpen", "mouthFunnel"):
        np.testing.assert_allclose(out[closed, COL[shape]], lip[closed, COL[shape]], atol=1e-6)
    assert np.all(out[closed, COL["mouthPressLeft"]] >= lip[closed, COL["mouthPressLeft"]])
    free = (openness(lip) > 0.2) & (lip[:, COL["mouthFunnel"]] <= 0.1)
    assert out[free, COL["mouthSmileLeft"]].min() > 0.6
    assert out[closed, COL["mouthSmileLeft"]].max() < out[free, COL["mouthSmileLeft"]].min()
    rounded = lip[:, COL["mouthFunnel"]] >= 0.5
    smile = PresetLibrary().vector("happy")[COL["mouthSmileLeft"]]
    added = out[rounded, COL["mouthSmileLeft"]] - lip[rounded, COL["mouthSmileLeft"]]
    assert rounded.any() and np.all(added <= 0.2 * smile + 1e-6)  # an o stays an o


def test_no_expression_leaves_the_curves_alone() -> None:
    lip = speech()
    np.testing.assert_array_equal(blend_expression(lip, np.zeros_like(lip)), lip)


@pytest.mark.parametrize("strength", [0.5, 0.8, 1.2, 1.5])
def test_articulation_scales_the_mouth_and_keeps_its_timing(strength: float) -> None:
    lip = speech() * 0.8
    out = scale_articulation(lip, strength)
    gap, new_gap = openness(lip), openness(out)
    closed = gap <= CLOSED_GAP
    np.testing.assert_allclose(new_gap[closed], gap[closed], atol=1e-6)  # closures stay closed
    assert np.all(np.diff(new_gap[np.argsort(gap)]) >= -1e-6)  # a monotone map: no frame overtakes another
    # Peaks stay on their frames: the local maxima of the lip gap are where they were.
    peaks = lambda x: np.flatnonzero((x[1:-1] > x[:-2]) & (x[1:-1] >= x[2:])) + 1  # noqa: E731
    np.testing.assert_array_equal(peaks(new_gap), peaks(gap))
    assert np.argmax(out[:, COL["jawOpen"]]) == np.argmax(lip[:, COL["jawOpen"]])
    assert np.argmax(out[:, COL["mouthFunnel"]]) == np.argmax(lip[:, COL["mouthFunnel"]])
    top = np.argmax(gap)
    assert new_gap[top] - CLOSED_GAP == pytest.approx(strength * (gap[top] - CLOSED_GAP), rel=1e-4)
    np.testing.assert_array_equal(out[:, COL["mouthClose"]], lip[:, COL["mouthClose"]])
    with pytest.raises(ValueError, match=r"0.5..1.5"):
        scale_articulation(lip, 1.6)
