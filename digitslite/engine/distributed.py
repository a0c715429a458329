"""Data-parallel training with torch.distributed: who this process is, and what the ranks share.

A rank learns its place from torchrun's environment variables (digitslite.engine.launch), whoever
set them: torchrun, a Slurm job script, or digitslite's own launcher. The ranks join one process
group (NCCL on CUDA, gloo on the CPU) and train the same net on different batches under
DistributedDataParallel.

Where DDP's averaging sits in Caffe's update (caffe-spec §4.3): each rank accumulates its iter_size
passes locally (no_sync on all but the last), and the last backward all-reduces the mean over the
ranks of those sums. The solver then clips that global gradient, multiplies by 1/iter_size, adds
weight decay and applies the rule, identically on every rank, so the weights stay equal without
being sent again. That is Caffe's own multi-GPU rule (its NCCL solver sums the gradients and
divides by the solver count before ApplyUpdate), and the update of one process whose batch is the
W·B samples of the W ranks when every batch normalises its loss by the same count.
"""
import contextlib
import datetime
import os
from collections.abc import Iterable
from typing import Any

import torch
from torch import distributed, nn
from torch.nn.parallel import DistributedDataParallel

from digitslite.engine.launch import RankEnvironment
from digitslite.engine.net import CaffeNet
from digitslite.errors import UserError

CPU = torch.device("cpu")


def rank_device(requested: str | None, env: RankEnvironment) -> torch.device:
    """The device of this rank: the CPU, or one GPU. torchrun shows every rank all the node's GPUs
    (use number LOCAL_RANK); digitslite's launcher and `srun --gpus-per-task=1` show each one GPU."""
    if requested == "cpu" or (requested is None and not torch.cuda.is_available()):
        return CPU
    if requested not in (None, "cuda"):
        raise UserError(f"device {requested!r}: a rank takes its GPU from LOCAL_RANK; ask for \"cuda\" or "
                        "\"cpu\" and choose the GPUs with CUDA_VISIBLE_DEVICES (or --gpus)")
    visible = torch.cuda.device_count()
    if visible == 0:
        raise UserError("a CUDA device was asked for but this rank sees none; train on the CPU (--cpu)")
    if env.local_rank < visible:
        return torch.device("cuda", env.local_rank)
    if visible == 1:
        return torch.device("cuda", 0)
    raise UserError(f"local rank {env.local_rank} sees {visible} GPUs; start at most one rank per GPU, or "
                    "show each rank its own GPU (CUDA_VISIBLE_DEVICES)")


def has_unreached_parameters(net: CaffeNet) -> bool:
    """Whether a parameter that wants a gradient belongs to no layer from which a loss is reached
    (Caffe's backward-need analysis of Net::Init, walking the layers from the losses back)."""
    needed: set[str] = set()
    reached: set[int] = set()
    layers = {layer.param.name: layer for layer in net.layers}
    for param in reversed(net.net_param.layer):
        if not any(param.loss_weight) and not needed.intersection(param.top):
            continue
        propagate = list(param.propagate_down) or [True] * len(param.bottom)
        needed.update(bottom for bottom, flag in zip(param.bottom, propagate, strict=False) if flag)
        if param.name in layers:
            reached.update(id(blob) for blob in layers[param.name].blobs())
    return any(learnable.tensor.requires_grad and id(learnable.tensor) not in reached
               for learnable in net.learnable_params())


RENDEZVOUS_TIMEOUT_S = 600.0


def rendezvous_timeout_s() -> float:
    """How long ranks wait for each other to meet (DIGITSLITE_RENDEZVOUS_TIMEOUT_S, default 10 min)."""
    raw = os.environ.get("DIGITSLITE_RENDEZVOUS_TIMEOUT_S", "")
    try:
        return float(raw) if raw else RENDEZVOUS_TIMEOUT_S
    except ValueError:
        raise UserError(f"DIGITSLITE_RENDEZVOUS_TIMEOUT_S={raw!r} must be a number of seconds") from None


