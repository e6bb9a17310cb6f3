"""Baselines in the same harness: uncompressed all-reduce, true top-k, local top-k, PowerSGD.

True and local top-k keep local momentum ``u`` and error ``v`` exactly like SketchedSGD (momentum,
error accumulation, zeroing at updated coordinates), so the comparison isolates how the k coordinates
are chosen (Ivkin et al. §5 baselines; ``dhroth/sketchedsgd`` methods ``trueTopk`` and ``localTopk``).
PowerSGD is PyTorch's own ``powerSGD_hook`` (Vogels et al. 2019), called on one flat bucket holding
every trainable gradient, so it runs after any rule, not only inside DDP's backward.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as powersgd

from creditlab.distributed.comm import all_gather, all_reduce_sum, collective
from creditlab.distributed.reducer import GradientReducer
from creditlab.distributed.sketched_sgd import LocalErrorFeedback, reducer_optimizer_requirement


class AllReduce(GradientReducer):
    """Uncompressed data-parallel SGD: ``.grad ← (1/W) Σ_i g_i`` (any optimizer)."""

    kind = "allreduce"

    def __init__(self, model: nn.Module, **options: Any) -> None:
        super().__init__(model, compress_matrices_only=False, **options)

    def reduce(self, compressed: torch.Tensor, exact: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean over ranks."""
        mean = all_reduce_sum(compressed.clone(), "gradient all-reduce") / self.world_size
        self.traffic.record(sent_values=self.dimension, received_values=self.dimension,
                            dimension=self.dimension)
        return mean, exact


class _ErrorFeedbackTopK(LocalErrorFeedback):
    """Shared state of the top-k baselines: local momentum and error, exact 1-D parameters."""

    def stats(self) -> dict[str, Any]:
        """Traffic and k."""
        return {**super().stats(), "k": self.k}


