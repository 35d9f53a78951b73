"""Training-step throughput of SimplifiedModel at the seed's shapes (B=16, T=300, 80 mels), side by side.

Ours (queries projected once per batch, fused K/V projection, scaled_dot_product_attention) against a plain
reference (the same model and weights with nn.MultiheadAttention and the queries repeated per item). The two
are timed in alternation in one process, so machine noise hits both alike; medians are reported. Peak
memory is measured in a fresh subprocess per model (ru_maxrss), after one warm-up step.

    python bench/training/bench_train_step.py [--steps 30] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

from audio2blendshape.models.reference import ReferenceSimplifiedModel
from audio2blendshape.models.simplified import SimplifiedModel, centre_target
from audio2blendshape.names import ARKIT_NAMES
from audio2blendshape.training.losses import BlendshapeLoss
from audio2blendshape.training.memory import peak_rss_bytes, saved_activation_bytes

BATCH, FRAMES, MELS = 16, 300, 80


def make(kind: str) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = (SimplifiedModel if kind == "ours" else ReferenceSimplifiedModel)(len(ARKIT_NAMES)).train()
    return model, torch.optim.AdamW(model.parameters(), lr=1e-4)


def timed_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: BlendshapeLoss,
    mel: torch.Tensor,
    curves: torch.Tensor,
) -> tuple[float, float, float]:
    start = time.perf_counter()
    terms = loss_fn(model(mel), centre_target(curves))
    forward = time.perf_counter()
    terms["total"].backward()
    backward = time.perf_counter()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    done = time.perf_counter()
    return forward - start, backward - forward, done - backward


def peak_memory(kind: str) -> dict[str, float]:
    """Run in a child process: one warm-up step and one measured step, then report memory."""
    model, optimizer = make(kind)
    loss_fn = BlendshapeLoss(ARKIT_NAMES)
    mel, curves = torch.randn(BATCH, FRAMES, MELS), torch.rand(BATCH, FRAMES, len(ARKIT_NAMES))
    timed_step(model, optimizer, loss_fn, mel, curves)
    pred, activations = saved_activation_bytes(lambda: model(mel))
    loss_fn(pred, centre_target(curves))["total"].backward()
    return {"peak_rss_mib": peak_rss_bytes() / 2**20, "activations_mib": activations / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per model")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    parser.add_argument("--memory-child", choices=["ours", "reference"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child:
        print(json.dumps(peak_memory(args.memory_child)))
        return

    models = {kind: make(kind) for kind in ("ours", "reference")}
    models["reference"][0].load_state_dict(models["ours"][0].state_dict())
    loss_fn = BlendshapeLoss(ARKIT_NAMES)
    mel, curves = torch.randn(BATCH, FRAMES, MELS), torch.rand(BATCH, FRAMES, len(ARKIT_NAMES))
    times: dict[str, list[tuple[float, float, float]]] = {kind: [] for kind in models}
    for step in range(args.steps + 3):
        for kind, (model, optimizer) in models.items():
            split = timed_step(model, optimizer, loss_fn, mel, curves)
            if step >= 3:  # warm-up steps are not counted
                times[kind].append(split)

    memory = {}
    for kind in models:
        child = [sys.executable, __file__, "--memory-child", kind, "--threads", str(args.threads)]
        memory[kind] = json.loads(subprocess.run(child, capture_output=True, text=True, check=True).stdout)

    params = sum(p.numel() for p in models["ours"][0].parameters())
    print(f"SimplifiedModel training step, B={BATCH} T={FRAMES} mels={MELS}, {params:,} parameters, "
          f"{args.threads} threads, median of {args.steps} steps")  # fmt: skip
    header = f"{'model':<10} {'forward ms':>10} {'backward ms':>11} {'optim ms':>9} {'step ms':>8} "
    print(header + f"{'samples/s':>10} {'peak RSS MiB':>13} {'activations MiB':>16}")
    medians = {}
    for kind, splits in times.items():
        parts = [statistics.median(s[i] for s in splits) * 1e3 for i in range(3)]
        step_ms = statistics.median(sum(s) for s in splits) * 1e3
        medians[kind] = step_ms
        print(f"{kind:<10} {parts[0]:>10.1f} {parts[1]:>11.1f} {parts[2]:>9.1f} {step_ms:>8.1f} "
              f"{BATCH / step_ms * 1e3:>10.1f} {memory[kind]['peak_rss_mib']:>13.1f} "
              f"{memory[kind]['activations_mib']:>16.1f}")  # fmt: skip
    ratio = medians["reference"] / medians["ours"]
    print(f"speed-up of ours over the reference (median step time): {ratio:.2f}x")


if __name__ == "__main__":
    main()
