"""Memory accounting for a training step, beside the seed's estimate.

The seed counts "parameters x 2 x 4 bytes": float32 weights plus their gradients. That is right for those
two, but a training step holds more: AdamW keeps two moment buffers per parameter (another 2 x 4 bytes),
and the forward pass saves activations for backward, which for SimplifiedModel at B=16, T=300 outweigh the
parameters many times over. The report shows each part and what the process really holds.
"""

from __future__ import annotations

import resource
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn


@dataclass(frozen=True)
class MemoryReport:
    parameters: int  # number of trainable scalars
    parameter_bytes: int  # bytes held by the weights
    gradient_bytes: int  # bytes held by .grad tensors (0 before backward / after zero_grad(set_to_none))
    optimizer_bytes: int  # bytes of optimizer state (AdamW: exp_avg and exp_avg_sq)
    activation_bytes: int  # bytes the forward pass saved for backward (0 if not measured)
    seed_estimate_bytes: int  # the seed's formula: parameters x 2 x 4
    process_rss_bytes: int  # resident memory of the whole process now
    process_peak_rss_bytes: int  # the process's peak resident memory so far

    def format(self) -> str:
        mib = 1024.0**2
        rows = [
            ("parameters", f"{self.parameters:,}"),
            ("weights", f"{self.parameter_bytes / mib:9.2f} MiB"),
            ("gradients", f"{self.gradient_bytes / mib:9.2f} MiB"),
            ("optimizer state (AdamW)", f"{self.optimizer_bytes / mib:9.2f} MiB"),
            ("activations saved for backward", f"{self.activation_bytes / mib:9.2f} MiB"),
            ("total accounted", f"{self.accounted_bytes / mib:9.2f} MiB"),
            ("seed's estimate (params x 2 x 4 B)", f"{self.seed_estimate_bytes / mib:9.2f} MiB"),
            ("process resident now / peak", f"{self.process_rss_bytes / mib:9.2f} / "
             f"{self.process_peak_rss_bytes / mib:.2f} MiB"),
        ]  # fmt: skip
        return "\n".join(f"{label:<36} {value}" for label, value in rows)

    @property
    def accounted_bytes(self) -> int:
        return self.parameter_bytes + self.gradient_bytes + self.optimizer_bytes + self.activation_bytes


def _tensor_bytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def process_rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; falls back to the peak elsewhere)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return peak_rss_bytes()


def peak_rss_bytes() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def saved_activation_bytes(forward: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Run ``forward`` and count the bytes of distinct tensors autograd saves for backward."""
    seen: dict[tuple[int, int], int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.device.type != "meta":
            storage = tensor.untyped_storage()
            seen[(storage.data_ptr(), tensor.device.index or 0)] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        output = forward()
    return output, sum(seen.values())


def memory_report(
    model: nn.Module, optimizer: torch.optim.Optimizer | None = None, activation_bytes: int = 0
) -> MemoryReport:
    params = [p for p in model.parameters() if p.requires_grad]
    count = sum(p.numel() for p in params)
    rss = process_rss_bytes()
    optimizer_bytes = 0
    if optimizer is not None:
        for state in optimizer.state.values():
            optimizer_bytes += sum(_tensor_bytes(v) for v in state.values() if isinstance(v, torch.Tensor))
    return MemoryReport(
        parameters=count,
        parameter_bytes=sum(_tensor_bytes(p) for p in params),
        gradient_bytes=sum(_tensor_bytes(p.grad) for p in params if p.grad is not None),
        optimizer_bytes=optimizer_bytes,
        activation_bytes=activation_bytes,
        seed_estimate_bytes=count * 2 * 4,
        process_rss_bytes=rss,
        # ru_maxrss is sampled by the kernel and can trail VmRSS read a moment later
        process_peak_rss_bytes=max(peak_rss_bytes(), rss),
    )
