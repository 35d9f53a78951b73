"""The training loop, read top to bottom in ``train``.

Each step: forward, the loss dict, ``backward``, gradient diagnostics, clipping, the AdamW step,
``zero_grad(set_to_none=True)``. Launched by ``torchrun`` it trains with DistributedDataParallel (gloo on
CPU, nccl on CUDA) from the environment torchrun sets; only rank 0 writes files.

A run is a pure function of its config and step number: the learning rate, the batch and the dropout masks
of step ``s`` are all derived from ``(seed, s, rank)``. So a run killed at any point and started again with
the same config resumes from its last checkpoint and logs exactly the losses an uninterrupted run logs.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from audio2blendshape.data.toy_speech import synthetic_windows
from audio2blendshape.data.visemes import VISEMES
from audio2blendshape.data.windows import MixedWindows, Window, WindowDataset, collate, known_visemes
from audio2blendshape.models.frame import FrameModel
from audio2blendshape.models.simplified import BlendshapeModel
from audio2blendshape.models.viseme_probe import ProbedFrameModel, VisemeProbe, step_visemes
from audio2blendshape.training.checkpoint import (
    build_model,
    load_checkpoint,
    save_checkpoint,
)
from audio2blendshape.training.config import Config, config_to_dict
from audio2blendshape.training.diagnostics import (
    GradientFinding,
    check_gradients,
    finite_loss_or_raise,
    gradient_norms,
)
from audio2blendshape.training.feature_augment import augment_features
from audio2blendshape.training.losses import BlendshapeLoss
from audio2blendshape.training.metrics_log import MetricsLog
from audio2blendshape.training.warm_start import grown_parameter_names, initialise_from, start_output_bias

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.safetensors"
BEST_NAME = "best.safetensors"  # with train.keep_best: the weights at the lowest validation loss
# Fields that may change between a run and its resumption without changing the run's results.
RESUMABLE_CHANGES = {"max_steps", "progress", "log_every", "eval_every", "checkpoint_every", "device",
                     "tensorboard", "keep_best"}  # fmt: skip
# Top-level modules that make up the audio encoder of each model kind (train.encoder_lr_scale).
ENCODER_MODULES = ("audio_encoder", "input_layer", "conv_blocks")


@dataclass(frozen=True)
class Runtime:
    rank: int  # this process's rank (0 without torchrun)
    world: int  # number of processes
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def setup_runtime(device_name: str) -> Runtime:
    """Join the process group when torchrun launched us, else run as a single process."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return Runtime(0, 1, resolve_device(device_name))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = resolve_device(device_name, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Runtime(dist.get_rank(), dist.get_world_size(), device)


def load_datasets(config: Config) -> tuple[WindowDataset, WindowDataset]:
    data = config.data
    if data.source == "synthetic":
        seed = config.train.seed
        return (
            synthetic_windows(data.train_windows, 2 * seed, data.window_frames),
            synthetic_windows(data.val_windows, 2 * seed + 1, data.window_frames),
        )
    from audio2blendshape.data.corpus import read_manifest
    from audio2blendshape.data.corpus_windows import CorpusWindows

    roots = [data.corpus_dir, *data.extra_corpora]
    repeats = list(data.corpus_repeats) or [1] * len(roots)
    train = [CorpusWindows(root, "train", window_frames=data.window_frames) for root in roots]
    # Validation: every dataset that has a val split (degraded training copies usually have none), unweighted.
    with_val = [root for root in roots if any(r["split"] == "val" for r in read_manifest(Path(root)))]
    val = [CorpusWindows(root, "val", window_frames=data.window_frames) for root in with_val]
    if len(roots) == 1:
        return train[0], val[0]
    return MixedWindows(train, repeats), MixedWindows(val)


def learning_rate(step: int, config: Config) -> float:
    """Linear warm-up to ``lr``, then cosine decay to ``min_lr`` at ``max_steps``."""
    t = config.train
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    progress = (step - t.warmup_steps) / max(1, t.max_steps - t.warmup_steps)
    return t.min_lr + 0.5 * (t.lr - t.min_lr) * (1.0 + math.cos(math.pi * min(1.0, progress)))


def derived_seed(*values: int) -> int:
    """A seed for one purpose of one step, independent of every other (seed, purpose, step, ...)."""
    return int(np.random.SeedSequence(list(values)).generate_state(1)[0])


