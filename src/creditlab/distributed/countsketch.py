"""Count Sketch (Charikar, Chen & Farach-Colton 2002) of long vectors, vectorized, CPU or GPU.

A sketch of ``x ∈ R^d`` is a table ``S ∈ R^{r×c}``: row ``j`` adds ``s_j(i)·x_i`` into column
``h_j(i)`` (the *weighted* Count Sketch). It is linear, ``S(x + y) = S(x) + S(y)``, so the sum of
the tables of several workers is the table of the sum of their vectors, provided every worker uses
the same hashes. A coordinate is estimated as ``median_j s_j(i)·S[j, h_j(i)]``.

Hashes are a pure function of ``(seed, rows, cols)`` and the coordinate index, computed on the fly in
chunks, so no ``r×d`` tables are stored (the reference ``CSVec`` precomputes 12·r·d bytes):
row ``j`` uses the multiply-add-shift hash of Dietzfelbinger (1996),
``z = ((a_j·i + b_j) mod 2^64) div 2^32``, which is strongly universal from 32-bit keys to 32-bit
values; the bucket is ``(z·c) div 2^32`` and the sign is ``+1`` or ``-1`` from the lowest bit of
``z``. Pairwise independence of ``(h_j(i), s_j(i))`` across coordinates is what the Count Sketch
guarantees need (unbiased estimates, variance ≤ ‖x‖²/c per row). int64 arithmetic wraps identically
on CPU and GPU, so all devices and ranks agree.
"""

from __future__ import annotations

import torch

#: coordinates processed per chunk when hashing on the fly (int64 temporaries of rows × chunk)
DEFAULT_CHUNK = 1 << 18
_LOW32 = 0xFFFFFFFF
MAX_DIMENSION = 1 << 32


def _random_int64(generator: torch.Generator, count: int) -> torch.Tensor:
    return torch.randint(-(1 << 63), (1 << 63) - 1, (count,), generator=generator, dtype=torch.int64)


