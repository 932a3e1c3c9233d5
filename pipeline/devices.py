"""Where computation runs: the device, its mixed precision, and the processes of a torchrun launch."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from .errors import PainterError


@dataclass
class Process:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise PainterError(f"run.device = {name!r} but CUDA is not available here; use --set run.device=cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise PainterError(f"run.device = {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def start_process_group(device_name: str) -> tuple[Process, torch.device]:
    """Join torchrun's process group when launched by it; a plain run is one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    if world == 1:
        return Process(), device
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Process(dist.get_rank(), dist.get_world_size()), device


def any_rank(flag: bool, process: Process, device: torch.device) -> bool:
    """True on every rank when `flag` is true on one of them (a collective: every rank must call it)."""
    if process.world == 1:
        return flag
    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


# On a CPU a batch of 16 makes images as fast as one of 250 (DCGAN at 64 px, 2-core CPU), while a
# translation generator at 256 px holds about 60 MB per image (width 32): 15 GB at 250.
CPU_GENERATOR_BATCH = 16


def generator_batch(batch_size: int, device: torch.device) -> int:
    """How many images to run through a generator at once for inference on `device`."""
    return min(batch_size, CPU_GENERATOR_BATCH) if device.type == "cpu" else batch_size


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: there bf16 autocast trains ~1.8x faster than fp32 (measured, AMD EPYC)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cuda_has_native_bf16(device: torch.device) -> bool:
    """Ampere (sm_80) and newer. torch.cuda.is_bf16_supported() also says yes on a T4 (sm_75), where
    bf16 is only emulated and cuDNN has no bf16 convolutions."""
    return torch.cuda.get_device_capability(device) >= (8, 0)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """Mixed precision for `device`: bf16 on GPUs that have it and on bf16-capable CPUs, fp16 on
    older GPUs (Kaggle's T4), None (fp32) on other CPUs."""
    if device.type == "cuda":
        return torch.bfloat16 if cuda_has_native_bf16(device) else torch.float16
    return torch.bfloat16 if cpu_has_native_bf16() else None