def batch_indices(step: int, size: int, config: Config, runtime: Runtime) -> torch.Tensor:
    """This rank's share of step ``step``'s batch: a slice of the epoch's seeded permutation."""
    per_step = config.train.batch_size * runtime.world
    if size < per_step:
        raise ValueError(
            f"the training set has {size} windows of {config.data.window_frames} mel frames, fewer than one "
            f"step needs ({config.train.batch_size} x {runtime.world} rank(s)); lower train.batch_size or "
            "data.window_frames, or add recordings"
        )
    steps_per_epoch = size // per_step
    epoch, position = divmod(step, steps_per_epoch)
    generator = torch.Generator().manual_seed(derived_seed(config.train.seed, 1, epoch))
    order = torch.randperm(size, generator=generator)
    start = position * per_step + runtime.rank * config.train.batch_size
    return order[start : start + config.train.batch_size]


def with_probe(model: BlendshapeModel, config: Config) -> nn.Module:
    """What the training step runs: the model, or (``loss.viseme`` > 0) the model with its viseme probe."""
    if not config.loss.viseme:
        return model
    assert isinstance(model, FrameModel)  # validate() allows the viseme term for frame models only
    probe = VisemeProbe(model.config.d_model, len(VISEMES)).to(next(model.parameters()).device)
    return ProbedFrameModel(model, probe)


def probe_of(trained: nn.Module) -> VisemeProbe | None:
    return trained.probe if isinstance(trained, ProbedFrameModel) else None


def batch_terms(
    trained: nn.Module, model: BlendshapeModel, loss_fn: BlendshapeLoss, batch: Window
) -> dict[str, torch.Tensor]:
    """The loss dict of one batch: ``trained`` (or its DDP wrapper) runs it, ``model`` makes the targets."""
    output = trained(batch.mel)
    target = model.target(batch.curves)
    if isinstance(output, tuple):  # a ProbedFrameModel: weights and viseme logits
        assert isinstance(model, FrameModel)
        weights, logits = output
        return loss_fn(weights, target, logits, step_visemes(known_visemes(batch), model.stack))
    return loss_fn(output, target)


@torch.no_grad()
def evaluate(trained: nn.Module, model: BlendshapeModel, dataset: WindowDataset, loss_fn: BlendshapeLoss,
             config: Config, device: torch.device) -> dict[str, float]:  # fmt: skip
    """Mean loss terms over the whole validation set, dropout off."""
    trained.eval()
    totals: dict[str, float] = {}
    size = len(dataset)
    for start in range(0, size, config.train.batch_size):
        batch = collate(dataset, torch.arange(start, min(start + config.train.batch_size, size)))
        batch = Window(batch.mel.to(device), batch.curves.to(device), known_visemes(batch).to(device))
        terms = batch_terms(trained, model, loss_fn, batch)
        for name, value in terms.items():
            totals[name] = totals.get(name, 0.0) + float(value) * batch.mel.shape[0]
    trained.train()
    return {f"val/{name}": value / size for name, value in totals.items()}


def ranks_in_sync(model: nn.Module, runtime: Runtime) -> bool:
    """True when every rank holds bit-identical parameters (a cheap exact signature, gathered)."""
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double()
    ramp = torch.linspace(1.0, 2.0, flat.numel(), dtype=torch.float64, device=flat.device)
    signature = torch.stack([flat.sum(), (flat * ramp).sum(), flat.abs().max()])
    if runtime.world == 1:
        return True
    gathered = [torch.empty_like(signature) for _ in range(runtime.world)]
    dist.all_gather(gathered, signature)
    return all(torch.equal(gathered[0], other) for other in gathered[1:])