class TrueTopK(_ErrorFeedbackTopK):
    """Top-k of the *summed* error accumulators: every worker sends v densely, receives k values."""

    kind = "topk"
    optimizer_requirement = reducer_optimizer_requirement(kind)

    def reduce(self, compressed: torch.Tensor, exact: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """All-reduce v, take the global top-k, zero u and v there on every rank."""
        v = self._accumulate(compressed, exact)
        total = all_reduce_sum(torch.cat([v, self.exact_momentum]), "true top-k all-reduce")
        summed, exact_sum = total[:self.dimension], total[self.dimension:]
        indices = summed.abs().topk(self.k, sorted=False).indices
        update = torch.zeros_like(compressed)
        update[indices] = summed[indices] / self.world_size
        self._mask(indices)
        self.traffic.record(sent_values=self.dimension + self.exact_dimension,
                            received_values=self.k + self.exact_dimension,
                            dimension=self.dimension + self.exact_dimension, index_values=self.k)
        return update, exact_sum / self.world_size


class LocalTopK(_ErrorFeedbackTopK):
    """Each worker sends the top-k of its own v; the update is the average of the W sparse vectors.

    Each worker zeroes u and v at the coordinates *it* sent (local error feedback and masking). The
    update has up to W·k non-zeros, which is what a worker receives (Ivkin et al. Fig. 4).
    """

    kind = "localtopk"
    optimizer_requirement = reducer_optimizer_requirement(kind)

    def reduce(self, compressed: torch.Tensor, exact: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """All-gather (indices, values) of every rank's local top-k and sum them."""
        v = self._accumulate(compressed, exact)
        indices = v.abs().topk(self.k, sorted=False).indices
        values = v[indices]
        gathered_indices = all_gather(indices, "local top-k all-gather (indices)")
        gathered_values = all_gather(values, "local top-k all-gather (values)")
        exact_sum = all_reduce_sum(self.exact_momentum.clone(), "all-reduce of uncompressed parameters")
        update = torch.zeros_like(compressed)
        for rank_indices, rank_values in zip(gathered_indices, gathered_values, strict=True):
            update.index_add_(0, rank_indices, rank_values)  # ranks in order: identical sums everywhere
        update /= self.world_size
        self._mask(indices)
        received = int((update != 0).sum())
        self.traffic.record(sent_values=self.k + self.exact_dimension,
                            received_values=received + self.exact_dimension,
                            dimension=self.dimension + self.exact_dimension, index_values=self.k + received)
        return update, exact_sum / self.world_size


class _FlatBucket:
    """The part of ``dist.GradBucket``'s interface ``powerSGD_hook`` uses, over one flat buffer."""

    def __init__(self, buffer: torch.Tensor, shapes: list[tuple[int, ...]]) -> None:
        self._buffer = buffer
        self._views: list[torch.Tensor] = []
        offset = 0
        for shape in shapes:
            n = int(torch.Size(shape).numel())
            self._views.append(buffer[offset:offset + n].view(shape))
            offset += n

    def buffer(self) -> torch.Tensor:
        return self._buffer

    def gradients(self) -> list[torch.Tensor]:
        return self._views

    def index(self) -> int:
        return 0

    def is_last(self) -> bool:
        return True


class PowerSGD(GradientReducer):
    """PyTorch's ``powerSGD_hook`` (rank-r, error feedback, warm start) on all gradients at once.

    The first ``start_iter`` steps are plain all-reduce (the hook's own warm-up; it must be >= 2 with
    error feedback). Matrices are compressed when ``(n+m)·rank·min_compression_rate < n·m``; the rest
    (biases) is all-reduced exactly inside the hook. Any optimizer works (PowerSGD approximates the
    mean gradient). A CPU model on a machine with CUDA is refused: the hook then calls
    ``torch.cuda.synchronize`` on a CPU device.
    """

    kind = "powersgd"

    def __init__(self, model: nn.Module, rank: int = 1, start_iter: int = 2,
                 min_compression_rate: float = 2.0, seed: int = 0, **options: Any) -> None:
        super().__init__(model, compress_matrices_only=False, **options)
        if rank < 1:
            raise ValueError(f"--distributed powersgd: rank must be >= 1, got {rank}")
        if start_iter < 2:
            raise ValueError("--distributed powersgd: start_iter must be >= 2 (PowerSGD with error feedback)")
        if self.device.type == "cpu" and torch.cuda.is_available():
            raise ValueError("--distributed powersgd: torch's PowerSGD hook needs CUDA tensors on a machine "
                             "with CUDA; train with --device cuda or hide the GPUs (CUDA_VISIBLE_DEVICES='')")
        group = dist.group.WORLD if dist.is_initialized() else None
        self.state = powersgd.PowerSGDState(process_group=group, matrix_approximation_rank=rank,
                                            start_powerSGD_iter=start_iter,
                                            min_compression_rate=min_compression_rate,
                                            use_error_feedback=True, warm_start=True, random_seed=seed)
        self.rank_r = rank

    def reduce(self, compressed: torch.Tensor, exact: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the hook on the flat gradient and wait for its result."""
        if self.world_size == 1:
            # the hook needs a process group; one process has nothing to exchange
            self.traffic.record(sent_values=0, received_values=0, dimension=self.dimension)
            return compressed, exact
        bucket = _FlatBucket(compressed.clone(), self.shapes)
        before = self.state.total_numel_after_compression
        result = collective("PowerSGD hook", lambda: powersgd.powerSGD_hook(self.state, bucket).wait())
        after = self.state.total_numel_after_compression
        exchanged = after - before if after > before else self.dimension  # warm-up steps: dense all-reduce
        self.traffic.record(sent_values=exchanged, received_values=exchanged, dimension=self.dimension)
        return result, exact

    def buffers(self) -> dict[str, torch.Tensor]:
        """Error feedback and the warm-start P, Q of the hook (present once compression started)."""
        found = {}
        for name, table in (("error", self.state.error_dict), ("p", self.state.p_memory_dict),
                            ("q", self.state.q_memory_dict)):
            if 0 in table:
                found[name] = table[0]
        return found

    def rank_local_buffers(self) -> set[str]:
        """The error and P differ by rank; Q is all-reduced."""
        return {"error", "p"}

    def state_dict(self) -> dict[str, Any]:
        """Base state plus the hook's iteration counter and RNG."""
        return {**super().state_dict(), "iter": self.state.iter, "rng": self.state.rng.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the hook's buffers, counter and RNG (buffers are created when first missing)."""
        for name, table in (("error", self.state.error_dict), ("p", self.state.p_memory_dict),
                            ("q", self.state.q_memory_dict)):
            if name in state["buffers"] and 0 not in table:
                table[0] = torch.zeros_like(state["buffers"][name], device=self.device)
        super().load_state_dict(state)
        self.state.iter = int(state["iter"])
        self.state.rng.set_state(state["rng"])

    def stats(self) -> dict[str, Any]:
        """Traffic and the approximation rank."""
        return {**super().stats(), "powersgd_rank": self.rank_r}
