"""evaluate + lipsync_metrics: the metric functions on known arrays, and the command on a tiny corpus."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from audio2blendshape.cli.evaluate import register
from audio2blendshape.data.corpus import CorpusError, build_manifest, read_manifest, write_utterance
from audio2blendshape.data.labels import label_utterance
from audio2blendshape.data.visemes import PhonemeSpan, mouth_openness
from audio2blendshape.evaluation.baselines import energy_envelope
from audio2blendshape.evaluation.evaluate import evaluate_dataset, evaluate_predictor
from audio2blendshape.evaluation.lipsync import (
    CurveErrors,
    LagSearch,
    LipSync,
    bootstrap_interval,
    closures,
    phoneme_timeline,
    region_groups,
    roc_auc,
    target_openness,
)
from audio2blendshape.evaluation.paired import paired_mse_change
from audio2blendshape.names import ARKIT_GROUPS, ARKIT_NAMES

RATE = 16_000
# Loudness per phoneme class, so the synthetic audio behaves like speech for the energy baseline:
# vowels loud and voiced, nasals and fricatives quieter, stop closures and pauses nearly silent.
LEVELS = {"a": 0.5, "e": 0.4, "o": 0.4, "i": 0.3, "m": 0.03, "n": 0.05, "s": 0.05, "t": 0.01, "p": 0.003,
          "b": 0.005, "_": 0.0003}  # fmt: skip
SYLLABLES = ("ma", "pa", "ba", "ta", "sa", "ne", "mo", "pe", "bo", "ti", "sa")


def _speech(rng: np.random.Generator) -> tuple[np.ndarray, list[PhonemeSpan]]:
    """Audio ``(n,)`` and phoneme spans: a pause, two phrases of CV syllables split by a long pause."""
    spans, t = [PhonemeSpan(0.0, 0.25, "_")], 0.25
    for phrase in range(2):
        for _ in range(6):
            for symbol in rng.choice(SYLLABLES):
                length = rng.uniform(0.06, 0.09) if symbol in "mnpbts" else rng.uniform(0.1, 0.16)
                spans.append(PhonemeSpan(t, t + length, str(symbol)))
                t += length
        pause = 0.3 if phrase == 0 else 0.25
        spans.append(PhonemeSpan(t, t + pause, "_"))
        t += pause
    n = int(t * RATE)
    times = np.arange(n) / RATE
    voice = np.sin(2 * np.pi * 140 * times) + 0.5 * np.sin(2 * np.pi * 280 * times)
    audio = rng.normal(0, 1, n) * 0.2 + voice
    gain = np.zeros(n)
    for span in spans:
        gain[int(span.start * RATE) : int(span.end * RATE)] = LEVELS[span.symbol]
    return (audio * gain / 1.5).astype(np.float32), spans


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three train and two test utterances at 100 fps, labelled by the rule-based labels."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(7)
    for i, split in enumerate(("train", "train", "train", "test", "test")):
        audio, spans = _speech(rng)
        curves = label_utterance(audio, spans, fps=100.0, seed=i)
        write_utterance(root, f"u{i}", audio, curves, ARKIT_NAMES, 100.0, language="xx", speaker=f"s{i}",
                        split=split, phonemes=spans)  # fmt: skip
    build_manifest(root)
    return root


def _labels_by_length(root: Path) -> dict[int, np.ndarray]:
    """Each test utterance's label curves, keyed by its audio length (unique here)."""
    out = {}
    for record in read_manifest(root):
        if record["split"] == "test":
            audio_frames = round(record["duration"] * RATE)
            out[audio_frames] = np.load(root / record["curves"])
    return out


# ---------------------------------------------------------------------------------------------- pure metrics


def test_roc_auc() -> None:
    assert roc_auc(np.array([0.5, 0.6]), np.array([0.0, 0.1])) == 1.0
    assert roc_auc(np.array([0.0, 0.1]), np.array([0.5, 0.6])) == 0.0
    assert roc_auc(np.full(5, 0.3), np.full(7, 0.3)) == 0.5  # a constant score separates nothing
    assert roc_auc(np.array([0.2, 0.4]), np.array([0.3])) == 0.5
    assert roc_auc(np.array([]), np.array([0.3])) is None