def resume_step(path: Path, trained: nn.Module, optimizer: torch.optim.Optimizer, config: Config) -> int:
    """Load weights (the probe's too) and optimizer state from ``path``, checking it belongs to this run."""
    checkpoint = load_checkpoint(path)
    stored, current = config_to_dict(checkpoint.config), config_to_dict(config)
    for section in current:
        for key in current[section]:
            if key in RESUMABLE_CHANGES or stored[section][key] == current[section][key]:
                continue
            raise ValueError(
                f"{path}: this run was started with {section}.{key}={stored[section][key]!r}, not "
                f"{current[section][key]!r}; use a new train.out_dir or the original config"
            )
    model = trained.model if isinstance(trained, ProbedFrameModel) else trained
    model.load_state_dict(checkpoint.model.state_dict(), strict=True)
    probe = probe_of(trained)
    if probe is not None:
        try:
            probe.load_state_dict(checkpoint.probe_state, strict=True)
        except RuntimeError as error:
            raise ValueError(f"{path}: the viseme probe's weights do not fit ({error})") from error
    if checkpoint.optimizer_state is not None:
        optimizer.load_state_dict(checkpoint.optimizer_state)
    return checkpoint.step


def restore(
    path: Path,
    trained: nn.Module,
    model: BlendshapeModel,
    optimizer: torch.optim.Optimizer,
    config: Config,
    train_set: WindowDataset,
    runtime: Runtime,
) -> int:
    """The first step to run: resume from ``path`` if it exists, else start (from ``init_from`` if set)."""
    if path.exists():
        start = resume_step(path, trained, optimizer, config)
        if runtime.is_main:
            log.info("resuming %s from step %d", path, start)
        return start
    copied = (
        initialise_from(Path(config.train.init_from), model, train_set.names)
        if config.train.init_from
        else []
    )
    if config.train.output_bias_from_data:
        start_output_bias(model, train_set, copied)
    return 0


def step_record(
    terms: dict[str, torch.Tensor],
    lr: float,
    grad_norm: float,
    findings: list[GradientFinding],
    norms: dict[str, float | None],
) -> dict[str, Any]:
    """A logged step's metrics: loss terms, learning rate, gradient norms (total, per parameter), findings."""
    record: dict[str, Any] = {f"train/{k}": float(v.detach()) for k, v in terms.items()}
    record.update({"lr": lr, "grad_norm": grad_norm, "grad_findings": [f.message() for f in findings]})
    record.update({f"grad/{name}": norm for name, norm in norms.items()})
    return record


def training_batch(train_set: WindowDataset, step: int, config: Config, runtime: Runtime) -> Window:
    """This process's batch of ``step`` on its device, augmented: mel ``(B, T, 80)``, curves ``(B, T, K)``,
    visemes ``(B, T)``."""
    batch = collate(train_set, batch_indices(step, len(train_set), config, runtime))
    mel, curves = batch.mel.to(runtime.device), batch.curves.to(runtime.device)
    augment_seed = derived_seed(config.train.seed, 2, step, runtime.rank)  # purpose 2: feature augmentation
    mel = augment_features(mel, config.data.feature_warp, config.data.feature_tilt, augment_seed)
    return Window(mel, curves, known_visemes(batch).to(runtime.device))


def make_optimizer(model: nn.Module, config: Config, probe: nn.Module | None = None) -> torch.optim.AdamW:
    """AdamW with groups that each carry the ``lr_scale`` their learning rate gets: the audio encoder's
    (``train.encoder_lr_scale``), then the rest's (1), then the viseme probe's (``train.probe_lr_scale``).
    At encoder scale 1 the model is one group, as in checkpoints written before the scale existed, so those
    resume. At scale 0 the encoder is frozen outright: no gradients, so no backward pass through it. With
    ``train.grown_lr_scale`` other than 1, the conv blocks that ``init_from`` lacked are a last group.
    """
    t = config.train
    grown: set[str] = set()
    if t.init_from and t.grown_lr_scale != 1.0:
        grown = set(grown_parameter_names(Path(t.init_from), model))
    encoder: list[nn.Parameter] = []
    rest: list[nn.Parameter] = []
    new: list[nn.Parameter] = []
    for name, parameter in model.named_parameters():
        if name in grown:
            new.append(parameter)
            continue
        split = t.encoder_lr_scale != 1.0 and name.split(".", 1)[0] in ENCODER_MODULES
        (encoder if split else rest).append(parameter)
        parameter.requires_grad_(not (split and t.encoder_lr_scale == 0.0))
    groups = [{"params": encoder, "lr_scale": t.encoder_lr_scale}, {"params": rest, "lr_scale": 1.0}]
    if probe is not None:  # after the model's, so the groups of runs without a probe are unchanged
        groups.append({"params": list(probe.parameters()), "lr_scale": t.probe_lr_scale})
    groups.append({"params": new, "lr_scale": t.grown_lr_scale})
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=t.lr, weight_decay=t.weight_decay)


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Every group's rate: ``lr`` times its ``lr_scale`` (1 where absent: groups of older checkpoints)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


