"""Training on several processes (DistributedDataParallel): torchrun's environment in, a process group
out, and the few collective steps the loop needs.

    torchrun --nproc_per_node N -m tinypred train --data D --out RUN ...

`from_env` starts the process group from the variables torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT): NCCL on CUDA (each process on GPU LOCAL_RANK), gloo on the CPU. Without them,
or with WORLD_SIZE 1, nothing changes: one process, no process group. `train` trains with DDP whenever a
process group of more than one process is running, whoever started it.

What the ranks agree on, and how:
    the batch order          computed alike from (seed, epoch) (`loader.epoch_order`): no communication
    the weights              DDP: identical at the start (same seed; DDP broadcasts rank 0's anyway),
                             gradients averaged in backward, so identical after every step
    the step's loss, a stop  one all_reduce of a few numbers per step (`sum_all`): the loss summed over the
                             global batch, non-finite losses, data errors, a checkpoint due on any clock
    the error to report      `first_error`: the lowest failing rank's message, sent to every rank
    early stopping           rank 0 validates and decides; `broadcast_flag` tells the others
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from tinypred.errors import TinypredError
from tinypred.training.config import resolve_device

TIMEOUT = datetime.timedelta(hours=2)  # the others wait this long while rank 0 validates and writes
_MESSAGE_BYTES = 4096


@dataclass(frozen=True)
class Group:
    """Where this process stands: rank of world; `device` is where collectives run (CUDA for NCCL)."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes files and prints."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """More than one process: collectives are needed."""
        return self.world > 1


def current() -> Group:
    """The group `train` runs in: torch.distributed's if one is initialised, else a single process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return Group()
    nccl = dist.get_backend() == "nccl"
    device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
    return Group(dist.get_rank(), dist.get_world_size(), device)


def env_rank() -> int:
    """This process's rank as torchrun set it (0 without torchrun): known before any process group."""
    return int(os.environ.get("RANK", "0") or 0)


def local_world() -> int:
    """How many processes torchrun started on this machine (1 without torchrun)."""
    return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))


@contextlib.contextmanager
def from_env(device: str) -> Iterator[Group]:
    """A process group from torchrun's environment for the block (destroyed after it), or none when
    WORLD_SIZE is unset or 1. `device` (auto, cpu, cuda) picks the backend: NCCL for CUDA, else gloo."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1 or (dist.is_available() and dist.is_initialized()):
        yield current()
        return
    if not dist.is_available():
        raise TinypredError("this torch build has no torch.distributed", arg="device")
    cuda = resolve_device(device).type == "cuda"  # a device this machine lacks: the one-line error
    if cuda:
        gpus = torch.cuda.device_count()
        if local_world() > gpus:  # checked on every rank alike, so that rank 0 reports it
            raise TinypredError(
                f"torchrun started {local_world()} processes on this machine, which has {gpus} GPU(s): "
                f"ask for at most --nproc_per_node {gpus}",
                arg="device",
            )
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0") or 0))
    dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
    try:
        yield current()
        # All done alike: leave together. A rank closing its connections while another still finishes
        # (rank 0 writes last) can abort the other's gloo transport at exit.
        dist.barrier()
    finally:
        dist.destroy_process_group()


def sum_all(group: Group, values: list[float | torch.Tensor]) -> list[float]:
    """The sums over all ranks of a few numbers (one all_reduce; reading them syncs the device)."""
    t = torch.stack([torch.as_tensor(v, dtype=torch.float64).reshape(()).to(group.device) for v in values])
    if group.active:
        dist.all_reduce(t)
    return t.tolist()


def broadcast_flag(group: Group, flag: bool) -> bool:
    """Rank 0's flag, on every rank."""
    if not group.active:
        return flag
    t = torch.tensor([int(flag)], device=group.device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def first_error(group: Group, error: TinypredError | None) -> TinypredError | None:
    """Every rank calls this at the same point: None when no rank had an error, else the error of the
    lowest rank that had one, on every rank (its words, so that each stops with the same line)."""
    if not group.active:
        return error
    who = torch.tensor([group.rank if error is not None else group.world], device=group.device)
    dist.all_reduce(who, op=dist.ReduceOp.MIN)
    src = int(who.item())
    if src == group.world:
        return None
    text = torch.zeros(_MESSAGE_BYTES, dtype=torch.uint8, device=group.device)
    if group.rank == src:
        raw = f"{error.arg or ''}\0{error.message}".encode()[:_MESSAGE_BYTES]
        text[: len(raw)] = torch.frombuffer(bytearray(raw), dtype=torch.uint8).to(group.device)
    dist.broadcast(text, src=src)
    arg, _, message = bytes(text.cpu().tolist()).rstrip(b"\0").decode(errors="replace").partition("\0")
    return TinypredError(message, arg=arg or None)


def raise_first(group: Group, error: TinypredError | None) -> None:
    """`first_error`, raised."""
    found = first_error(group, error)
    if found is not None:
        raise found


def gather_rng_states(group: Group) -> list[torch.Tensor]:
    """Every rank's CPU RNG state (what dropout draws from), on every rank, rank order."""
    state = torch.get_rng_state()
    if not group.active:
        return [state]
    parts = [torch.empty_like(state, device=group.device) for _ in range(group.world)]
    dist.all_gather(parts, state.to(group.device))
    return [p.cpu() for p in parts]
