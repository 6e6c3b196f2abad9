"""Process groups for ``torchrun`` (one process per GPU, any number of nodes) and helpers.

``torchrun --nnodes N --nproc_per_node G ... -m liveportrait.cli train stage1 --config FILE`` sets
RANK, WORLD_SIZE and LOCAL_RANK; ``init`` reads them, joins the group (NCCL on GPUs, gloo on
CPUs) and picks this process's device.  Without them it is a single process and nothing is
initialised.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..errors import InputError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init(device: str = "auto", backend: str = "auto") -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise InputError("device = \"cuda\" but this PyTorch build sees no CUDA device")
        if local >= torch.cuda.device_count():
            raise InputError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} GPU(s) on this node")
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        if backend == "auto":
            backend = "nccl" if dev.type == "cuda" else "gloo"
        if backend == "nccl" and dev.type != "cuda":
            raise InputError("the nccl backend needs GPUs; use backend = \"gloo\" on CPUs")
        kwargs = {"device_id": dev} if dev.type == "cuda" else {}
        dist.init_process_group(backend=backend, **kwargs)
    return DistInfo(rank, world, local, dev)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def wrap(module: nn.Module, info: DistInfo) -> nn.Module:
    """DistributedDataParallel around ``module`` when there are several processes."""
    if not info.distributed or not any(p.requires_grad for p in module.parameters()):
        return module
    ids = [info.device.index] if info.device.type == "cuda" else None
    # buffers (batch-norm statistics, spectral-norm vectors) follow rank 0 at every forward; newer
    # torch spells the option forward_sync_buffers
    params = inspect.signature(nn.parallel.DistributedDataParallel).parameters
    sync = {"forward_sync_buffers": True} if "forward_sync_buffers" in params else {"broadcast_buffers": True}
    return nn.parallel.DistributedDataParallel(module, device_ids=ids, **sync)


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def no_sync(module: nn.Module, skip: bool):
    """Skip the gradient all-reduce on micro-steps that are not the last of an accumulation."""
    if skip and isinstance(module, nn.parallel.DistributedDataParallel):
        return module.no_sync()
    return contextlib.nullcontext()


def mean_over_ranks(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Average a dict of numbers over all processes (for logging)."""
    if not info.distributed or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=_comm_device(info))
    dist.all_reduce(t)
    t /= info.world_size
    return dict(zip(keys, t.tolist()))


def any_rank(flag: bool, info: DistInfo) -> bool:
    if not info.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=_comm_device(info))
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def replica_divergence(modules: list[nn.Module], info: DistInfo) -> float:
    """Largest absolute difference of any parameter between this process and rank 0, maximised
    over ranks: 0.0 when every replica holds the same weights."""
    if not info.distributed:
        return 0.0
    worst = torch.zeros(1, dtype=torch.float64, device=_comm_device(info))
    for m in modules:
        for p in unwrap(m).parameters():
            ref = p.detach().clone()
            dist.broadcast(ref, src=0)
            worst = torch.maximum(worst, (p.detach() - ref).abs().max().double().reshape(1))
    dist.all_reduce(worst, op=dist.ReduceOp.MAX)
    return float(worst.item())


def _comm_device(info: DistInfo) -> torch.device:
    return info.device if dist.get_backend() == "nccl" else torch.device("cpu")