class BestKeeper:
    """With ``train.keep_best``, rank 0 keeps ``best.safetensors``: the weights (no optimizer state) at the
    lowest ``val/total`` so far, written atomically. A resumed run carries on from the stored loss, so its
    best file is the one an uninterrupted run would have (given the same ``eval_every``)."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled, self.loss = path, enabled, math.inf
        if enabled and path.exists():
            self.loss = float(load_checkpoint(path).extra.get("val/total", math.inf))

    def offer(self, model: nn.Module, config: Config, names: tuple[str, ...], step: int, loss: float) -> None:
        if self.enabled and loss < self.loss:
            self.loss = loss
            save_checkpoint(self.path, model, config, names, step, extra={"val/total": loss})


def train(config: Config) -> dict[str, Any]:
    """Train a model as ``config`` says; returns the last logged metrics."""
    t = config.train
    runtime = setup_runtime(t.device)
    train_set, val_set = load_datasets(config)
    names = tuple(train_set.names)
    torch.manual_seed(t.seed)
    model = build_model(config, len(names)).to(runtime.device)
    trained = with_probe(model, config)  # the model, or the model and its training-only viseme probe
    optimizer = make_optimizer(model, config, probe_of(trained))
    checkpoint_path = Path(t.out_dir) / CHECKPOINT_NAME
    best = BestKeeper(checkpoint_path.with_name(BEST_NAME), t.keep_best and runtime.is_main)
    start = restore(checkpoint_path, trained, model, optimizer, config, train_set, runtime)
    ddp_model = nn.parallel.DistributedDataParallel(trained) if runtime.world > 1 else trained
    loss_fn = BlendshapeLoss(names, config.loss)
    metrics = MetricsLog(checkpoint_path.with_name("metrics.jsonl"), start, runtime.is_main, t.tensorboard)
    progress = tqdm(total=t.max_steps, initial=start, disable=not (t.progress and runtime.is_main),
                    desc="train", unit="step", dynamic_ncols=True)  # fmt: skip
    last: dict[str, Any] = {}
    for step in range(start, t.max_steps):
        lr = learning_rate(step, config)
        set_learning_rate(optimizer, lr)
        torch.manual_seed(derived_seed(t.seed, 0, step, runtime.rank))  # this step's dropout masks
        batch = training_batch(train_set, step, config, runtime)

        terms = batch_terms(ddp_model, model, loss_fn, batch)
        finite_loss_or_raise(terms["total"], step)
        terms["total"].backward()

        done = step + 1
        logging_step = done % t.log_every == 0 or done == 1 or done == t.max_steps
        norms = gradient_norms(trained)
        findings = check_gradients(trained, t.grad_warn_norm, warn=logging_step, norms=norms)
        grad_norm = float(nn.utils.clip_grad_norm_(trained.parameters(), t.grad_clip))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

        loss_value = float(terms["total"].detach())
        progress.update(1)
        progress.set_postfix(loss=f"{loss_value:.4f}", grad=f"{grad_norm:.3f}")
        record = step_record(terms, lr, grad_norm, findings, norms) if logging_step else {}
        if (done % t.eval_every == 0 or done == t.max_steps) and runtime.is_main:
            record.update(evaluate(trained, model, val_set, loss_fn, config, runtime.device))
            progress.write(f"step {done}: train {loss_value:.5f}  val {record['val/total']:.5f}")
            best.offer(model, config, names, done, record["val/total"])
        checkpointing = done % t.checkpoint_every == 0 or done == t.max_steps
        if checkpointing:
            record["ranks_in_sync"] = ranks_in_sync(trained, runtime)
        if record:
            metrics.write(done, record)
            last = record
        if checkpointing and runtime.is_main:
            save_checkpoint(checkpoint_path, model, config, names, done, optimizer, probe=probe_of(trained))
    progress.close()
    metrics.close()
    summary = {"steps": t.max_steps, "checkpoint": str(checkpoint_path), "world": runtime.world, "last": last}
    if runtime.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return summary