def test_curve_errors() -> None:
    rng = np.random.default_rng(0)
    target = rng.uniform(0, 1, (200, 3)).astype(np.float32)
    target[:, 2] = 0.25  # a channel the labels never move: its correlation is undefined and left out
    perfect, shifted, constant = CurveErrors(3), CurveErrors(3), CurveErrors(3)
    perfect.add(target, target)
    shifted.add(target + 0.1, target)
    constant.add(np.full_like(target, 0.5), target)
    groups = {"a": [0], "b": [1, 2]}
    assert perfect.result(groups)["mse"] == 0.0 and perfect.result(groups)["pearson"] == pytest.approx(1.0)
    result = shifted.result(groups)
    assert result["mse"] == pytest.approx(0.01) and result["l1"] == pytest.approx(0.1)
    assert result["pearson"] == pytest.approx(1.0) and result["pearson_channels"] == 2
    assert result["regions"]["b"]["mse"] == pytest.approx(0.01)
    assert constant.result(groups)["pearson"] == 0.0


def test_region_groups() -> None:
    groups = region_groups(ARKIT_NAMES)
    assert set(groups) == set(ARKIT_GROUPS)
    assert [ARKIT_NAMES[c] for c in groups["jaw"]] == list(ARKIT_GROUPS["jaw"])
    custom = region_groups(["eye_L", "eye_R", "mouthA", "mouthB", "mouth_c", "nose"])
    assert custom == {"eye": [0, 1], "mouth": [2, 3, 4], "other": [5]}
    assert region_groups(["a1", "b2", "c3", "d4"]) == {}  # no shared prefixes: overall figures only


def test_timeline_merges_pauses_and_splits_diphthongs() -> None:
    rows = [[0.0, 0.1, "_"], [0.2, 0.3, "aɪ"], [0.3, 0.4, "m"], [0.4, 0.5, "_"]]
    timeline = phoneme_timeline(rows, duration=0.6)  # 0.1-0.2 and 0.5-0.6 are uncovered: silence
    assert timeline.starts.tolist() == pytest.approx([0.0, 0.2, 0.25, 0.3, 0.4])
    assert timeline.ends[0] == pytest.approx(0.2) and timeline.ends[-1] == pytest.approx(0.6)
    with pytest.raises(ValueError, match="phoneme row 1"):
        phoneme_timeline([[0.0, 0.1, "a"], [0.2, "m"]], 1.0)


def test_closure_tolerance() -> None:
    starts, ends = np.array([0.5]), np.array([0.6])  # middle at 0.55 s; window ±20 ms
    for dip, closed, closed_mid in ((0.55, True, True), (0.56, True, False), (0.59, False, False)):
        openness = np.full(100, 0.4)
        openness[round(dip * 100)] = 0.0
        assert closures(openness, starts, ends, 100.0)[0] == closed, dip
        assert (np.interp(55.0, np.arange(100), openness) <= 0.03) == closed_mid


def test_bootstrap_interval_over_utterances() -> None:
    same = [np.array([True, False])] * 40  # every utterance closes half its bilabials: no doubt at all
    assert bootstrap_interval(same) == [0.5, 0.5]
    rng = np.random.default_rng(5)
    mixed = [rng.random(rng.integers(1, 8)) < share for share in rng.uniform(0.5, 1.0, 60)]
    pooled = np.concatenate(mixed).mean()
    low, high = bootstrap_interval(mixed) or (0.0, 0.0)
    assert low < pooled < high and high - low > 0.02
    assert bootstrap_interval(mixed) == [low, high]  # seeded: a split always gets the same interval
    # Four times the utterances, about half the width (1 / sqrt(4)).
    low4, high4 = bootstrap_interval(mixed * 4) or (0.0, 0.0)
    assert 0.35 < (high4 - low4) / (high - low) < 0.65
    assert bootstrap_interval([np.array([], dtype=bool)]) is None


