"""evaluate --emotion / --articulation: one row per expression, lip sync kept where a preset cannot part the
lips, and bad values refused before any work."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pytest

from audio2blendshape.cli.evaluate import _expressions, register
from audio2blendshape.cli.main import main
from audio2blendshape.data.corpus import build_manifest, write_utterance
from audio2blendshape.data.labels import label_utterance
from audio2blendshape.data.visemes import PhonemeSpan
from audio2blendshape.evaluation.evaluate import evaluate_dataset, evaluate_predictor
from audio2blendshape.expression.blend import LIP_PARTING
from audio2blendshape.expression.layers import ExpressionControls
from audio2blendshape.expression.presets import BUILTIN, EMOTIONS
from audio2blendshape.names import ARKIT_NAMES
from audio2blendshape.runtime.animator import Animator

RATE = 16_000
PLAIN = "default (bundled)"
# Loudness per phoneme: loud vowels, quiet consonants, near-silent stop closures and pauses.
LEVELS = {"a": 0.5, "o": 0.4, "e": 0.4, "m": 0.03, "p": 0.003, "b": 0.005, "t": 0.01, "s": 0.05, "_": 0.0003}
SYLLABLES = ("ma", "pa", "ba", "ta", "sa", "me", "po", "bo")
# Presets with no weight on a shape that parts the lips (jawOpen, lip up/down, funnel, pucker, tongue).
CLOSED_MOUTH = [n for n, w in BUILTIN.items() if not {ARKIT_NAMES.index(s) for s in w} & set(LIP_PARTING)]


def _speech(rng: np.random.Generator) -> tuple[np.ndarray, list[PhonemeSpan]]:
    """About 2.5 s of speech-like audio (voiced vowels, quiet consonants) and its phoneme spans."""
    spans, t = [PhonemeSpan(0.0, 0.25, "_")], 0.25
    for _ in range(10):
        for symbol in rng.choice(SYLLABLES):
            length = rng.uniform(0.06, 0.09) if symbol in "mpbts" else rng.uniform(0.1, 0.16)
            spans.append(PhonemeSpan(t, t + length, str(symbol)))
            t += length
    spans.append(PhonemeSpan(t, t + 0.25, "_"))
    times = np.arange(int((t + 0.25) * RATE)) / RATE
    audio = rng.normal(0, 0.2, len(times)) + np.sin(2 * np.pi * 140 * times)
    gain = np.zeros(len(times))
    for span in spans:
        gain[int(span.start * RATE) : int(span.end * RATE)] = LEVELS[span.symbol]
    return (audio * gain).astype(np.float32), spans


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two test utterances at 100 fps, labelled by the rule-based labels."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(11)
    for i in range(2):
        audio, spans = _speech(rng)
        curves = label_utterance(audio, spans, fps=100.0, seed=i)
        write_utterance(root, f"u{i}", audio, curves, ARKIT_NAMES, 100.0, language="xx", speaker=f"s{i}",
                        split="test", phonemes=spans)  # fmt: skip
    build_manifest(root)
    return root


def _cli(*arguments: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["evaluate", *arguments])


def test_one_row_per_expression_with_its_label(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    args = _cli("default", "--data", str(corpus), "--no-baselines", "--emotion", "all", "--json", str(out))
    assert args.func(args) == 0
    rows = json.loads(out.read_text())["rows"]
    expected = ["oracle (labels)", PLAIN, *(f"{PLAIN} + {name}=1" for name in EMOTIONS)]
    assert [r["name"] for r in rows] == expected and len(EMOTIONS) == 7
    assert all(r["kind"] == "checkpoint" for r in rows[1:])
    mixed = _cli("default", "--data", str(corpus), "--no-baselines", "--limit", "1",
                 "--emotion", "happy=0.5", "--emotion", "sad", "--articulation", "1.2")  # fmt: skip
    names = [
        r["name"] for r in evaluate_dataset([None], corpus, "test", False, 1, None, _expressions(mixed)).rows
    ]
    assert names[1:] == [PLAIN, f"{PLAIN} + happy=0.5, articulation 1.2", f"{PLAIN} + sad, articulation 1.2"]
    alone = _cli("default", "--data", str(corpus), "--articulation", "0.5")
    assert [label for label, _ in _expressions(alone)] == ["articulation 0.5"]
    with pytest.raises(ValueError, match="score checkpoints: name at least one"):
        no_checkpoint = _cli("--data", str(corpus), "--emotion", "happy")
        no_checkpoint.func(no_checkpoint)


def test_presets_that_cannot_part_the_lips_keep_every_lipsync_figure(corpus: Path) -> None:
    assert set(CLOSED_MOUTH) == {"neutral", "happy", "sad", "angry", "fearful"}
    expressions = [(f"{n}=1", ExpressionControls.build(f"{n}=1")) for n in EMOTIONS]
    expressions.append(("articulation 1.5", ExpressionControls(articulation=1.5)))
    report = evaluate_dataset([None], corpus, baselines=False, expressions=expressions)
    plain = report.row(PLAIN)
    assert plain["lipsync"]["closure"] > 0.5  # the model closes the lips: equal figures mean something
    for name in CLOSED_MOUTH:
        row = report.row(f"{PLAIN} + {name}=1")
        assert row["lipsync"] == plain["lipsync"], name  # the lip gap is the model's, frame for frame
        assert (row["mse"] == plain["mse"]) == (name == "neutral"), name  # yet the preset shows
    for name in ("surprised", "disgusted"):  # they do part the lips, but only where the model's are open
        row = report.row(f"{PLAIN} + {name}=1")
        assert row["lipsync"]["closure"] == plain["lipsync"]["closure"], name
        assert abs(row["lipsync"]["auc"] - plain["lipsync"]["auc"]) <= 0.02, name
    louder = report.row(f"{PLAIN} + articulation 1.5")["lipsync"]
    assert louder["closure"] == plain["lipsync"]["closure"]
    assert louder["pause_openness"] >= plain["lipsync"]["pause_openness"]


def test_the_closure_metric_would_see_lips_parted_by_an_expression(corpus: Path) -> None:
    """A naive jaw offset (what the blend's closure gate prevents) drops the closure, so the equal figures
    above are the blend's doing, not a metric blind to it."""

    animator = Animator.load()
    jaw = ARKIT_NAMES.index("jawOpen")

    def naive_surprise(audio: np.ndarray) -> np.ndarray:
        weights = animator.animate(audio, fps=100.0, idle=False, seed=0).weights
        weights[:, jaw] = np.minimum(weights[:, jaw] + 0.12, 1.0)
        return weights

    naive = evaluate_predictor(naive_surprise, corpus, names=animator.names, label="naive")
    plain = evaluate_dataset([None], corpus, baselines=False).row(PLAIN)["lipsync"]
    assert naive.row("naive")["lipsync"]["closure"] < plain["closure"] - 0.3


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--emotion", "smug"), "emotion 'smug': unknown emotion preset 'smug'; choose one of neutral"),
        (("--emotion", "happy=2"), "emotion 'happy=2': cue 'happy': intensity 2 is outside 0..1"),
        (
            ("--articulation", "1.6"),
            "articulation must be within 0.5..1.5 (1 = as the model speaks), got 1.6",
        ),
        (("--emotion", "all", "--articulation", "0.4"), "articulation must be within 0.5..1.5"),
    ],
)
def test_bad_values_fail_before_any_work(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: tuple[str, ...], message: str
) -> None:
    out = tmp_path / "eval.json"
    status = main(["evaluate", "default", "--data", str(corpus), "--json", str(out), *arguments])
    captured = capsys.readouterr()
    assert status == 2 and f"audio2blendshape evaluate: error: {message}" in captured.err
    assert captured.out == "" and not out.exists()  # refused before the model ran or a row was scored
    with pytest.raises(ValueError, match=re.escape(message)):  # PresetError, TrackError or ValueError
        _expressions(_cli("--data", str(corpus), *arguments))
