"""The training-only viseme probe: per-frame viseme ids from phoneme timing, the cross-entropy term, and a
run that trains with it, resumes it exactly and ships a model without it."""

from pathlib import Path
from typing import NoReturn

import numpy as np
import pytest
import torch
from safetensors import safe_open

from audio2blendshape.data.corpus import build_manifest, write_utterance
from audio2blendshape.data.corpus_windows import CorpusWindows
from audio2blendshape.data.labels import frame_visemes
from audio2blendshape.data.visemes import SILENCE, VISEMES, PhonemeSpan
from audio2blendshape.data.windows import UNKNOWN_VISEME, MixedWindows, TensorWindows, collate, known_visemes
from audio2blendshape.models.checkpoint import load_model
from audio2blendshape.models.frame import FrameConfig, FrameModel
from audio2blendshape.models.viseme_probe import ProbedFrameModel, VisemeProbe, step_visemes
from audio2blendshape.names import ARKIT_NAMES
from audio2blendshape.training import loop
from audio2blendshape.training.checkpoint import load_checkpoint
from audio2blendshape.training.config import load_config
from audio2blendshape.training.loop import train
from audio2blendshape.training.losses import BlendshapeLoss, LossConfig, viseme_cross_entropy
from audio2blendshape.training.metrics_log import read_metrics
from audio2blendshape.typed_config import ConfigError

SPANS = [PhonemeSpan(0.10, 0.20, "m"), PhonemeSpan(0.20, 0.40, "a"), PhonemeSpan(0.50, 0.60, "t")]


def test_frame_visemes_follow_the_spans_and_fill_gaps_with_silence():
    ids = frame_visemes(SPANS, duration=0.8, frames=80)
    expected = np.full(80, SILENCE)
    expected[10:20], expected[20:40], expected[50:60] = (VISEMES.index(v) for v in ("PP", "aa", "DD"))
    assert ids.dtype == np.int64 and np.array_equal(ids, expected)
    assert np.array_equal(frame_visemes([], 0.3, 30), np.full(30, SILENCE))


def test_cross_entropy_leaves_out_unknown_steps():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, len(VISEMES), requires_grad=True)
    ids = torch.tensor([[1, 2, -1, 0, 3], [-1, -1, 4, 4, 15]])
    known = ids >= 0
    expected = torch.nn.functional.cross_entropy(logits[known], ids[known])
    torch.testing.assert_close(viseme_cross_entropy(logits, ids), expected)
    none_known = viseme_cross_entropy(logits, torch.full_like(ids, UNKNOWN_VISEME))
    none_known.backward()
    assert none_known.item() == 0.0 and logits.grad is not None and not logits.grad.any()


def test_loss_dict_carries_the_viseme_term_in_its_total():
    loss = BlendshapeLoss(ARKIT_NAMES, LossConfig(viseme=0.5))
    pred, target = torch.rand(2, 6, 52), torch.rand(2, 6, 52)
    logits, ids = torch.randn(2, 6, len(VISEMES)), torch.randint(0, len(VISEMES), (2, 6))
    terms = loss(pred, target, logits, ids)
    without = BlendshapeLoss(ARKIT_NAMES)(pred, target)["total"]
    torch.testing.assert_close(terms["total"], without + 0.5 * terms["viseme"])
    with pytest.raises(ValueError, match="viseme term needs"):
        loss(pred, target)


def test_probed_model_gives_the_model_output_and_step_visemes_pick_each_steps_first_frame():
    model = FrameModel(52, FrameConfig(d_model=16, conv_layers=1, d_attention=8, decoder_hidden=8)).eval()
    probed = ProbedFrameModel(model, VisemeProbe(16, len(VISEMES))).eval()
    mel = torch.randn(2, 21, 80)
    weights, logits = probed(mel)
    torch.testing.assert_close(weights, model(mel))
    assert logits.shape == (2, 10, len(VISEMES))
    frames = torch.arange(21).repeat(2, 1)
    assert step_visemes(frames, 2).tolist()[0] == list(range(0, 20, 2))


def _corpus(root: Path, seconds: float = 1.2, with_phonemes: bool = True) -> Path:
    rng = np.random.default_rng(0)
    for number in range(3):
        audio = (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32)
        curves = rng.uniform(0, 0.5, (int(seconds * 100), 52)).astype(np.float32)
        split = "val" if number == 2 else "train"
        phonemes = SPANS if with_phonemes else None
        write_utterance(root, f"u{number}", audio, curves, ARKIT_NAMES, 100.0, language="en", speaker="s",
                        split=split, phonemes=phonemes)  # fmt: skip
    build_manifest(root)
    return root


