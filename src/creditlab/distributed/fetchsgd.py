"""FetchSGD (Rothchild, Panda, Ullah, Ivkin, Stoica, Braverman, Gonzalez & Arora, ICML 2020).

Workers are stateless: each sends only the sketch of its gradient. Momentum and error accumulation
live in sketch space on the aggregator; here every rank holds an identical copy of that state, since
every rank receives the same all-reduced sketch and applies the same deterministic steps:

1. ``S_t = (1/W) Σ_i S(g_i)``                  one all-reduce of an r×c table (r·c values up)
2. ``S_u ← ρ·S_u + S_t``                       momentum in sketch space
3. ``S_e ← S_e + S_u``                         error accumulation in sketch space
4. ``Δ`` = top-k of ``estimate(S_e)``          k estimated values down; no second round
5. zero ``S_u`` and ``S_e`` in every bucket a non-zero of ``Δ`` hashes to (the reference code zeroes
   rather than subtracting ``S(Δ)``, which diverged; ``fed_aggregator.py`` L568–613)

``.grad`` receives ``Δ`` and plain SGD applies ``w ← w − lr·Δ`` (lr after unsketching, as in the
reference). 1-D parameters are averaged exactly and get dense momentum ρ (replicated state too).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from creditlab.distributed.comm import all_reduce_sum
from creditlab.distributed.countsketch import CountSketch
from creditlab.distributed.reducer import GradientReducer
from creditlab.distributed.sketched_sgd import (
    reducer_optimizer_requirement,
    validate_momentum,
    validate_sketch,
    validate_sparsity,
)


class FetchSGD(GradientReducer):
    """One-round sketched all-reduce with momentum and error feedback in sketch space."""

    kind = "fetchsgd"
    optimizer_requirement = reducer_optimizer_requirement(kind)

    def __init__(self, model: nn.Module, rows: int, cols: int, k: int, momentum: float = 0.9, seed: int = 0,
                 **options: Any) -> None:
        super().__init__(model, **options)
        validate_sparsity(self.kind, self.dimension, k)
        validate_sketch(self.kind, self.dimension, rows, cols, k)
        validate_momentum(momentum)
        self.k, self.momentum = k, momentum
        self.sketch = CountSketch(self.dimension, rows, cols, seed=seed, device=self.device, dtype=self.dtype)
        self.momentum_table = torch.zeros_like(self.sketch.table)
        self.error_table = torch.zeros_like(self.sketch.table)
        self.exact_momentum = torch.zeros(self.exact_dimension, device=self.device, dtype=self.dtype)

    def reduce(self, compressed: torch.Tensor, exact: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One FetchSGD step; returns the common update (k-sparse on the compressed group)."""
        rows, cols = self.sketch.rows, self.sketch.cols
        self.sketch.zero_().accumulate_vector(compressed)
        payload = all_reduce_sum(torch.cat([self.sketch.table.view(-1), exact]),
                                 "FetchSGD sketch all-reduce") / self.world_size  # step 1
        mean_table = payload[:rows * cols].view(rows, cols)
        self.momentum_table.mul_(self.momentum).add_(mean_table)  # step 2
        self.error_table.add_(self.momentum_table)  # step 3
        self.sketch.table.copy_(self.error_table)
        indices, values = self.sketch.top_k(self.k)  # step 4
        update = torch.zeros_like(compressed)
        update[indices] = values
        positions, _ = self.sketch.hashes(indices[values != 0])  # step 5: buckets hit by Δ, every row
        self.momentum_table.view(-1)[positions.reshape(-1)] = 0
        self.error_table.view(-1)[positions.reshape(-1)] = 0
        self.exact_momentum.mul_(self.momentum).add_(payload[rows * cols:])
        self.traffic.record(sent_values=rows * cols + self.exact_dimension,
                            received_values=self.k + self.exact_dimension,
                            dimension=self.dimension + self.exact_dimension, index_values=self.k)
        return update, self.exact_momentum.clone()

    def buffers(self) -> dict[str, torch.Tensor]:
        """Sketch-space momentum and error, and the exact group's momentum (identical on every rank)."""
        return {"momentum_table": self.momentum_table, "error_table": self.error_table,
                "exact_momentum": self.exact_momentum}

    def stats(self) -> dict[str, Any]:
        """Traffic plus the configuration that determines it."""
        return {**super().stats(), "sketch_rows": self.sketch.rows, "sketch_cols": self.sketch.cols,
                "k": self.k}
