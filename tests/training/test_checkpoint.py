from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from audio2blendshape.models.simplified import SimplifiedModel
from audio2blendshape.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from audio2blendshape.training.config import load_config


def _tiny():
    config = load_config(
        None, ["simplified.d_model=16", "simplified.n_heads=2", "simplified.decoder_hidden=8"]
    )
    return config, SimplifiedModel(5, config.simplified)


def test_round_trip_restores_model_config_names_and_optimizer(tmp_path: Path):
    config, model = _tiny()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 10, 80)).sum().backward()
    optimizer.step()
    names = ("a", "b", "c", "d", "e")
    path = save_checkpoint(tmp_path / "ck.safetensors", model, config, names, 42, optimizer, {"note": 1})
    loaded = load_checkpoint(path)
    assert loaded.config == config and loaded.names == names and loaded.step == 42
    assert loaded.extra == {"note": 1} and not loaded.model.training
    mel = torch.randn(3, 12, 80)
    model.eval()
    assert torch.equal(loaded.model(mel), model(mel))
    restored = torch.optim.AdamW(loaded.model.parameters(), lr=1e-3)
    restored.load_state_dict(loaded.optimizer_state)
    before, after = optimizer.state_dict()["state"], restored.state_dict()["state"]
    assert sorted(before) == sorted(after) and len(before) == len(list(model.parameters()))
    for index, slots in before.items():
        for slot, value in slots.items():
            assert torch.equal(value, after[index][slot]), (index, slot)
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_loading_is_strict_and_errors_name_the_file(tmp_path: Path):
    config, model = _tiny()
    good = save_checkpoint(tmp_path / "good.safetensors", model, config, tuple("abcde"), 1)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nope.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match=r"junk\.safetensors: not a safetensors"):
        load_checkpoint(junk)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(1)}, str(foreign))
    with pytest.raises(CheckpointError, match="not an audio2blendshape checkpoint"):
        load_checkpoint(foreign)
    # Names that do not fit the stored weights: strict loading refuses.
    from safetensors import safe_open

    with safe_open(str(good), framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 (safe_open is no dict)
    metadata["names"] = '["a", "b"]'
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata=metadata)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(bad)


def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch):
    config, model = _tiny()
    path = save_checkpoint(tmp_path / "ck.safetensors", model, config, tuple("abcde"), 1)
    before = path.read_bytes()

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("audio2blendshape.training.checkpoint.save_file", explode)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, config, tuple("abcde"), 2)
    assert path.read_bytes() == before and load_checkpoint(path).step == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.safetensors"]
