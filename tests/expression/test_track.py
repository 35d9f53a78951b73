"""Emotion cues: parsing --emotion, track files (JSON, CSV) with clear errors, and eased transitions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audio2blendshape.expression.presets import PresetLibrary
from audio2blendshape.expression.track import Cue, EmotionTimeline, TrackError, parse_emotion, read_track
from audio2blendshape.names import ARKIT_NAMES

SMILE = ARKIT_NAMES.index("mouthSmileLeft")
BROW = ARKIT_NAMES.index("browInnerUp")


def test_parse_emotion() -> None:
    assert parse_emotion("happy=0.6") == Cue(0.0, "happy", 0.6, 0.0)
    assert parse_emotion("sad") == Cue(0.0, "sad", 1.0, 0.0)
    for bad, needle in (("happy=x", "NAME=INTENSITY"), ("happy=1.5", "outside 0..1"), ("=0.5", "preset")):
        with pytest.raises(TrackError, match=needle):
            parse_emotion(bad)


def test_json_and_csv_tracks(tmp_path: Path) -> None:
    json_track = tmp_path / "t.json"
    json_track.write_text('{"cues": [{"time": 2, "preset": "sad", "ramp": 1}, {"time": 0, "preset": "happy", '
                          '"intensity": 0.5}]}')  # fmt: skip
    csv_track = tmp_path / "t.csv"
    csv_track.write_text("time,preset,intensity,ramp\n2,sad,,1\n0,happy,0.5,\n")
    expected = [Cue(0.0, "happy", 0.5, 0.4), Cue(2.0, "sad", 1.0, 1.0)]
    assert read_track(json_track) == expected
    assert read_track(csv_track) == expected


@pytest.mark.parametrize(
    ("name", "text", "needle"),
    [
        ("a.json", '[{"time": -1, "preset": "happy"}]', "cue 0: .*time -1 is outside"),
        ("b.json", '[{"time": 1}]', "needs a time and a preset"),
        ("c.json", '[{"time": 1, "preset": "happy", "speed": 2}]', "unknown keys speed"),
        ("d.json", "{}", "list of cues"),
        ("e.json", "[]", "holds no cues"),
        ("f.csv", "when,preset\n1,happy\n", "header must name"),
        ("g.csv", "time,preset,intensity\n1,happy,lots\n", "line 2: intensity 'lots' is not a number"),
        ("h.json", '[{"time": 1, "preset": "happy", "ramp": 400}]', "ramp 400 is outside"),
    ],
)
def test_bad_tracks_name_the_file_and_the_cue(tmp_path: Path, name: str, text: str, needle: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(TrackError, match=needle) as error:
        read_track(path)
    assert str(path) in str(error.value)


def test_transitions_are_eased_and_hold_between_cues() -> None:
    library = PresetLibrary()
    happy = library.vector("happy")[SMILE]
    timeline = EmotionTimeline(library, [Cue(1.0, "happy", 1.0, 0.5), Cue(3.0, "neutral", 1.0, 1.0)])
    times = np.arange(0, 5, 0.01)
    smile = timeline.values(times)[:, SMILE]
    assert np.all(smile[times < 1.0] == 0)
    assert smile[np.searchsorted(times, 2.0)] == pytest.approx(happy)  # held after the ramp
    ramp = smile[(times >= 1.0) & (times <= 1.5)]
    assert np.all(np.diff(ramp) >= 0) and np.diff(ramp).max() < 0.05  # eased, no snap
    # Ease in and out: slow at both ends of the ramp, fastest in the middle.
    steps = np.diff(ramp)
    assert steps[0] < steps[len(steps) // 2] > steps[-1]
    assert np.all(smile[times >= 4.0] == 0)


def test_a_cue_during_a_ramp_continues_from_where_the_face_is() -> None:
    timeline = EmotionTimeline(PresetLibrary(), [Cue(0.0, "happy", 1.0, 1.0), Cue(0.5, "sad", 1.0, 1.0)])
    values = timeline.values(np.arange(0, 2, 0.005))
    assert np.abs(np.diff(values, axis=0)).max() < 0.02
    assert values[-1, BROW] == pytest.approx(PresetLibrary().vector("sad")[BROW])