def test_paired_change_tells_a_consistent_change_from_noise() -> None:
    base = np.random.default_rng(1).uniform(1.0, 5.0, 60)
    worse = paired_mse_change(base, base * 1.01)
    assert worse["mse_change"] == pytest.approx(0.01)
    assert worse["mse_change_ci"] == pytest.approx([0.01, 0.01])  # every utterance agrees: no spread
    assert worse["better_share"] == 0.0 and worse["utterances"] == 60
    noisy = base * np.random.default_rng(2).normal(1.0, 0.1, 60)
    mixed = paired_mse_change(base, noisy)
    low, high = mixed["mse_change_ci"]
    assert low < mixed["mse_change"] < high and low < 0.0 < high  # a change as large, but by chance
    assert 0.2 < mixed["better_share"] < 0.8
    assert paired_mse_change(base, noisy) == mixed  # seeded
    assert paired_mse_change(np.zeros(3), np.ones(3))["mse_change"] is None  # nothing to compare against
    with pytest.raises(ValueError, match="differ in shape"):
        paired_mse_change(base, base[:-1])


def test_delay_of_80_ms_is_found() -> None:
    rng = np.random.default_rng(3)
    _, spans = _speech(rng)
    rows = [[s.start, s.end, s.symbol] for s in spans]
    timeline = phoneme_timeline(rows, spans[-1].end)
    reference = target_openness(timeline, int(spans[-1].end * 100), 100.0)
    for delay in (8, -5, 0):
        delayed = np.roll(reference, delay)
        search = LagSearch(100.0)
        search.add(delayed, reference)
        lag_ms, r, at_limit = search.result()
        assert lag_ms == pytest.approx(delay * 10, abs=1.0) and not at_limit and r is not None and r > 0.9
    constant = LagSearch(100.0)
    constant.add(np.full(300, 0.2), reference[:300])
    assert constant.result() == (None, None, False)


def test_lipsync_of_labels_and_of_a_constant() -> None:
    rng = np.random.default_rng(4)
    audio, spans = _speech(rng)
    openness = mouth_openness(label_utterance(audio, spans))
    timeline = phoneme_timeline([[s.start, s.end, s.symbol] for s in spans], len(audio) / RATE)
    oracle, flat = LipSync(100.0), LipSync(100.0)
    oracle.add(openness, timeline, openness)
    flat.add(np.full_like(openness, 0.2), timeline, openness)
    good, bad = oracle.result(), flat.result()
    assert good["auc"] == 1.0 and good["closure"] == 1.0 and abs(good["lag_ms"]) <= 20
    assert good["pause_openness"] < 0.03 and good["pauses"] == 3
    assert good["bilabials"] == sum(s.symbol in "pbm" for s in spans) > 0
    assert bad["auc"] == 0.5 and bad["closure"] == 0.0 and bad["lag_ms"] is None
    assert bad["pause_openness"] == pytest.approx(0.2)
    # Lips always shut close every bilabial, and every t, d, n, k too: false_closure shows the price.
    assert good["false_closure"] is not None and good["false_closure"] < 0.3
    shut = LipSync(100.0)
    shut.add(np.zeros_like(openness), timeline)
    assert shut.result()["closure"] == 1.0 and shut.result()["false_closure"] == 1.0
    assert bad["false_closure"] == 0.0
    # The closure AUC ranks gaps without a threshold: the labels separate bilabials from lips-apart
    # consonants, a constant does not, and a monotone remapping moves closure but not the AUC.
    assert good["closure_auc"] > 0.9 and bad["closure_auc"] == 0.5 == shut.result()["closure_auc"]
    remapped = LipSync(100.0)
    remapped.add(np.cbrt(openness) + 0.05, timeline)
    assert remapped.result()["closure_auc"] == pytest.approx(good["closure_auc"])
    assert remapped.result()["closure"] < good["closure"]


