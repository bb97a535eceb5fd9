"""Process-group set-up for ``torchrun`` and the few collectives the loops need.

Single-process runs need nothing: without torchrun's environment (``WORLD_SIZE`` unset or 1) every
helper here is a no-op on one rank. Under ``torchrun --nproc_per_node K`` the group uses NCCL on
CUDA and Gloo on CPU; each process drives ``cuda:LOCAL_RANK`` when on CUDA.
"""
import dataclasses
import os

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "init_distributed", "all_reduce_sum", "broadcast_tensor", "broadcast_object",
           "all_gather_object", "barrier", "cleanup", "collective_device", "world_size_from_env",
           "require_single_process", "rank_and_world", "resolve_device"]


@dataclasses.dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def distributed(self):
        return self.world > 1


def resolve_device(device):
    """``--device`` -> a torch.device: None/""/"auto" is cuda when torch sees a GPU, else cpu.

    Raises ValueError in one sentence (the path every command and library caller gets) for a name
    torch cannot parse, a CUDA device on a machine without a GPU, or a GPU index it does not have."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"--device must be cpu, cuda, cuda:N or auto, got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device} asks for a GPU, but torch sees none on this machine: use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} GPU(s)")
    return dev


def init_distributed(device=None):
    """Join torchrun's process group if there is one; returns this process's :class:`DistInfo`."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device)
    if world <= 1:
        return DistInfo(device=device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world, local_rank, device)


def _active():
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum(t):
    """Sum ``t`` over ranks in place (returns it)."""
    if _active():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_tensor(t, src=0):
    """Give every rank rank ``src``'s ``t`` (in place; returns it)."""
    if _active():
        dist.broadcast(t, src)
    return t


def broadcast_object(obj, src=0):
    """Rank ``src``'s picklable ``obj`` on every rank."""
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src)
    return box[0]


def all_gather_object(obj):
    """A list of every rank's ``obj`` (rank order)."""
    if not _active():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier():
    if _active():
        dist.barrier()


def cleanup():
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def collective_device():
    """The device collectives run on: the current CUDA device under NCCL, else the CPU (Gloo)."""
    if _active() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def world_size_from_env():
    """The number of processes torchrun started (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def require_single_process(what):
    """Raise ValueError in one sentence when started under torchrun with several processes, for a
    loop that cannot be distributed (``what`` names it)."""
    world = world_size_from_env()
    if world > 1:
        raise ValueError(f"{what} runs in one process and cannot be distributed; start it without torchrun "
                           f"(it was started with {world} processes)")


def rank_and_world():
    """(rank, world size) of this process: (0, 1) outside a process group."""
    if _active():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1
