"""Run configuration: frozen dataclasses loaded from TOML and overridden from the command line.

A TOML file has one table per section (``[model]``, ``[simplified]``, ``[frame]``, ``[loss]``, ``[train]``,
``[data]``); ``model.kind`` picks which model's table applies. Any key left out keeps its default, or
the value in the file that a top-level ``base = "other.toml"`` key names (relative to the file; checkpoints
record the merged config, so they stay self-describing). ``--set train.lr=3e-4`` overrides one field; its
value is read as a TOML value, so ``--set train.grad_clip=inf`` and ``--set data.source="corpus"`` work as
they would in the file.
Unknown sections or keys, and values of the wrong type, are errors that name the file and the key.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audio2blendshape.models.checkpoint import MODEL_KINDS
from audio2blendshape.models.frame import FrameConfig
from audio2blendshape.models.simplified import SimplifiedConfig
from audio2blendshape.training.losses import LossConfig
from audio2blendshape.typed_config import ConfigError, build_dataclass

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class TrainConfig:
    out_dir: str = "runs/default"  # checkpoints, metrics.jsonl and plots go here; a rerun resumes from it
    max_steps: int = 300  # optimizer steps in the whole run
    batch_size: int = 16  # windows per step on each process
    lr: float = 1e-3  # peak learning rate, reached after the warm-up
    min_lr: float = 1e-4  # learning rate at the end of the cosine decay
    warmup_steps: int = 20  # linear warm-up from 0 to lr
    weight_decay: float = 0.01  # AdamW decoupled weight decay
    grad_clip: float = 1.0  # max total gradient norm (the seed's max_norm); inf = measure but never clip
    grad_warn_norm: float = 10.0  # check_gradients flags parameters whose gradient norm exceeds this
    log_every: int = 10  # steps between metric lines and gradient-norm reports
    eval_every: int = 100  # steps between validation passes (and at the last step)
    checkpoint_every: int = 100  # steps between checkpoints (and at the last step)
    seed: int = 0  # seeds initialisation, data order and dropout; the same seed gives the same run
    init_from: str = ""  # checkpoint whose weights start the run ("default": the bundled one; "": random)
    encoder_lr_scale: float = 1.0  # the audio encoder's learning rate as a fraction of lr; 0 freezes it
    probe_lr_scale: float = 10.0  # the viseme probe's rate over lr: unlike the model, it starts untrained
    grown_lr_scale: float = 1.0  # rate over lr of conv blocks init_from lacked (grown, starting as identity)
    keep_best: bool = False  # also keep best.safetensors: the weights at the lowest val/total so far
    output_bias_from_data: bool = False  # fresh runs: output biases start at the logit of each curve's mean
    device: str = "auto"  # "auto" (cuda when available), "cpu", "cuda", "cuda:1", ...
    progress: bool = True  # show a tqdm progress bar on rank 0
    tensorboard: bool = False  # also write TensorBoard events (needs the tensorboard extra)


@dataclass(frozen=True)
class DataConfig:
    source: str = (
        "synthetic"  # "synthetic" (generated toy speech, no files needed) or "corpus" (a dataset dir)
    )
    corpus_dir: str = ""  # dataset directory made by `audio2blendshape data ...` when source = "corpus"
    extra_corpora: tuple[str, ...] = ()  # more datasets of the same rig, mixed into training and validation
    corpus_repeats: tuple[int, ...] = ()  # per dataset, corpus_dir first: times its windows are listed
    window_frames: int = 300  # mel frames per training window (300 = the seed's 3 s)
    train_windows: int = 512  # synthetic source: training windows generated
    val_windows: int = 64  # synthetic source: validation windows generated (different seed)
    feature_warp: float = 0.0  # training windows' mel axis stretched by a factor in [1 - w, 1 + w] (voices)
    feature_tilt: float = 0.0  # training windows get a spectral tilt of up to +-this, in feature units


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "simplified"  # "simplified" (the seed's window -> one pose) or "frame" (a pose per frame)


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    simplified: SimplifiedConfig = field(default_factory=SimplifiedConfig)
    frame: FrameConfig = field(default_factory=FrameConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)


def config_from_dict(data: dict[str, Any], source: str = "config") -> Config:
    """A Config from nested dicts (a parsed TOML file or a checkpoint's JSON)."""
    config: Config = build_dataclass(Config, data, source)
    validate(config, source)
    return config


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.lr=3e-4"`` -> (["train", "lr"], 3e-4); the value is TOML, or a bare string."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except ValueError:  # TOMLDecodeError, or an integer of more digits than Python converts
        value = raw.strip()
    except RecursionError:  # tomllib recurses once per nested bracket
        raise ConfigError(f"--set {text[:60]!r}: the value nests too deeply") from None
    return key.strip().split("."), value


MAX_BASE_DEPTH = 16  # files a chain of ``base`` keys may pass through


def read_config_tables(path: str | Path, chain: tuple[Path, ...] = ()) -> tuple[dict[str, Any], list[Path]]:
    """The tables of the TOML file at ``path``, laid key by key over those of its ``base`` file if it names
    one (``base = "other.toml"``, relative to the file): a run that changes a few keys of another says only
    those. Also returns the files read, ``path`` first. ``chain``: the files that led here (cycle check)."""
    path = Path(path)
    data = _parse_toml(path)
    base = data.pop("base", None)
    if base is None:
        return data, [path]
    if not isinstance(base, str):
        raise ConfigError(f"{path}: base must name a TOML file (a string), got {base!r}")
    base_path = path.parent / base
    if not base_path.is_file():
        raise ConfigError(f"{path}: base {base!r} is not a file ({base_path})")
    here = path.resolve()
    if base_path.resolve() in (*chain, here) or len(chain) >= MAX_BASE_DEPTH:
        raise ConfigError(f"{path}: base {base!r} leads back to itself or nests too deeply")
    merged, files = read_config_tables(base_path, (*chain, here))
    for section, table in data.items():
        below = merged.get(section)
        merged[section] = {**below, **table} if isinstance(below, dict) and isinstance(table, dict) else table
    return merged, [path, *files]


def _parse_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the config ({error.strerror})") from error
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: not UTF-8 text, so not TOML ({error.reason} at byte {error.start})"
        ) from None
    except ValueError as error:  # TOMLDecodeError, or an integer of more digits than Python converts
        raise ConfigError(f"{path}: not valid TOML ({error})") from error
    except RecursionError:  # tomllib recurses once per nested bracket
        raise ConfigError(f"{path}: not valid TOML (arrays or tables nest too deeply)") from None


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> Config:
    """Defaults, then the TOML file at ``path`` (if any, over its ``base``), then each ``section.key=value``
    override."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        data, files = read_config_tables(path)
        bases = f" (over {', '.join(str(f) for f in files[1:])})" if len(files) > 1 else ""
        source = f"{path}{bases}"  # a bad key may sit in any of the files
    for text in overrides:
        keys, value = parse_override(text)
        table = data
        for key in keys[:-1]:
            table = table.setdefault(key, {})
            if not isinstance(table, dict):
                raise ConfigError(f"--set {text!r}: {key!r} is not a section")
        table[keys[-1]] = value
    return config_from_dict(data, source)


def validate(config: Config, source: str) -> None:
    """Reject values that would fail later, deep inside training."""
    t, m, f = config.train, config.simplified, config.frame
    not_finite = _first_not_finite(config)
    not_positive = next((k for k in _SIZES if getattr(getattr(config, k[0]), k[1]) < 1), None)
    checks = [
        (not not_finite, f"{not_finite} must be a finite number"),
        (not_positive is None, f"{'.'.join(not_positive or ())} must be positive"),
        (f.conv_layers >= 0, "frame.conv_layers must be non-negative"),
        (t.max_steps > 0, "train.max_steps must be positive"),
        (t.batch_size > 0, "train.batch_size must be positive"),
        (t.lr > 0 and t.min_lr >= 0, "train.lr must be positive and train.min_lr non-negative"),
        (t.encoder_lr_scale >= 0, "train.encoder_lr_scale must be non-negative"),
        (t.probe_lr_scale > 0, "train.probe_lr_scale must be positive"),
        (t.grown_lr_scale > 0, "train.grown_lr_scale must be positive"),
        (t.grad_clip > 0 and not math.isnan(t.grad_clip), "train.grad_clip must be positive (inf = no clip)"),
        (min(t.log_every, t.eval_every, t.checkpoint_every) > 0, "train.*_every must be positive"),
        (config.model.kind in MODEL_KINDS, f"model.kind must be one of {', '.join(MODEL_KINDS)}"),
        (
            m.n_heads < 1 or m.d_model % m.n_heads == 0,
            "simplified.d_model must be divisible by simplified.n_heads",
        ),
        (0.0 <= m.dropout < 1.0 and 0.0 <= f.dropout < 1.0, "dropout must be in [0, 1)"),
        (
            f.n_heads < 1 or f.d_attention % f.n_heads == 0,
            "frame.d_attention must be divisible by frame.n_heads",
        ),
        (f.stack > 0 and f.window_left >= 0 and f.window_right >= 0, "frame windows must be non-negative"),
        (
            config.data.window_frames >= f.stack or config.model.kind != "frame",
            "data.window_frames < frame.stack",
        ),
        (config.data.source in ("synthetic", "corpus"), "data.source must be 'synthetic' or 'corpus'"),
        (config.data.source != "corpus" or bool(config.data.corpus_dir), "data.corpus_dir is required"),
        (config.data.window_frames > 0, "data.window_frames must be positive"),
        (
            not config.data.corpus_repeats
            or len(config.data.corpus_repeats) == 1 + len(config.data.extra_corpora),
            "data.corpus_repeats needs one count per dataset (corpus_dir, then each of extra_corpora)",
        ),
        (min(config.data.corpus_repeats, default=1) >= 1, "data.corpus_repeats must be at least 1"),
        (0.0 <= config.data.feature_warp < 0.5, "data.feature_warp must be in [0, 0.5)"),
        (config.data.feature_tilt >= 0.0, "data.feature_tilt must be non-negative"),
        (config.loss.viseme >= 0.0, "loss.viseme must be non-negative"),
        (not config.loss.viseme or config.model.kind == "frame", "loss.viseme needs model.kind = 'frame'"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"{source}: {message}")


# Model sizes: zero or negative ones fail inside torch with messages that do not name the key.
_SIZES = (("simplified", "n_mels"), ("simplified", "d_model"), ("simplified", "n_heads"),
          ("simplified", "decoder_hidden"), ("frame", "n_mels"), ("frame", "stack"), ("frame", "d_model"),
          ("frame", "conv_kernel"), ("frame", "d_attention"), ("frame", "n_heads"),
          ("frame", "decoder_hidden"))  # fmt: skip
# Infinity means "never" here; NaN is refused everywhere.
_MAY_BE_INFINITE = {"train.grad_clip", "train.grad_warn_norm"}


def _first_not_finite(config: Config) -> str:
    """The first float field that is NaN (or infinite where that means nothing), as ``section.key``."""
    for section in dataclasses.fields(config):
        table = getattr(config, section.name)
        for item in dataclasses.fields(table):
            value, key = getattr(table, item.name), f"{section.name}.{item.name}"
            if isinstance(value, float) and not (
                math.isfinite(value) or (key in _MAY_BE_INFINITE and value > 0)
            ):
                return key
    return ""


def config_to_dict(config: Config) -> dict[str, Any]:
    """Nested plain dicts, JSON-serialisable (inf becomes the float inf, which json writes as Infinity)."""
    return dataclasses.asdict(config)