def test_energy_envelope_follows_loudness() -> None:
    rng = np.random.default_rng(1)
    audio = rng.normal(0, 0.001, RATE).astype(np.float32)
    audio[6000:10000] += 0.5 * np.sin(2 * np.pi * 200 * np.arange(4000) / RATE).astype(np.float32)
    envelope = energy_envelope(audio)
    assert envelope.shape == (100,)
    assert envelope[45:55].min() > 0.9 and envelope[:30].max() < 0.1 and envelope[70:].max() < 0.1
    assert np.allclose(energy_envelope(audio * 0.1), envelope, atol=1e-6)  # independent of the gain


# ---------------------------------------------------------------------------------------------- the command


def test_oracle_and_baselines_on_a_corpus(corpus: Path) -> None:
    report = evaluate_dataset([], corpus)
    assert [r["name"] for r in report.rows] == ["oracle (labels)", "mean pose", "energy envelope"]
    oracle, mean, energy = report.rows
    assert oracle["mse"] == 0.0 and oracle["pearson"] == pytest.approx(1.0) and oracle["meets_targets"]
    assert oracle["lipsync"]["auc"] == 1.0 and oracle["lipsync"]["closure"] == 1.0
    assert oracle["lipsync"]["closure_ci"] == [1.0, 1.0]
    assert mean["lipsync"]["auc"] == 0.5 and mean["pearson"] == 0.0 and not mean["meets_targets"]
    assert mean["mse"] > 0 and set(mean["regions"]) == set(ARKIT_GROUPS)
    # The energy mouth opens on the loud vowels and shuts in the near-silent pauses.
    assert energy["lipsync"]["auc"] > 0.9 and energy["lipsync"]["pause_openness"] < 0.05
    assert report.utterances == 2 and report.lipsync
    table = report.table()
    assert "oracle (labels)" in table and "energy envelope" in table and "MSE per region" in table
    assert "1.000-1.000" in table.splitlines()[3]  # the oracle's closure interval
    # The openness r (issue 11's "r with the openness reference") is its own column, not the curves' r.
    assert "open r" in table.splitlines()[2]
    assert 0.5 < oracle["lipsync"]["lag_r"] < 1.0
    assert f"{oracle['lipsync']['lag_r']:8.3f}{oracle['lipsync']['lag_ms']:+8.1f}" in table.splitlines()[3]


def test_speakers_pick_the_utterances_scored(corpus: Path) -> None:
    one = evaluate_dataset([], corpus, baselines=False, speakers=["s4"])
    both = evaluate_dataset([], corpus, baselines=False, speakers=["s3", "s4", "nobody"])
    assert one.utterances == 1 and both.utterances == 2
    assert one.seconds < both.seconds
    with pytest.raises(CorpusError, match="no utterances"):
        evaluate_dataset([], corpus, speakers=["s0"])  # a train speaker: none of the test split


def test_predictor_delayed_by_80_ms(corpus: Path) -> None:
    labels = _labels_by_length(corpus)
    order = list(reversed(ARKIT_NAMES))  # columns in another order: matched by name

    def late(audio: np.ndarray) -> np.ndarray:
        curves = labels[len(audio)]
        return np.concatenate([np.repeat(curves[:1], 8, axis=0), curves[:-8]])[:, ::-1]

    report = evaluate_predictor(late, corpus, names=order, label="late")
    row = report.row("late")
    assert row["lipsync"]["lag_vs_labels_ms"] == pytest.approx(80.0, abs=2.0)
    oracle_lag = report.row("oracle (labels)")["lipsync"]["lag_ms"]
    assert row["lipsync"]["lag_ms"] - oracle_lag == pytest.approx(80.0, abs=5.0)
    assert not row["meets_targets"] and row["mse"] > 0