def test_corpus_windows_carry_visemes_and_unknown_without_timing(tmp_path: Path):
    timed = CorpusWindows(_corpus(tmp_path / "timed"), "train", window_frames=100, hop_frames=20)
    window = timed[0]
    assert window.visemes is not None and window.visemes.shape == (100,)
    assert torch.equal(window.visemes, torch.from_numpy(frame_visemes(SPANS, 1.2, 100)))
    untimed = CorpusWindows(_corpus(tmp_path / "untimed", with_phonemes=False), "train", window_frames=100)
    assert torch.all(untimed[0].visemes == UNKNOWN_VISEME)
    # Short utterances are padded: with silence where the timing is known, unknown where it is not.
    padded = CorpusWindows(_corpus(tmp_path / "short", seconds=0.7), "train", window_frames=100)
    assert torch.all(padded[0].visemes[70:] == SILENCE)
    mixed = collate(MixedWindows([timed, untimed]), torch.tensor([0, len(timed)]))
    assert mixed.visemes is not None and torch.equal(mixed.visemes[0], window.visemes)
    assert torch.all(mixed.visemes[1] == UNKNOWN_VISEME)
    plain = TensorWindows(torch.zeros(2, 10, 80), torch.zeros(2, 10, 52), ARKIT_NAMES)
    plain_batch = collate(plain, torch.tensor([0, 1]))
    assert plain_batch.visemes is None and torch.all(known_visemes(plain_batch) == UNKNOWN_VISEME)


def _config(tmp_path: Path, out: Path, *overrides: str):
    corpus = _corpus(tmp_path / "corpus")
    return load_config(None, [
        "model.kind='frame'", "frame.d_model=16", "frame.conv_layers=1", "frame.d_attention=8",
        "frame.decoder_hidden=8", "data.source='corpus'", f"data.corpus_dir={corpus.as_posix()!r}",
        "data.window_frames=100", "train.batch_size=4", "train.warmup_steps=2", "train.progress=false",
        "train.lr=3e-3", "train.log_every=1", "loss.viseme=1.0", f"train.out_dir={out.as_posix()!r}",
        *overrides,
    ])  # fmt: skip


class Killed(Exception):
    pass


def test_a_run_with_the_probe_learns_visemes_resumes_exactly_and_ships_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    settings = ("train.max_steps=30", "train.checkpoint_every=10", "frame.dropout=0.2")
    reference = tmp_path / "reference"
    train(_config(tmp_path, reference, *settings))
    records = read_metrics(reference / "metrics.jsonl")
    viseme = {r["step"]: r["train/viseme"] for r in records if "train/viseme" in r}
    assert viseme[30] < 0.5 * viseme[1]  # the probe learns the visemes of its three utterances
    assert "val/viseme" in records[-1]

    # Killed just after its step-10 checkpoint, then run again: the same losses at every step.
    def save_then_die(*args: object, **kwargs: object) -> NoReturn:
        real_save(*args, **kwargs)  # type: ignore[arg-type]
        raise Killed

    real_save = loop.save_checkpoint
    resumed = tmp_path / "resumed"
    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        train(_config(tmp_path, resumed, *settings))
    monkeypatch.undo()
    assert load_checkpoint(resumed / "last.safetensors").step == 10
    train(_config(tmp_path, resumed, *settings))
    again = {
        r["step"]: r["train/total"] for r in read_metrics(resumed / "metrics.jsonl") if "train/total" in r
    }
    assert again == {r["step"]: r["train/total"] for r in records if "train/total" in r}

    last = reference / "last.safetensors"
    with safe_open(str(last), "pt") as handle:
        assert any(key.startswith("probe.") for key in handle.keys())  # noqa: SIM118
    assert load_checkpoint(last).probe_state  # kept for resuming ...
    loaded = load_model(last)  # ... and ignored by every model loader
    assert isinstance(loaded.model, FrameModel) and not hasattr(loaded.model, "probe")


def test_the_viseme_term_needs_a_frame_model():
    with pytest.raises(ConfigError, match=r"loss\.viseme"):
        load_config(None, ["loss.viseme=1.0", "model.kind='simplified'"])
