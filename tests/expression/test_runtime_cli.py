"""The expression layer through the Animator, the Streamer and the command line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from audio2blendshape.audio.decode import load_audio
from audio2blendshape.expression.layers import ExpressionControls
from audio2blendshape.expression.track import Cue
from audio2blendshape.runtime.animator import Animator
from audio2blendshape.runtime.backends import load_stream_model
from audio2blendshape.runtime.streamer import Streamer

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "examples" / "hello.wav"
CONTROLS = ExpressionControls(
    cues=(Cue(0.0, "happy", 0.8, 0.0), Cue(2.0, "angry", 1.0, 0.5)),
    articulation=1.3, expressiveness=1.0, head_motion=1.0,
)  # fmt: skip


@pytest.fixture(scope="module")
def animator() -> Animator:
    return Animator.load()


@pytest.fixture(scope="module")
def low_latency() -> Animator:
    """The bundled low-latency model (what ``stream`` runs) offline, through its checkpoint."""
    return Animator(load_stream_model(None, "torch", 1))


def test_streamer_equals_animator_with_every_layer(low_latency: Animator) -> None:
    offline = low_latency.animate(HELLO, fps=60, seed=5, expression=CONTROLS)
    plain = low_latency.animate(HELLO, fps=60, seed=5)
    assert offline.head is not None and plain.head is None
    assert np.abs(offline.weights - plain.weights).max() > 0.3
    audio = load_audio(HELLO)
    for chunk in (320, 1234):
        streamer = Streamer(load_stream_model(None, "auto", 1), 16000, 60, True, 5, expression=CONTROLS)
        parts = [streamer.push(audio[i : i + chunk]) for i in range(0, len(audio), chunk)] + [
            streamer.flush()
        ]
        weights = np.concatenate([p.weights for p in parts])
        head = np.concatenate([p.head for p in parts if p.head is not None])
        np.testing.assert_allclose(weights, offline.weights, atol=1e-4)
        np.testing.assert_allclose(head, offline.head, atol=1e-4)


def test_neutral_controls_give_the_plain_animation(animator: Animator) -> None:
    plain = animator.animate(HELLO, fps=30, seed=1)
    same = animator.animate(HELLO, fps=30, seed=1, expression=ExpressionControls())
    np.testing.assert_array_equal(same.weights, plain.weights)
    assert same.head is None


def test_other_rigs_refuse_the_expression_layer() -> None:
    class TwoShapes:
        names = ("a", "b")
        stack, context_steps, lookahead_steps = 2, 1, 1

    with pytest.raises(ValueError, match="needs the 52 ARKit shapes"):
        Streamer(TwoShapes(), expression=ExpressionControls())  # type: ignore[arg-type]


def test_animate_command_with_emotion_and_head_motion(tmp_path: Path) -> None:
    plain, directed = tmp_path / "plain.csv", tmp_path / "directed.csv"
    assert run_cli("animate", str(HELLO), "-o", str(plain), "--fps", "30").returncode == 0
    result = run_cli(
        "animate", str(HELLO), "-o", str(directed), "--fps", "30", "--emotion", "happy=0.8",
        "--articulation", "1.2", "--expressiveness", "1", "--head-motion", "1", "--seed", "3",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = {p: list(csv.DictReader(p.open())) for p in (plain, directed)}
    assert len(rows[plain]) == len(rows[directed])
    smile = [float(r["MouthSmileLeft"]) for r in rows[directed]]
    # happy=0.8 screens a 0.52 smile onto the lips, less where they close or round (blend.py), so how much of
    # it shows on average depends on how often the model closes them: well over half, and all of it at rest.
    assert np.mean(smile) > np.mean([float(r["MouthSmileLeft"]) for r in rows[plain]]) + 0.25
    assert max(smile) > 0.5
    assert all(float(r["HeadYaw"]) == 0 for r in rows[plain])
    yaw = np.array([float(r["HeadYaw"]) for r in rows[directed]])
    assert 0 < np.abs(yaw).max() < np.radians(8)


def test_animate_command_with_a_track_and_a_user_preset(tmp_path: Path) -> None:
    preset = tmp_path / "smirk.json"
    preset.write_text(json.dumps({"mouthSmileLeft": 0.9}))
    track = tmp_path / "track.csv"
    track.write_text("time,preset,intensity,ramp\n0,neutral,1,0\n2,smirk,1,0.3\n")
    out = tmp_path / "out.json"
    result = run_cli(
        "animate", str(HELLO), "-o", str(out), "--emotion-track", str(track), "--preset", str(preset)
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    column = data["names"].index("mouthSmileLeft")
    frames = np.array(data["frames"])
    assert frames[3 * 60 :, column].mean() > frames[: 2 * 60 - 1, column].mean() + 0.4


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--articulation", "2"), "articulation must be within 0.5..1.5"),
        (("--emotion", "giddy=1"), "unknown emotion preset 'giddy'"),
        (("--emotion", "happy=1", "--emotion-track", "t.json"), "not allowed with argument"),
        (("--head-motion", "-1"), "head motion must be within 0..2"),
    ],
)
def test_bad_expression_options_are_refused(tmp_path: Path, args: tuple[str, ...], needle: str) -> None:
    result = run_cli("animate", str(HELLO), "-o", str(tmp_path / "x.csv"), *args)
    assert result.returncode != 0 and needle in result.stderr, result.stderr
    assert not (tmp_path / "x.csv").exists()


def test_stream_command_takes_the_expression_options_and_osc_input() -> None:
    result = run_cli(
        "stream", str(HELLO), "--ws", "0", "--osc-in", "0", "--emotion", "sad=0.5", "--head-motion", "1",
        "--expressiveness", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "streamed 4.85 s of audio" in result.stdout


def test_streamer_equals_animator_at_a_natively_featurised_rate(low_latency: Animator) -> None:
    import soxr

    audio = soxr.resample(load_audio(HELLO), 16000, 44100).astype(np.float32)
    controls = ExpressionControls(expressiveness=1.0, head_motion=1.0)
    offline = low_latency.animate(audio, fps=30, sample_rate=44100, seed=2, expression=controls)
    streamer = Streamer(load_stream_model(None, "auto", 1), 44100, 30, True, 2, expression=controls)
    parts = [streamer.push(audio[i : i + 882]) for i in range(0, len(audio), 882)] + [streamer.flush()]
    np.testing.assert_allclose(np.concatenate([p.weights for p in parts]), offline.weights, atol=1e-4)
    head = np.concatenate([p.head for p in parts if p.head is not None])
    assert offline.head is not None and np.abs(offline.head).max() > 0.005
    np.testing.assert_allclose(head, offline.head, atol=1e-4)


def test_stream_refuses_osc_input_for_another_rig_and_names_it() -> None:
    import argparse

    from audio2blendshape.cli.stream import _expression

    args = argparse.Namespace(emotion=None, emotion_track=None, preset=None, articulation=1.0,
                              expressiveness=0.0, head_motion=0.0, osc_in=9000)  # fmt: skip
    with pytest.raises(ValueError, match=r"rig.ckpt: .*--head-motion, --osc-in need the 52 ARKit shapes"):
        _expression(args, ("a", "b", "c"), "rig.ckpt")
    assert _expression(argparse.Namespace(**{**vars(args), "osc_in": None}), ("a", "b"), "rig.ckpt") is None
