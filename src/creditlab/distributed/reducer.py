"""The gradient-reducer protocol the trainer calls between the rule and the optimizer.

``synchronize(model)`` runs on every rank after the learning rule has written ``param.grad`` and
before ``optimizer.step()``. It exchanges explicit collectives (not a DDP hook, so it works with every
creditlab rule, and two-round protocols do not hang on gloo, see the research note §3.3) and leaves
in ``.grad`` an update direction that is identical on every rank.

Parameters are split into two groups, as in the paper's experiments (Ivkin et al. §5.1): tensors with
two or more dimensions are *compressed*; 1-D tensors (biases, norm scales; under 1% of a model) are
exchanged exactly. The compressed group is handled as one flat vector of length ``dimension``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.distributed as dist
import torch.nn as nn

from creditlab.distributed.comm import (
    DistributedError,
    Traffic,
    all_reduce_sum,
    broadcast_,
    collective,
    world,
)
from creditlab.optim import OptimizerRequirement


def trainable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(name, parameter) of every trainable parameter, in registration order."""
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


class GradientReducer:
    """Base class: bookkeeping, flattening, byte accounting, checkpoints.

    Subclasses implement :meth:`reduce` on flat vectors. ``compress_matrices_only`` (default True)
    sends 1-D parameters exactly; set it False to compress every parameter. Every ``check_every``
    steps (0: never) the replicas are compared with rank 0's (one broadcast of the weights, not
    counted as training traffic) and a difference raises DistributedError: identical replicas are
    checked, not assumed.
    """

    kind: ClassVar[str] = ""
    #: optimizer settings the reducer needs (None: any optimizer), applied by ``config_for``
    optimizer_requirement: ClassVar[OptimizerRequirement | None] = None

    def __init__(self, model: nn.Module, compress_matrices_only: bool = True,
                 sync_initial_parameters: bool = True, check_every: int = 500) -> None:
        named = trainable_parameters(model)
        if not named:
            raise ValueError("the model has no trainable parameters to synchronize")
        self.names = [name for name, _ in named]
        self.shapes = [tuple(p.shape) for _, p in named]
        compressed = [len(p.shape) >= 2 or not compress_matrices_only for _, p in named]
        self.compressed_mask = compressed
        self.dimension = sum(p.numel() for (_, p), c in zip(named, compressed, strict=True) if c)
        self.exact_dimension = sum(p.numel() for (_, p), c in zip(named, compressed, strict=True) if not c)
        self.total_dimension = self.dimension + self.exact_dimension
        self.device = named[0][1].device
        self.dtype = named[0][1].dtype
        self.rank, self.world_size = world()
        self.traffic = Traffic()
        self.check_every = check_every
        self._calls = 0
        if sync_initial_parameters and self.world_size > 1:
            # like DDP: start every replica from rank 0's weights
            with torch.no_grad():
                broadcast_([p.data for _, p in named] + list(model.buffers()), "initial parameter broadcast")

    # -- the protocol ---------------------------------------------------------------------------
    def synchronize(self, model: nn.Module) -> None:
        """Replace every trainable ``param.grad`` by the rank-identical update direction."""
        params = self._check_model(model)
        self._calls += 1
        if self.check_every and self.world_size > 1 and self._calls % self.check_every == 0:
            gap = self.max_divergence(model)
            if gap != 0.0:
                raise DistributedError(
                    f"rank {self.rank}: parameters differ from rank 0's by up to {gap:g} after {self._calls} "
                    "steps; the replicas have diverged (a nondeterministic rule or optimizer?)")
        compressed, exact = self._flatten(params)
        update_compressed, update_exact = self.reduce(compressed, exact)
        self._write_back(params, update_compressed, update_exact)

    def reduce(self, compressed: torch.Tensor, exact: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map this rank's flat gradients (dimension,), (exact_dimension,) to the common update."""
        raise NotImplementedError

    def required_optimizer(self) -> dict[str, Any] | None:
        """The fixed settings of :attr:`optimizer_requirement` (``None``: any optimizer)."""
        return dict(self.optimizer_requirement.fixed) if self.optimizer_requirement is not None else None

    def check_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Raise ValueError, saying what to change, when ``optimizer`` violates :meth:`required_optimizer`."""
        required = self.required_optimizer()
        if required is None:
            return
        if not isinstance(optimizer, torch.optim.SGD):
            raise ValueError(f"--distributed {self.kind} applies momentum and error feedback itself; "
                             f"use plain SGD (--optimizer sgd --momentum 0), not {type(optimizer).__name__}")
        for group in optimizer.param_groups:
            if group.get("momentum", 0.0) != 0.0 or group.get("nesterov", False):
                raise ValueError(f"--distributed {self.kind} keeps its own momentum (--momentum is the "
                                 "reducer's); the SGD optimizer must have momentum 0 and nesterov off")

    def stats(self) -> dict[str, Any]:
        """Cumulative ``bytes_sent``, ``bytes_received``, ``steps``, ``compression_ratio`` and more."""
        return {"reducer": self.kind, **self.traffic.summary()}

    def state_dict(self) -> dict[str, Any]:
        """Traffic counters plus :meth:`buffers` (this rank's; see :meth:`load_state_dict`)."""
        return {"kind": self.kind, "rank": self.rank, "world_size": self.world_size,
                "traffic": self.traffic.state_dict(),
                "buffers": {name: t.detach().clone() for name, t in self.buffers().items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore counters and buffers.

        Buffers listed by :meth:`rank_local_buffers` differ between ranks (local momentum/error). The
        trainer checkpoints rank 0 only, so another rank loading that file gets zeros for them (the
        accumulated error of that rank is lost, the run stays correct); replicated state (FetchSGD's
        sketches, counters) is restored exactly on every rank.
        """
        if state.get("kind") != self.kind:
            raise ValueError(f"reducer state is for {state.get('kind')!r}, not {self.kind!r}")
        self.traffic.load_state_dict(state["traffic"])
        own = self.buffers()
        same_rank = state.get("rank") == self.rank and state.get("world_size") == self.world_size
        for name, saved in state["buffers"].items():
            if name not in own:
                raise ValueError(f"unexpected reducer buffer {name!r} in checkpoint")
            if name in self.rank_local_buffers() and not same_rank:
                own[name].zero_()
                continue
            if own[name].shape != saved.shape:
                raise ValueError(f"reducer buffer {name!r} has shape {tuple(saved.shape)} in the checkpoint, "
                                 f"expected {tuple(own[name].shape)} (different model or sketch size?)")
            own[name].copy_(saved)

    def buffers(self) -> dict[str, torch.Tensor]:
        """Named state tensors (momentum, error, sketch tables), modified in place."""
        return {}

    def rank_local_buffers(self) -> set[str]:
        """Names of buffers whose value differs between ranks."""
        return set()

    def max_divergence(self, model: nn.Module) -> float:
        """Collective: largest |difference| of any parameter from rank 0 (0.0: identical)."""
        flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        reference = flat.clone()
        broadcast_([reference], "parameter consistency check")
        gap = (flat - reference).abs().max().reshape(1)
        if self.world_size > 1:
            collective("parameter consistency check", lambda: dist.all_reduce(gap, op=dist.ReduceOp.MAX))
        return float(gap.item())

    # -- helpers --------------------------------------------------------------------------------
    def _check_model(self, model: nn.Module) -> list[nn.Parameter]:
        named = trainable_parameters(model)
        if [n for n, _ in named] != self.names or [tuple(p.shape) for _, p in named] != self.shapes:
            raise ValueError("synchronize() got a model whose trainable parameters differ from the one the "
                             "reducer was built for")
        params = [p for _, p in named]
        for name, p in named:
            if p.grad is None:
                raise ValueError(f"parameter {name} has no .grad: run the learning rule before synchronize()")
        return params

    def _flatten(self, params: list[nn.Parameter]) -> tuple[torch.Tensor, torch.Tensor]:
        compressed = [p.grad.reshape(-1) for p, c in zip(params, self.compressed_mask, strict=True) if c]
        exact = [p.grad.reshape(-1) for p, c in zip(params, self.compressed_mask, strict=True) if not c]
        empty = torch.zeros(0, device=self.device, dtype=self.dtype)
        return (torch.cat(compressed) if compressed else empty).to(self.dtype), \
            (torch.cat(exact) if exact else empty).to(self.dtype)

    def _write_back(self, params: list[nn.Parameter], compressed: torch.Tensor, exact: torch.Tensor) -> None:
        offsets = {True: 0, False: 0}
        sources = {True: compressed, False: exact}
        for p, c in zip(params, self.compressed_mask, strict=True):
            n = p.numel()
            p.grad.copy_(sources[c][offsets[c]:offsets[c] + n].view_as(p.grad))
            offsets[c] += n

    def _mean_exact(self, exact: torch.Tensor) -> torch.Tensor:
        """Exact average of the uncompressed group (one all-reduce)."""
        return all_reduce_sum(exact.clone(), "all-reduce of uncompressed parameters") / self.world_size
