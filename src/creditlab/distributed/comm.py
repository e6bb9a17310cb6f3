"""Process-group setup from torchrun's environment, collectives that fail loudly, and byte accounting.

Everything here is plain ``torch.distributed``: torchrun (or any launcher that sets ``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) does the rendezvous; gloo runs on CPU, NCCL on GPU.
A peer that dies or stalls makes every collective of the others fail within the process group's
timeout; :func:`collective` turns that failure into a :class:`DistributedError` that says so.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from creditlab.errors import CreditlabError

T = TypeVar("T")

#: environment variables torchrun sets for every worker
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")

_timeout_s: float | None = None  # the timeout the default group was created with (for messages)


class DistributedError(CreditlabError, RuntimeError):
    """A rendezvous or collective failed: a peer died, stalled, or never joined."""


def world() -> tuple[int, int]:
    """(rank, world_size) of the default process group, or (0, 1) when none is initialized."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def default_backend() -> str:
    """``gloo`` on a CPU-only machine; ``cpu:gloo,cuda:nccl`` where CUDA is available.

    The mixed backend lets CPU tensors go through gloo and CUDA tensors through NCCL, so a
    ``--device cpu`` run on a GPU machine still works.
    """
    return "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"


def init_distributed(backend: str | None = None, timeout_s: float = 60.0) -> tuple[int, int]:
    """Initialize the default process group from torchrun's environment; return (rank, world_size).

    Without ``RANK``/``WORLD_SIZE`` in the environment this is a single-process run: nothing is
    initialized and ``(0, 1)`` is returned. Otherwise the group is created with ``timeout_s`` as the
    rendezvous *and* per-collective timeout, then every rank passes a barrier (a monitored barrier
    on gloo, which names the ranks that did not arrive). A rendezvous that never completes, or a
    peer that is missing, raises :class:`DistributedError` within about ``timeout_s`` seconds.
    """
    global _timeout_s
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be > 0 seconds, got {timeout_s}")
    present = [name for name in TORCHRUN_VARIABLES if name in os.environ]
    if not {"RANK", "WORLD_SIZE"} <= set(present):
        if present:
            raise DistributedError(f"partial torchrun environment: {', '.join(present)} set but RANK and "
                                   "WORLD_SIZE are both required; launch with torchrun --nproc-per-node N")
        return 0, 1
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
    if missing:
        raise DistributedError(f"torchrun environment incomplete: {', '.join(missing)} not set")
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    backend = backend or default_backend()
    if "nccl" in backend and torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    timeout = dt.timedelta(seconds=timeout_s)
    where = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
    try:
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size, timeout=timeout)
    except Exception as error:  # TCPStore/gloo raise RuntimeError, DistStoreError or TimeoutError
        raise DistributedError(
            f"rank {rank}/{world_size}: rendezvous at {where} did not complete within {timeout_s:g} s "
            f"(backend {backend}); are all {world_size} ranks running and able to reach the master? "
            f"Underlying error: {_first_line(error)}") from error
    _timeout_s = timeout_s
    try:
        if dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=timeout, wait_all_ranks=True)
        else:
            dist.barrier()
    except Exception as error:
        raise DistributedError(f"rank {rank}/{world_size}: start-up barrier failed within {timeout_s:g} s: "
                               f"{_first_line(error)}") from error
    return rank, world_size


def collective(what: str, operation: Callable[[], T]) -> T:
    """Run ``operation`` (one or more blocking collectives); translate a failure into DistributedError."""
    try:
        return operation()
    except DistributedError:
        raise
    except RuntimeError as error:  # DistBackendError, gloo timeouts, closed connections
        rank, world_size = world()
        limit = f"{_timeout_s:g} s" if _timeout_s is not None else "the process group's timeout"
        raise DistributedError(
            f"rank {rank}/{world_size}: {what} failed or timed out (limit {limit}): a peer rank died, "
            f"stalled or lost its connection. Underlying error: {_first_line(error)}") from error


def all_reduce_sum(tensor: torch.Tensor, what: str) -> torch.Tensor:
    """In-place sum of ``tensor`` over all ranks (no-op without a process group); returns it."""
    if world()[1] > 1:
        collective(what, lambda: dist.all_reduce(tensor, op=dist.ReduceOp.SUM))
    return tensor


def all_gather(tensor: torch.Tensor, what: str) -> list[torch.Tensor]:
    """``tensor`` from every rank, in rank order (same shape on every rank)."""
    if world()[1] == 1:
        return [tensor]
    gathered = [torch.empty_like(tensor) for _ in range(world()[1])]
    collective(what, lambda: dist.all_gather(gathered, tensor))
    return gathered


def broadcast_(tensors: list[torch.Tensor], what: str, src: int = 0) -> None:
    """Overwrite ``tensors`` in place with rank ``src``'s values."""
    if world()[1] == 1:
        return
    for tensor in tensors:
        collective(what, lambda tensor=tensor: dist.broadcast(tensor, src=src))


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


@dataclass
class Traffic:
    """Cumulative bytes one worker exchanges with a (virtual) parameter server, as the papers count.

    ``sent``/``received``: payload values (float32 = 4 bytes each) up to and down from the server.
    ``index_bytes``: coordinate indices a real sparse exchange also carries; both papers leave them
    out of the compression ratio ("can be efficiently coded") and so do we, but they are counted.
    ``dense_bytes``: what uncompressed SGD would send up in the same steps (4·d per step).
    """

    sent: int = 0
    received: int = 0
    index_bytes: int = 0
    dense_bytes: int = 0
    steps: int = 0

    def record(self, sent_values: int, received_values: int, dimension: int, index_values: int = 0,
               bytes_per_value: int = 4) -> None:
        """Count one step: numbers of values up and down, model dimension d, indices (4 bytes each)."""
        self.sent += bytes_per_value * sent_values
        self.received += bytes_per_value * received_values
        self.index_bytes += 4 * index_values
        self.dense_bytes += bytes_per_value * dimension
        self.steps += 1

    def summary(self) -> dict[str, Any]:
        """``compression_ratio`` = 2d/(up + down) (Ivkin et al. §5.3), plus upload-only and per-step bytes."""
        total = self.sent + self.received
        return {
            "bytes_sent": self.sent,
            "bytes_received": self.received,
            "index_bytes": self.index_bytes,
            "steps": self.steps,
            "compression_ratio": (2 * self.dense_bytes / total) if total else None,
            "upload_compression_ratio": (self.dense_bytes / self.sent) if self.sent else None,
            "bytes_per_step": (total / self.steps) if self.steps else None,
        }

    def state_dict(self) -> dict[str, int]:
        """The counters, for checkpoints."""
        return asdict(self)

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restore the counters."""
        for key, value in state.items():
            setattr(self, key, int(value))