class Ranks:
    """This process's place among the ranks, and the collectives training needs. One process is a
    world of one, where every collective is the identity, so the training loop has one code path."""

    def __init__(self, rank: int = 0, world_size: int = 1, device: torch.device = CPU,
                 control: Any = None) -> None:
        self.rank, self.world_size, self.device = rank, world_size, device
        self._control = control    # a gloo group for host-side values (None: the default group)

    @classmethod
    def join(cls, env: RankEnvironment, device: torch.device) -> "Ranks":
        """Join the process group of `env` (NCCL for a GPU, gloo for the CPU); blocks until every rank
        of the world has joined (torchrun's env:// rendezvous at MASTER_ADDR:MASTER_PORT)."""
        if env.world_size == 1:
            return cls(device=device)
        cuda = device.type == "cuda"
        if cuda:
            torch.cuda.set_device(device)
        wait = rendezvous_timeout_s()
        try:
            # The meeting point first, with its own time limit: a rank whose master never answers
            # gives up after `wait` seconds; the collectives keep torch's own, longer limit.
            store = distributed.TCPStore(env.master_addr, env.master_port, env.world_size, env.rank == 0,
                                         timeout=datetime.timedelta(seconds=wait))
            distributed.init_process_group("nccl" if cuda else "gloo", store=store, rank=env.rank,
                                           world_size=env.world_size)
        except (RuntimeError, ValueError, OSError) as exc:
            raise UserError(f"rank {env.rank} cannot join the ranks at {env.master_addr}:{env.master_port} "
                            f"({exc}); check the address and port of rank 0 and that it is reachable"
                            ) from None
        control = distributed.new_group(backend="gloo") if cuda else None
        return cls(env.rank, env.world_size, device, control)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def close(self) -> None:
        if self.distributed:
            distributed.destroy_process_group()

    def passes(self, count: int) -> range:
        """This rank's share of `count` passes dealt round-robin (the test passes)."""
        return range(self.rank, count, self.world_size)

    # ------------------------------------------------------------------------------------------
    # gradients

    def data_parallel(self, net: CaffeNet, sync_buffers: bool) -> nn.Module:
        """The net under DDP. `sync_buffers`: every rank gets rank 0's buffers (BatchNorm sums) before
        each forward. A net with learnable layers that no loss reaches (Caffe skips their backward)
        needs DDP's search for unused parameters, a graph walk per iteration; others go without."""
        if not self.distributed:
            return net
        devices = [self.device] if self.device.type == "cuda" else None
        return DistributedDataParallel(net, device_ids=devices, forward_sync_buffers=sync_buffers,
                                       find_unused_parameters=has_unreached_parameters(net))

    @staticmethod
    def accumulating(module: nn.Module, last: bool) -> contextlib.AbstractContextManager:
        """Around one micro-step of iter_size: gradients stay local unless it is the last one."""
        if last or not isinstance(module, DistributedDataParallel):
            return contextlib.nullcontext()
        return module.no_sync()

    # ------------------------------------------------------------------------------------------
    # values

    def broadcast_(self, tensors: Iterable[torch.Tensor]) -> None:
        """Overwrite every rank's tensors with rank 0's (each tensor once, in the given order)."""
        if not self.distributed:
            return
        seen: set[int] = set()
        for tensor in tensors:
            if id(tensor) not in seen:
                seen.add(id(tensor))
                distributed.broadcast(tensor.data, src=0)

    def broadcast_object(self, value: Any) -> Any:
        """Rank 0's `value` (picklable), on every rank."""
        if not self.distributed:
            return value
        holder = [value]
        distributed.broadcast_object_list(holder, src=0, group=self._control)
        return holder[0]

    def mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """The mean over the ranks of each rank's `tensor` (a new tensor)."""
        if not self.distributed:
            return tensor
        total = tensor.detach().clone()
        distributed.all_reduce(total)
        return total / self.world_size

    def any(self, flag: bool) -> bool:
        """Whether `flag` is true on some rank: the same answer everywhere (stopping together)."""
        if not self.distributed:
            return flag
        vote = torch.tensor([int(flag)])
        distributed.all_reduce(vote, op=distributed.ReduceOp.MAX, group=self._control)
        return bool(vote.item())

    def gather(self, value: Any) -> list[Any] | None:
        """Every rank's `value` (picklable), by rank, on rank 0; None on the others."""
        if not self.distributed:
            return [value]
        gathered = [None] * self.world_size if self.is_root else None
        distributed.gather_object(value, gathered, dst=0, group=self._control)
        return gathered