def test_cli_writes_json(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    out = tmp_path / "eval.json"
    args = parser.parse_args(["evaluate", "--data", str(corpus), "--json", str(out), "--limit", "1"])
    assert args.func(args) == 0
    data = json.loads(out.read_text())
    assert data["utterances"] == 1 and data["split"] == "test" and data["fps"] == 100.0
    assert data["rows"][0]["lipsync"]["closure"] == 1.0
    assert [p.name for p in tmp_path.iterdir()] == ["eval.json"]  # no temp file left behind
    assert "oracle (labels)" in capsys.readouterr().out


def test_other_rig_skips_lipsync(tmp_path: Path) -> None:
    names = ["browA", "browB", "lipX", "lipY", "lipZ", "eye_l", "eye_r"]
    rng = np.random.default_rng(2)
    for i, split in enumerate(("train", "test")):
        audio = rng.normal(0, 0.1, RATE).astype(np.float32)
        curves = rng.uniform(0, 1, (100, len(names))).astype(np.float32)
        write_utterance(
            tmp_path, f"f{i}", audio, curves, names, 100.0, language="zh", speaker="x", split=split
        )
    build_manifest(tmp_path)
    report = evaluate_dataset([], tmp_path)
    assert not report.lipsync and any("lip-sync figures skipped" in n for n in report.notes)
    assert report.regions == {
        "brow": ["browA", "browB"],
        "lip": ["lipX", "lipY", "lipZ"],
        "eye": ["eye_l", "eye_r"],
    }
    assert [r["name"] for r in report.rows] == ["oracle (labels)", "mean pose"]  # no jawOpen: no energy row
    assert all(r["lipsync"] is None for r in report.rows) and report.rows[0]["pearson"] == pytest.approx(1.0)
    assert "AUC" not in report.table()


def test_bad_input_names_the_file(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"manifest\.jsonl: no manifest"):
        evaluate_dataset([], tmp_path)
    with pytest.raises(CorpusError, match="no utterances in split 'val'"):
        evaluate_dataset([], corpus, split="val")
    with pytest.raises(ValueError, match=r"short, utterance 'u3'.*expected weights"):
        evaluate_predictor(lambda audio: np.zeros((10, 52)), corpus, label="short")
    with pytest.raises(ValueError, match="two, utterance 'u3': the prediction lacks the dataset's shapes"):
        evaluate_predictor(
            lambda a: np.zeros((len(a) // 160, 2)), corpus, names=["jawOpen", "x"], label="two"
        )
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("names.txt", "audio", "curves"):
        (broken / name).symlink_to(corpus / name)
    record = next(r for r in read_manifest(corpus) if r["split"] == "test")
    record["phonemes"][2] = [0.5, 0.4, "a"]
    (broken / "manifest.jsonl").write_text(json.dumps(record) + "\n")
    with pytest.raises(CorpusError, match=r"broken/manifest.jsonl: utterance 'u3'.*ends before it starts"):
        evaluate_dataset([], broken, baselines=False)


def test_second_checkpoint_is_compared_with_the_first_by_utterance(corpus: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from audio2blendshape.training.checkpoint import load_default_checkpoint, save_checkpoint

    bundled = load_default_checkpoint()
    for name, parameter in bundled.model.named_parameters():
        if name.startswith("decoder"):
            parameter.data.zero_()  # every weight 0.5 after the sigmoid: far worse on every utterance
    broken = save_checkpoint(tmp_path / "half.safetensors", bundled.model, bundled.config, bundled.names, 0)
    report = evaluate_dataset([None, broken], corpus, baselines=False)
    assert report.row("default (bundled)")["paired"] is None
    assert report.row("oracle (labels)")["paired"] is None
    paired = report.row(str(broken))["paired"]
    assert paired["against"] == "default (bundled)" and paired["utterances"] == 2
    expected = report.row(str(broken))["mse"] / report.row("default (bundled)")["mse"] - 1
    assert paired["mse_change"] == pytest.approx(expected, rel=1e-6) and paired["mse_change_ci"][0] > 0
    assert paired["better_share"] == 0.0
    assert "paired over the same utterances" in report.table()
    assert json.loads(report.to_json())["rows"][-1]["paired"]["mse_change"] == pytest.approx(expected)


def test_bundled_checkpoint_runs(corpus: Path) -> None:
    pytest.importorskip("audio2blendshape.runtime.animator")
    report = evaluate_dataset([None], corpus, baselines=False, max_utterances=1)
    row = report.row("default (bundled)")
    assert row["kind"] == "checkpoint" and np.isfinite(row["mse"]) and row["lipsync"]["auc"] is not None
