"""The expression layer: block-by-block equals whole, streaming equals offline, seeded, bounded, smooth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audio2blendshape.audio.decode import load_audio
from audio2blendshape.expression.head_motion import LIMIT_DEG
from audio2blendshape.expression.layers import ExpressionControls, ExpressionLayer
from audio2blendshape.expression.presets import PresetLibrary
from audio2blendshape.expression.prosody import COLUMN, ProsodyTracker, prosody
from audio2blendshape.expression.track import Cue

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "examples" / "hello.wav"
CUES = (Cue(0.0, "happy", 0.7, 0.0), Cue(1.5, "surprised", 1.0, 0.5), Cue(3.0, "sad", 0.5, 0.3))
LAYERS = {
    "emotion": ExpressionControls(cues=CUES),
    "articulation": ExpressionControls(articulation=1.4),
    "expressiveness": ExpressionControls(expressiveness=1.0),
    "head": ExpressionControls(head_motion=1.0),
    "all": ExpressionControls(cues=CUES, articulation=0.7, expressiveness=1.5, head_motion=1.5),
}


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    return load_audio(HELLO)


def curves(frames: int) -> np.ndarray:
    t = np.arange(frames)[:, None] / 60.0
    return (0.3 + 0.3 * np.sin(2 * np.pi * (1.3 + 0.05 * np.arange(52)) * t)).astype(np.float32)


def run(controls: ExpressionControls, audio: np.ndarray, frames: int, block: int, audio_block: int,
        seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:  # fmt: skip
    """The layer over ``frames`` frames at 60 fps, audio and frames both fed in blocks as a stream would."""
    layer = ExpressionLayer(controls, 60.0, seed)
    lip = curves(frames)
    outs, heads, fed = [], [], 0
    for first in range(0, frames, block):
        stop = min(frames, first + block)
        # Audio up to 60 ms beyond the block's last frame, as the model's look-ahead guarantees.
        while fed < len(audio) and fed < (stop / 60.0 + 0.06) * 16000:
            layer.push_audio(audio[fed : fed + audio_block])
            fed += audio_block
        if stop == frames:
            if fed < len(audio):
                layer.push_audio(audio[fed:])
            layer.finish_audio()
        out, head = layer.process(lip[first:stop])
        outs.append(out)
        heads.append(head)
    head = None if heads[0] is None else np.concatenate(heads)
    return np.concatenate(outs), head


@pytest.mark.parametrize("name", list(LAYERS))
def test_streaming_equals_offline_in_any_blocks(name: str, audio: np.ndarray) -> None:
    frames = int(len(audio) / 16000 * 60)
    whole, whole_head = run(LAYERS[name], audio, frames, frames, len(audio))
    assert not np.allclose(whole, curves(frames)) or name == "head"
    for block, audio_block in ((1, 160), (7, 333), (64, 4000)):
        out, head = run(LAYERS[name], audio, frames, block, audio_block)
        np.testing.assert_allclose(out, whole, atol=1e-4)
        if whole_head is None:
            assert head is None
        else:
            assert head is not None
            np.testing.assert_allclose(head, whole_head, atol=1e-4)


def test_prosody_stream_equals_whole(audio: np.ndarray) -> None:
    whole = prosody(audio)
    assert whole.shape == (len(audio) // 160 + 1, len(COLUMN))
    tracker = ProsodyTracker()
    rows = [tracker.push(audio[i : i + 517]) for i in range(0, len(audio), 517)] + [tracker.flush()]
    np.testing.assert_allclose(np.concatenate(rows), whole, atol=1e-9)
    # Speech is found, with a few phrases and stresses: hello.wav has three sentences.
    assert 2 <= whole[-1, COLUMN["phrase"]] <= 4 and 2 <= whole[-1, COLUMN["stress"]] <= 10
    voiced = whole[:, COLUMN["f0"]] > 0
    assert 0.2 < voiced.mean() < 0.8 and 70 < np.median(whole[voiced, COLUMN["f0"]]) < 200


def test_head_motion_is_seeded_bounded_and_smooth(audio: np.ndarray) -> None:
    frames = int(len(audio) / 16000 * 60)
    controls = LAYERS["head"]
    _, a = run(controls, audio, frames, 50, 1000, seed=1)
    _, b = run(controls, audio, frames, 13, 700, seed=1)
    _, c = run(controls, audio, frames, 50, 1000, seed=2)
    assert a is not None and b is not None and c is not None
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > np.radians(0.5)  # another seed, another performance
    assert np.all(np.abs(a) <= np.radians(LIMIT_DEG))
    assert np.abs(a).max() > np.radians(0.5)  # it moves
    speed = np.abs(np.diff(a, axis=0)).max() * 60  # rad/s
    assert speed < np.radians(60), "no snaps"
    strong = ExpressionControls(head_motion=2.0)
    _, d = run(strong, audio, frames, 50, 1000, seed=1)
    assert d is not None and np.all(np.abs(d) <= 2 * np.radians(LIMIT_DEG))


def test_expressiveness_raises_brows_on_emphasis_within_range(audio: np.ndarray) -> None:
    frames = int(len(audio) / 16000 * 60)
    out, _ = run(LAYERS["expressiveness"], audio, frames, 40, 800)
    added = out - curves(frames)
    brow = 43  # browInnerUp
    assert added[:, brow].max() > 0.1 and added.min() >= -1e-6 and added.max() <= 0.36
    untouched = [i for i in range(52) if i not in (6, 13, 43, 44, 45, 47, 48)]
    np.testing.assert_array_equal(out[:, untouched], curves(frames)[:, untouched])


def test_default_controls_change_nothing_and_live_changes_ramp() -> None:
    lip = np.full((120, 52), 0.2, np.float32)
    layer = ExpressionLayer(ExpressionControls(), 60.0)
    out, head = layer.process(lip[:60])
    np.testing.assert_array_equal(out, lip[:60])
    assert head is None
    layer.set_emotion("happy", 1.0, ramp_s=0.5)
    out, _ = layer.process(lip[60:])
    cheek = out[:, 47] - lip[60:, 47]  # cheekSquintLeft: not gated by the lips, so the ramp shows as is
    full = (1 - lip[-1, 47]) * PresetLibrary().vector("happy")[47]  # the screen blend, ramp complete
    assert cheek[0] == pytest.approx(0, abs=1e-6) and cheek[-1] == pytest.approx(full, abs=1e-5)
    assert np.all(np.diff(cheek) >= -1e-6) and np.abs(np.diff(cheek)).max() < 0.05  # ramped, not snapped
    with pytest.raises(ValueError, match="unknown emotion preset"):
        layer.set_emotion("giddy")
