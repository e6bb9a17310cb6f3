"""Single-process simulations of every gradient reducer, written from the papers in plain torch.

Nothing here uses ``creditlab.distributed``: each function takes the per-rank gradients of every step
(``grads[step][rank]``, a list of tensors shaped like the model's parameters) and returns the update
every rank must hold after ``synchronize`` (``updates[step]``, flat over all parameters in
registration order). The Count Sketch is rebuilt from its definition (Charikar et al. 2002) and the
hash family from the formula in the library's docstring, evaluated with Python integers; only the
random hash parameters ``(a_j, b_j)`` are taken from the library (they are a random draw, not a
computation). PowerSGD's initial Q follows torch's documented seeding (a NumPy RandomState seeds
torch's generator), since the hook under test is torch's.
"""

from __future__ import annotations

import numpy as np
import torch

Grads = list[list[list[torch.Tensor]]]  # [step][rank][parameter]


# -- helpers ---------------------------------------------------------------------------------
def split(grads: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(flat matrices, flat vectors): the compressed and the exactly sent group of the papers' setup."""
    matrices = torch.cat([g.reshape(-1) for g in grads if g.dim() >= 2])
    vectors = torch.cat([g.reshape(-1) for g in grads if g.dim() < 2])
    return matrices, vectors


def join(shapes: list[torch.Size], matrices: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`split`, flattened over all parameters in order."""
    pieces, m, v = [], 0, 0
    for shape in shapes:
        n = int(torch.Size(shape).numel())
        if len(shape) >= 2:
            pieces.append(matrices[m:m + n])
            m += n
        else:
            pieces.append(vectors[v:v + n])
            v += n
    return torch.cat(pieces)


def top_k_indices(values: torch.Tensor, k: int, observed: torch.Tensor | None = None) -> torch.Tensor:
    """The k largest |values| (sorted indices).

    Where |values| ties at the k-th place the set is not determined by the algorithm: without
    ``observed`` that is refused; with it (the set the library chose), it is checked to be *a* valid
    top-k set (every larger value in, nothing smaller in) and returned, so the simulation follows
    the library's tie-breaking and checks everything else.
    """
    magnitude = values.abs()
    threshold = magnitude.sort(descending=True).values[k - 1]
    above = (magnitude > threshold).nonzero().view(-1)
    tied = (magnitude == threshold).nonzero().view(-1)
    if observed is None:
        assert len(above) + len(tied) == k, \
            "a tie at the k-th magnitude makes the top-k set ambiguous; plant other gradients"
        return torch.cat([above, tied]).sort().values
    chosen = set(observed.tolist())
    assert len(chosen) == k, f"{len(chosen)} coordinates chosen, expected k={k}"
    assert set(above.tolist()) <= chosen <= set(above.tolist()) | set(tied.tolist()), "not a top-k set"
    return observed.sort().values


# -- uncompressed and top-k (Ivkin et al. 2019 §5 baselines) ---------------------------------------
def allreduce(grads: Grads) -> list[torch.Tensor]:
    """Mean over ranks."""
    return [sum(torch.cat([g.reshape(-1) for g in rank]) for rank in step) / len(step) for step in grads]


def true_top_k(grads: Grads, k: int, momentum: float) -> list[torch.Tensor]:
    """Local momentum u and error v per rank; the k largest coordinates of Σ v are applied (averaged)
    and zeroed in every rank's u and v. Vectors (biases) get momentum and are averaged exactly."""
    shapes = [g.shape for g in grads[0][0]]
    world = len(grads[0])
    d, d_exact = (len(x) for x in split(grads[0][0]))
    u, v = torch.zeros(world, d), torch.zeros(world, d)
    u_exact = torch.zeros(world, d_exact)
    updates = []
    for step in grads:
        for rank, g in enumerate(step):
            matrices, vectors = split(g)
            u[rank] = momentum * u[rank] + matrices
            v[rank] = v[rank] + u[rank]
            u_exact[rank] = momentum * u_exact[rank] + vectors
        total = v.sum(0)
        chosen = top_k_indices(total, k)
        update = torch.zeros(d)
        update[chosen] = total[chosen] / world
        u[:, chosen] = 0
        v[:, chosen] = 0
        updates.append(join(shapes, update, u_exact.sum(0) / world))
    return updates


def local_top_k(grads: Grads, k: int, momentum: float) -> list[torch.Tensor]:
    """Each rank sends the k largest coordinates of its own v and zeroes u, v there; the update is the
    average of the W sparse vectors (up to W·k non-zeros)."""
    shapes = [g.shape for g in grads[0][0]]
    world = len(grads[0])
    d, d_exact = (len(x) for x in split(grads[0][0]))
    u, v = torch.zeros(world, d), torch.zeros(world, d)
    u_exact = torch.zeros(world, d_exact)
    updates = []
    for step in grads:
        update = torch.zeros(d)
        for rank, g in enumerate(step):
            matrices, vectors = split(g)
            u[rank] = momentum * u[rank] + matrices
            v[rank] = v[rank] + u[rank]
            u_exact[rank] = momentum * u_exact[rank] + vectors
            chosen = top_k_indices(v[rank], k)
            update[chosen] += v[rank][chosen]
            u[rank, chosen] = 0
            v[rank, chosen] = 0
        updates.append(join(shapes, update / world, u_exact.sum(0) / world))
    return updates


# -- Count Sketch from its definition --------------------------------------------------------------
class ReferenceSketch:
    """r×c Count Sketch: S[j, h_j(i)] += s_j(i)·x_i; estimate_i = median_j s_j(i)·S[j, h_j(i)].

    h and s from the multiply-add-shift hash: z = ((a_j·i + b_j) mod 2^64) div 2^32, bucket
    (z·c) div 2^32, sign +1 for even z and -1 for odd z (Python integers: no wrap-around to trust).
    """

    def __init__(self, dimension: int, rows: int, cols: int, multipliers: list[int], offsets: list[int]) -> None:
        bucket = torch.empty(rows, dimension, dtype=torch.long)
        sign = torch.empty(rows, dimension)
        for j in range(rows):
            a, b = multipliers[j] % 2**64, offsets[j] % 2**64
            for i in range(dimension):
                z = ((a * i + b) % 2**64) >> 32
                bucket[j, i] = (z * cols) >> 32
                sign[j, i] = -1.0 if z & 1 else 1.0
        self.rows, self.cols, self.bucket, self.sign = rows, cols, bucket, sign

    def sketch(self, vector: torch.Tensor) -> torch.Tensor:
        """The r×c table of ``vector``."""
        table = torch.zeros(self.rows, self.cols)
        for j in range(self.rows):
            table[j].index_put_((self.bucket[j],), self.sign[j] * vector, accumulate=True)
        return table

    def estimate(self, table: torch.Tensor) -> torch.Tensor:
        """Median over rows of each coordinate's signed bucket (odd rows: the middle value)."""
        rows = torch.stack([self.sign[j] * table[j, self.bucket[j]] for j in range(self.rows)])
        return rows.sort(dim=0).values[self.rows // 2]


def sketched_sgd(grads: Grads, sketch: ReferenceSketch, k: int, candidates: int, momentum: float,
                 observed: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """Ivkin et al. Algorithm 3: local u, v; the summed sketch of v names P·k candidates, their exact
    sums choose the k applied coordinates (averaged), zeroed in every rank's u and v.

    ``observed[step]``: the coordinates the library applied. Estimates of coordinates sharing a
    bucket tie often, so the candidate set is often not unique; it is then the most favourable valid
    one for the observed choice (the forced candidates, the observed tied ones, then the tied ones
    with the smallest exact sums), and the observed set must be the top k of that set's exact sums.
    """
    shapes = [g.shape for g in grads[0][0]]
    world = len(grads[0])
    d, d_exact = (len(x) for x in split(grads[0][0]))
    u, v = torch.zeros(world, d), torch.zeros(world, d)
    u_exact = torch.zeros(world, d_exact)
    updates = []
    for step in grads:
        table = torch.zeros(sketch.rows, sketch.cols)
        for rank, g in enumerate(step):
            matrices, vectors = split(g)
            u[rank] = momentum * u[rank] + matrices
            v[rank] = v[rank] + u[rank]
            u_exact[rank] = momentum * u_exact[rank] + vectors
            table += sketch.sketch(v[rank])
        estimates = sketch.estimate(table)
        sums = v.sum(0)
        if observed is None:
            candidate_set = top_k_indices(estimates, candidates)
            chosen = candidate_set[top_k_indices(sums[candidate_set], k)]
        else:
            candidate_set = _favourable_candidates(estimates, sums, candidates, observed[len(updates)])
            position = {int(c): i for i, c in enumerate(candidate_set)}
            assert all(int(c) in position for c in observed[len(updates)]), "applied a non-candidate"
            local = torch.tensor([position[int(c)] for c in observed[len(updates)]], dtype=torch.long)
            chosen = candidate_set[top_k_indices(sums[candidate_set], k, local)]
        update = torch.zeros(d)
        update[chosen] = v[:, chosen].sum(0) / world
        u[:, chosen] = 0
        v[:, chosen] = 0
        updates.append(join(shapes, update, u_exact.sum(0) / world))
    return updates


def _favourable_candidates(estimates: torch.Tensor, sums: torch.Tensor, count: int, applied: torch.Tensor
                           ) -> torch.Tensor:
    """A valid top-``count`` set of |estimates| that keeps ``applied`` in and the rest weak (see above)."""
    magnitude = estimates.abs()
    threshold = magnitude.sort(descending=True).values[count - 1]
    forced = (magnitude > threshold).nonzero().view(-1).tolist()
    tied = (magnitude == threshold).nonzero().view(-1).tolist()
    applied_set = set(applied.tolist())
    fill = sorted((i for i in tied if i not in applied_set), key=lambda i: float(sums[i].abs()))
    chosen = forced + [i for i in tied if i in applied_set]
    chosen += fill[:count - len(chosen)]
    assert len(chosen) == count, "the applied coordinates are not all among a valid candidate set"
    return torch.tensor(sorted(chosen), dtype=torch.long)


def fetch_sgd(grads: Grads, sketch: ReferenceSketch, k: int, momentum: float,
              observed: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """Rothchild et al. 2020: momentum S_u and error S_e in sketch space (from the mean sketch); the
    top-k estimates of S_e are applied and their buckets zeroed in S_u and S_e, every row.
    ``observed[step]``: the library's choice, checked to be a valid top-k set where estimates tie."""
    shapes = [g.shape for g in grads[0][0]]
    world = len(grads[0])
    d, d_exact = (len(x) for x in split(grads[0][0]))
    s_u, s_e = torch.zeros(sketch.rows, sketch.cols), torch.zeros(sketch.rows, sketch.cols)
    u_exact = torch.zeros(d_exact)
    updates = []
    for step in grads:
        table, vectors_sum = torch.zeros(sketch.rows, sketch.cols), torch.zeros(d_exact)
        for g in step:
            matrices, vectors = split(g)
            table += sketch.sketch(matrices)
            vectors_sum += vectors
        s_u = momentum * s_u + table / world
        s_e = s_e + s_u
        estimates = sketch.estimate(s_e)
        chosen = top_k_indices(estimates, k, None if observed is None else observed[len(updates)])
        update = torch.zeros(d)
        update[chosen] = estimates[chosen]
        hit = chosen[estimates[chosen] != 0]
        for j in range(sketch.rows):
            s_u[j, sketch.bucket[j, hit]] = 0
            s_e[j, sketch.bucket[j, hit]] = 0
        u_exact = momentum * u_exact + vectors_sum / world
        updates.append(join(shapes, update, u_exact.clone()))
    return updates


# -- PowerSGD (Vogels et al. 2019, Algorithm 1 with error feedback and warm start) ------------------
def _orthonormal(matrix: torch.Tensor) -> torch.Tensor:
    return torch.linalg.qr(matrix.double()).Q.float()


def power_sgd(grads: Grads, rank: int, seed: int, start_iter: int = 2, min_compression_rate: float = 2.0
              ) -> list[torch.Tensor]:
    """Plain averaging for the first ``start_iter`` steps; then per rank M = g + e, and per matrix
    worth compressing (rate·(n+m)·r < n·m) one power step P = Σ M Q, orthonormalize P, Q = Σ Mᵀ P / W,
    update P Qᵀ; other tensors are averaged; e = M - update. Q starts N(0, 1), orthonormalized, and is
    kept for the next step (warm start)."""
    shapes = [g.shape for g in grads[0][0]]
    world = len(grads[0])
    errors = None
    q_memory: list[torch.Tensor] | None = None
    updates = []
    for step_index, step in enumerate(grads):
        flat = [torch.cat([g.reshape(-1) for g in rank_grads]) for rank_grads in step]
        if step_index < start_iter:
            updates.append(sum(flat) / world)
            continue
        errors = errors if errors is not None else [torch.zeros_like(flat[0]) for _ in range(world)]
        inputs = [f + e for f, e in zip(flat, errors, strict=True)]
        update = torch.zeros_like(flat[0])
        offset, compressed = 0, []
        for shape in shapes:
            n_rows = shape[0]
            numel = int(torch.Size(shape).numel())
            n_cols = numel // n_rows
            r = min(n_rows, n_cols, rank)
            if (n_rows + n_cols) * r * min_compression_rate < numel:
                compressed.append((offset, n_rows, n_cols, r, shape))
            else:
                update[offset:offset + numel] = sum(x[offset:offset + numel] for x in inputs) / world
            offset += numel
        if q_memory is None:  # torch's hook: numpy RandomState(seed) seeds torch; shape groups in order
            generator = torch.Generator().manual_seed(int(np.random.RandomState(seed).randint(1_000_000_000)))
            by_shape: dict[tuple, list[int]] = {}
            for index, item in enumerate(compressed):
                by_shape.setdefault((item[1], item[2]), []).append(index)
            q_memory = [torch.empty(0)] * len(compressed)
            for indices in by_shape.values():
                for index in indices:
                    _, _, n_cols, r, _ = compressed[index]
                    q_memory[index] = torch.randn(n_cols, r, generator=generator)
        for index, (start, n_rows, n_cols, _, _) in enumerate(compressed):
            matrices = [x[start:start + n_rows * n_cols].view(n_rows, n_cols) for x in inputs]
            q = _orthonormal(q_memory[index])
            p = _orthonormal(sum(m @ q for m in matrices))
            q = sum(m.T @ p for m in matrices) / world
            q_memory[index] = q
            update[start:start + n_rows * n_cols] = (p @ q.T).reshape(-1)
        errors = [x - update for x in inputs]
        updates.append(update)
    return updates
