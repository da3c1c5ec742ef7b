"""Where a run computes: the device (``train.common.device``, ``evaluate.device``,
``dnb generate --device``) and, under ``torchrun``, the data-parallel process group.

``auto`` picks cuda, then mps, then cpu. On the CPU every path is exactly the code
path of before: ``tensor.to(cpu)`` returns the tensor itself, so CPU results do not
change. Data-parallel training (``WORLD_SIZE`` > 1, set by ``torchrun``) uses gloo
on the CPU and nccl on CUDA; rank r computes on ``cuda:LOCAL_RANK``. ``run_local_ranks``
starts such ranks on this machine (``train.common.processes``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import torch
from torch import distributed as dist

CPU = torch.device("cpu")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def pick_device(name: str | None = "auto") -> torch.device:
    """``auto`` (or None): cuda, then mps, then cpu. Otherwise the named device (``cpu``,
    ``cuda``, ``cuda:1``, ``mps``); ValueError with the reason when it is not usable here."""
    text = str(name or "auto").strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else CPU
    try:
        device = torch.device(text)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise ValueError(f"device {name!r} requested but CUDA is not available (torch {torch.__version__}, "
                             f"{build}); use device auto or cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    elif device.type == "mps":
        if not _mps_available():
            raise ValueError(f"device {name!r} requested but MPS is not available; use device auto or cpu")
    elif device.type != "cpu":
        raise ValueError(f"unsupported device {name!r}: use auto, cpu, cuda, cuda:N or mps")
    return device


PRECISIONS = ("fp32", "bf16")  # train.common.precision


def precision_of(value: str | None) -> str:
    """``fp32`` or ``bf16`` from a params value (None means fp32; case and blanks ignored);
    ValueError for any other value."""
    text = str(value or "fp32").strip().lower()
    if text not in PRECISIONS:
        raise ValueError(f"unknown precision {value!r}: use {' or '.join(PRECISIONS)}")
    return text


def autocast(device: torch.device | str, precision: str | None = "fp32"):
    """The training step's autocast context: ``bf16`` runs matmuls and convolutions in
    bfloat16 (the CPU's AVX-512 BF16, or a GPU's), parameters, optimiser state and
    losses stay fp32; ``fp32`` is the plain path. ValueError for any other value."""
    enabled = precision_of(precision) == "bf16"
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=enabled)


def to_device(batch: dict[str, torch.Tensor], device: torch.device | str) -> dict[str, torch.Tensor]:
    """The batch dict on ``device`` (the same tensors when they are already there)."""
    return {key: value.to(device) for key, value in batch.items()}


def device_of(gen) -> torch.device:
    """The device of a model's parameters; cpu for baselines (numpy-backed, no parameters)."""
    if isinstance(gen, torch.nn.Module):
        for tensor in gen.parameters():
            return tensor.device
    return CPU


# ----------------------------------------------------------------- data-parallel (torchrun)


def world() -> tuple[int, int, int]:
    """(rank, local rank, world size) from torchrun's environment; (0, 0, 1) outside torchrun."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def placement(name: str | None = "auto") -> tuple[torch.device, int, int]:
    """(device, rank, world size) of this process: under torchrun with CUDA, rank r gets ``cuda:LOCAL_RANK``."""
    device = pick_device(name)
    rank, local_rank, size = world()
    if size > 1:
        if device.type == "mps":
            raise ValueError("data-parallel training runs on cpu (gloo) or cuda (nccl), not mps: set device cpu")
        if device.type == "cuda":
            device = torch.device("cuda", local_rank if device.index is None else device.index)
            torch.cuda.set_device(device)
    return device, rank, size


def distributed() -> bool:
    """True inside a joined process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def join_process_group(device: torch.device, size: int) -> None:
    """Join torchrun's process group when ``size`` > 1 and it is not joined yet (gloo on cpu,
    nccl on cuda; rendezvous from MASTER_ADDR / MASTER_PORT). It stays open for the rest of
    the process (``leave_process_group``): a second group in the same torchrun process
    would reuse the first one's rendezvous keys and hang."""
    if size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def leave_process_group() -> None:
    """Destroy the process group, if one was joined (at the end of a torchrun worker)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def from_rank0(value: float, device: torch.device) -> float:
    """Rank 0's ``value`` on every rank (a float64 broadcast); the value itself on one process."""
    if not distributed():
        return value
    tensor = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.broadcast(tensor, 0)
    return float(tensor.item())


def sum_over_ranks(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum over ranks of a list of floats (float64); the list itself on one process."""
    if not values or not distributed():
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def object_from_rank0(obj, device: torch.device):
    """Rank 0's picklable ``obj`` on every rank (e.g. the resume state only rank 0 reads)."""
    if not distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, 0, device=device if device.type == "cuda" else None)
    return box[0]


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now (the rendezvous of local ranks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def local_ranks(target: list[str], processes: int, threads: int) -> tuple[list[str], dict[str, str]]:
    """(command, environment) that runs ``python <target>`` as ``processes`` data-parallel ranks of
    this machine under torchrun: rendezvous and gloo on the loopback interface, ``threads``
    threads per rank, no restarts; ``target`` is ``["-m", module, *args]`` or a script and its args."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", str(processes),
           "--master-addr", "127.0.0.1", "--master-port", str(free_port()), "--local-addr", "127.0.0.1",
           "--max-restarts", "0", "--monitor-interval", "0.2", *target]
    return cmd, env


def run_local_ranks(module: str, args: list[str], processes: int, threads: int) -> int:
    """Run ``python -m module args`` as ``processes`` local ranks (``local_ranks``) and return
    torchrun's exit code: what ``train.common.processes`` > 1 does from inside a DVC stage,
    which DVC itself runs as one process."""
    cmd, env = local_ranks(["-m", module, *args], processes, threads)
    return subprocess.run(cmd, env=env).returncode