def _median_of_3(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Element-wise median of three tensors by min/max (far faster than ``median(dim=0)`` on CPU)."""
    return torch.maximum(torch.minimum(a, b), torch.minimum(torch.maximum(a, b), c))


def _median_of_5(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor, e: torch.Tensor
                 ) -> torch.Tensor:
    """Element-wise median of five: drop the least and the greatest of a..d (neither can be the median
    of all five), then take the median of the two left and e."""
    low_ab, high_ab = torch.minimum(a, b), torch.maximum(a, b)
    low_cd, high_cd = torch.minimum(c, d), torch.maximum(c, d)
    return _median_of_3(torch.maximum(low_ab, low_cd), torch.minimum(high_ab, high_cd), e)


class CountSketch:
    """An ``rows × cols`` Count Sketch of vectors of length ``dimension``.

    Args:
        dimension: d, the length of the sketched vectors (< 2^32).
        rows: r, independent hash rows (odd r gives a true median; 5 is usual).
        cols: c, buckets per row.
        seed: hash seed; sketches with equal ``(dimension, rows, cols, seed)`` can be added.
        device, dtype: of the table.
        chunk_size: coordinates hashed at a time (memory: about 30·rows·chunk_size bytes).
        precompute_hashes: store the flat bucket index (int32) and sign (int8) of every coordinate,
            5·r·d bytes, to skip rehashing; off by default.
    """

    def __init__(self, dimension: int, rows: int, cols: int, seed: int = 0,
                 device: str | torch.device | None = None, dtype: torch.dtype = torch.float32,
                 chunk_size: int = DEFAULT_CHUNK, precompute_hashes: bool = False) -> None:
        if not 1 <= dimension < MAX_DIMENSION:
            raise ValueError(f"dimension must be in [1, 2^32), got {dimension}")
        if rows < 1 or cols < 1:
            raise ValueError(f"a Count Sketch needs rows >= 1 and cols >= 1, got {rows}×{cols}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.dimension, self.rows, self.cols, self.seed = int(dimension), int(rows), int(cols), int(seed)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.chunk_size = int(chunk_size)
        generator = torch.Generator().manual_seed(self.seed)  # CPU generator: identical on every rank
        self._multiplier = _random_int64(generator, rows).view(rows, 1).to(self.device)
        self._offset = _random_int64(generator, rows).view(rows, 1).to(self.device)
        self._row_start = (torch.arange(rows, dtype=torch.int64) * cols).view(rows, 1).to(self.device)
        self._row_start_high = self._row_start << 32
        self._cols = torch.tensor(self.cols, dtype=torch.int64, device=self.device)
        self._chunk_base: torch.Tensor | None = None  # a·(0..chunk-1) mod 2^64, made on first use
        self.table = torch.zeros(rows, cols, device=self.device, dtype=dtype)
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None
        if precompute_hashes:
            if rows * cols >= 1 << 31:
                raise ValueError("precompute_hashes needs rows·cols < 2^31 (int32 positions)")
            flat_all = torch.empty(rows, self.dimension, dtype=torch.int32, device=self.device)
            sign_all = torch.empty(rows, self.dimension, dtype=torch.int8, device=self.device)
            for start in self._chunks():
                stop = min(start + self.chunk_size, self.dimension)
                flat, sign = self._chunk_hashes(start, stop)
                flat_all[:, start:stop], sign_all[:, start:stop] = flat, sign
            self._cache = (flat_all, sign_all)

    # -- hashing ----------------------------------------------------------------------------
    def hashes(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat table positions and signs of coordinates ``indices``.

        indices: (n,) int64 in [0, d). Returns ``flat`` (rows, n) int64, positions in
        ``table.view(-1)`` (row j's bucket plus j·cols), and ``sign`` (rows, n) in the table dtype.
        """
        z = indices.to(device=self.device, dtype=torch.int64).view(1, -1) * self._multiplier
        z += self._offset
        z >>= 32
        z &= _LOW32  # z: the top 32 bits of (a·i + b) mod 2^64, uniform in [0, 2^32)
        sign = (z & 1).to(self.table.dtype).mul_(-2).add_(1)
        z *= self.cols
        z >>= 32  # bucket = floor(z·c / 2^32) in [0, c)
        z += self._row_start
        return z, sign

    def _chunk_hashes(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``hashes(arange(start, stop))`` with fewer passes over memory (same values)."""
        if self._cache is not None:
            flat, sign = self._cache
            return flat[:, start:stop].to(torch.int64), sign[:, start:stop].to(self.table.dtype)
        if self._chunk_base is None:
            positions = torch.arange(self.chunk_size, device=self.device, dtype=torch.int64)
            self._chunk_base = positions.view(1, -1) * self._multiplier
        # a·(start + i) + b = a·i + (a·start + b)  (mod 2^64)
        z = self._chunk_base[:, :stop - start] + (self._multiplier * start + self._offset)
        z >>= 32
        z &= _LOW32
        sign = (z & 1).to(self.table.dtype).mul_(-2).add_(1)
        flat = torch.addcmul(self._row_start_high, z, self._cols)  # (j·c << 32) + z·c
        flat >>= 32  # j·c + floor(z·c / 2^32)
        return flat, sign

    def _chunks(self) -> range:
        return range(0, self.dimension, self.chunk_size)

    def buckets(self, indices: torch.Tensor) -> torch.Tensor:
        """Bucket (column) of each coordinate in each row: (rows, n) int64 for indices (n,)."""
        flat, _ = self.hashes(indices)
        return flat - self._row_start

    # -- building ---------------------------------------------------------------------------
    def zero_(self) -> CountSketch:
        """Empty the table (keeps the hashes)."""
        self.table.zero_()
        return self

    def accumulate_vector(self, vector: torch.Tensor) -> CountSketch:
        """Add the sketch of ``vector`` (d,) to the table: ``S[j, h_j(i)] += s_j(i)·x_i``."""
        if vector.dim() != 1 or vector.numel() != self.dimension:
            raise ValueError(f"expected a vector of shape ({self.dimension},), got {tuple(vector.shape)}")
        vector = vector.to(device=self.device, dtype=self.table.dtype)
        flat_table = self.table.view(-1)
        for start in self._chunks():
            stop = min(start + self.chunk_size, self.dimension)
            flat, sign = self._chunk_hashes(start, stop)
            sign *= vector[start:stop]
            flat_table.index_add_(0, flat.reshape(-1), sign.view(-1))
        return self

    def accumulate_sparse(self, indices: torch.Tensor, values: torch.Tensor) -> CountSketch:
        """Add the sketch of the vector with ``values`` (n,) at ``indices`` (n,) and zeros elsewhere."""
        if indices.shape != values.shape or indices.dim() != 1:
            raise ValueError(f"indices and values must be matching 1-D tensors, got {tuple(indices.shape)} "
                             f"and {tuple(values.shape)}")
        flat, sign = self.hashes(indices)
        sign *= values.to(device=self.device, dtype=self.table.dtype)
        self.table.view(-1).index_add_(0, flat.reshape(-1), sign.view(-1))
        return self

    def accumulate_table(self, table: torch.Tensor) -> CountSketch:
        """Add a table produced by a sketch with the same hashes (e.g. one received from a peer)."""
        if table.shape != self.table.shape:
            raise ValueError(f"table of shape {tuple(table.shape)} cannot be added to a "
                             f"{self.rows}×{self.cols} sketch")
        self.table += table.to(self.table)
        return self

    def compatible(self, other: CountSketch) -> bool:
        """True when ``other`` uses the same hashes (so tables may be added)."""
        return (self.dimension, self.rows, self.cols, self.seed) == (other.dimension, other.rows, other.cols,
                                                                      other.seed)

    def __iadd__(self, other: CountSketch) -> CountSketch:
        if not self.compatible(other):
            raise ValueError("cannot add Count Sketches with different dimension, shape or seed")
        return self.accumulate_table(other.table)

    def copy(self) -> CountSketch:
        """A sketch with the same hashes and a copy of the table."""
        clone = object.__new__(CountSketch)
        clone.__dict__.update(self.__dict__)
        clone.table = self.table.clone()
        return clone

    # -- querying ---------------------------------------------------------------------------
    def _median(self, values: torch.Tensor) -> torch.Tensor:
        """Median over rows of (rows, n); the mean of the two middle values for even rows."""
        if self.rows == 1:
            return values[0]
        if self.rows == 3:
            return _median_of_3(*values.unbind(0))
        if self.rows == 5:
            return _median_of_5(*values.unbind(0))
        if self.rows % 2 == 1:
            return values.median(dim=0).values
        ordered = values.sort(dim=0).values
        middle = self.rows // 2
        return (ordered[middle - 1] + ordered[middle]) / 2

    def estimate(self, indices: torch.Tensor | None = None) -> torch.Tensor:
        """Point estimates ``median_j s_j(i)·S[j, h_j(i)]``: of coordinates ``indices`` (n,), else all d."""
        flat_table = self.table.view(-1)
        if indices is not None:
            flat, sign = self.hashes(indices)
            return self._median(flat_table[flat] * sign)
        out = torch.empty(self.dimension, device=self.device, dtype=self.table.dtype)
        for start in self._chunks():
            stop = min(start + self.chunk_size, self.dimension)
            flat, sign = self._chunk_hashes(start, stop)
            sign *= flat_table[flat]
            out[start:stop] = self._median(sign)
        return out

    def l2_estimate(self) -> torch.Tensor:
        """Estimate of ‖x‖₂: ``sqrt(median_j Σ_b S[j, b]²)`` (a 0-d tensor)."""
        return self._median(self.table.pow(2).sum(dim=1, keepdim=True)).sqrt().squeeze()

    def top_k(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The k coordinates with the largest estimated magnitude: (indices (k,) ascending, estimates (k,)).

        Queries every coordinate, then takes the top k of ``|estimate|`` (what both papers do; §5.2).
        """
        if not 1 <= k <= self.dimension:
            raise ValueError(f"k must be in [1, {self.dimension}], got {k}")
        estimates = self.estimate()
        indices = estimates.abs().topk(k, sorted=False).indices.sort().values
        return indices, estimates[indices]

    def heavy_hitters(self, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Coordinates with ``|estimate| >= threshold · l2_estimate()``: (indices ascending, estimates)."""
        if not threshold > 0:
            raise ValueError(f"threshold must be > 0, got {threshold}")
        estimates = self.estimate()
        indices = (estimates.abs() >= threshold * self.l2_estimate()).nonzero().view(-1)
        return indices, estimates[indices]

    def unsketch(self, k: int) -> torch.Tensor:
        """Dense (d,) vector holding the top-k estimates and zeros elsewhere (CSVec's ``unSketch(k)``)."""
        indices, values = self.top_k(k)
        dense = torch.zeros(self.dimension, device=self.device, dtype=self.table.dtype)
        dense[indices] = values
        return dense

    def zero_buckets_(self, indices: torch.Tensor) -> CountSketch:
        """Zero, in every row, the buckets that coordinates ``indices`` (n,) hash to."""
        flat, _ = self.hashes(indices)
        self.table.view(-1)[flat.reshape(-1)] = 0
        return self

    @property
    def hash_bytes(self) -> int:
        """Bytes held by precomputed hashes (0 when hashing on the fly)."""
        if self._cache is None:
            return 0
        return sum(t.numel() * t.element_size() for t in self._cache)

    def __repr__(self) -> str:
        return (f"CountSketch(dimension={self.dimension}, rows={self.rows}, cols={self.cols}, "
                f"seed={self.seed}, device={self.device})")
