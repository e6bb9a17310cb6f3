"""Count Sketch: recovery of planted heavy hitters, unbiased estimates, linearity, shared hashes."""

from __future__ import annotations

import pytest
import torch

from creditlab.distributed.countsketch import CountSketch
from reducer_reference import ReferenceSketch


def _planted(d: int, heavy: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    vector = 0.01 * torch.randn(d, generator=generator)
    support = torch.randperm(d, generator=generator)[:heavy]
    signs = torch.randn(heavy, generator=generator).sign()
    vector[support] = (2 + torch.rand(heavy, generator=generator)) * signs
    return vector, support.sort().values


def test_hashes_match_the_multiply_add_shift_formula_in_exact_integers():
    sketch = CountSketch(dimension=10**6, rows=3, cols=1000, seed=11)
    indices = torch.tensor([0, 1, 2, 999_999, 123_456])
    flat, sign = sketch.hashes(indices)
    for row in range(3):
        a = int(sketch._multiplier[row]) % 2**64
        b = int(sketch._offset[row]) % 2**64
        for n, i in enumerate(indices.tolist()):
            z = ((a * i + b) % 2**64) >> 32  # Dietzfelbinger's strongly universal hash, unbounded ints
            assert int(flat[row, n]) == row * 1000 + (z * 1000 >> 32)
            assert float(sign[row, n]) == (1.0 if z % 2 == 0 else -1.0)


def test_table_and_estimates_equal_the_definition_computed_by_hand():
    d, rows, cols = 300, 5, 40
    sketch = CountSketch(d, rows, cols, seed=9, chunk_size=64)  # several chunks
    by_hand = ReferenceSketch(d, rows, cols, sketch._multiplier.view(-1).tolist(), sketch._offset.view(-1).tolist())
    vector = torch.round(torch.randn(d, generator=torch.Generator().manual_seed(3)) * 256) / 256  # exact sums
    sketch.accumulate_vector(vector)
    assert torch.equal(sketch.table, by_hand.sketch(vector))  # S[j, h_j(i)] += s_j(i)·x_i, Python-int hashes
    assert torch.equal(sketch.estimate(), by_hand.estimate(sketch.table))  # median_j s_j(i)·S[j, h_j(i)]
    indices, values = sketch.top_k(10)
    magnitude = by_hand.estimate(sketch.table).abs()
    assert magnitude[indices].min() >= magnitude[[i for i in range(d) if i not in set(indices.tolist())]].max()


def test_planted_heavy_hitters_are_recovered_with_their_values():
    # A light coordinate outranks a heavy one only if it shares a bucket with some heavy coordinate in
    # >= 3 of 5 rows: expected count d·C(5,3)·(heavy/cols)^3 = 0.016 here.
    vector, support = _planted(d=200_000, heavy=20, seed=0)
    sketch = CountSketch(200_000, rows=5, cols=10_000, seed=3).accumulate_vector(vector)
    indices, values = sketch.top_k(20)
    assert torch.equal(indices, support)
    # a point query errs by about ||tail||_2 / sqrt(c) = 0.01·sqrt(2e5/1e4) = 0.045 per row
    assert (values - vector[indices]).abs().max() < 0.2
    hitters, _ = sketch.heavy_hitters(threshold=1.5 / float(vector.norm()))
    assert torch.equal(hitters, support)
    dense = sketch.unsketch(20)
    assert torch.equal(dense.nonzero().view(-1), support)


def test_row_estimate_is_unbiased_with_variance_at_most_norm_over_cols():
    d, cols, trials = 500, 25, 400
    vector = torch.randn(d, generator=torch.Generator().manual_seed(1))
    errors = torch.stack([CountSketch(d, rows=1, cols=cols, seed=s).accumulate_vector(vector).estimate()
                          for s in range(trials)]) - vector
    # per coordinate: variance of one row's estimate is sum_{l != i} x_l^2 / c (pairwise independent hashes)
    variance = (vector.pow(2).sum() - vector.pow(2)) / cols
    z = errors.mean(0) / (variance / trials).sqrt()
    assert z.abs().max() < 5.0
    assert abs(z.mean()) < 4.0 / d**0.5  # mean of d (nearly independent) standard normals
    assert errors.pow(2).mean() < 1.15 * variance.mean()


def test_median_estimate_error_is_centred_on_random_vectors():
    d = 2_000
    vector = torch.randn(d, generator=torch.Generator().manual_seed(2))
    errors = torch.cat([CountSketch(d, rows=5, cols=200, seed=s).accumulate_vector(vector).estimate() - vector
                        for s in range(50)])
    assert abs(errors.mean()) < 4 * errors.std() / errors.numel() ** 0.5


def test_sketch_is_linear_and_hashes_depend_only_on_the_seed():
    generator = torch.Generator().manual_seed(4)
    x, y = torch.randn(5_000, generator=generator), torch.randn(5_000, generator=generator)
    sx = CountSketch(5_000, 3, 300, seed=7).accumulate_vector(x)
    sy = CountSketch(5_000, 3, 300, seed=7).accumulate_vector(y)
    sxy = CountSketch(5_000, 3, 300, seed=7).accumulate_vector(x + y)
    sx += sy
    torch.testing.assert_close(sx.table, sxy.table, atol=1e-5, rtol=0)
    assert not torch.equal(CountSketch(5_000, 3, 300, seed=8).accumulate_vector(x).table,
                           CountSketch(5_000, 3, 300, seed=7).accumulate_vector(x).table)
    with pytest.raises(ValueError, match="different"):
        sx += CountSketch(5_000, 3, 300, seed=8)


def test_chunking_precomputation_and_point_queries_agree():
    vector = torch.randn(10_007, generator=torch.Generator().manual_seed(5))
    reference = CountSketch(10_007, 4, 500, seed=1, chunk_size=10_007).accumulate_vector(vector)
    chunked = CountSketch(10_007, 4, 500, seed=1, chunk_size=999).accumulate_vector(vector)
    cached = CountSketch(10_007, 4, 500, seed=1, precompute_hashes=True).accumulate_vector(vector)
    torch.testing.assert_close(chunked.table, reference.table, atol=1e-5, rtol=0)
    torch.testing.assert_close(cached.table, reference.table, atol=1e-5, rtol=0)
    assert reference.hash_bytes == 0 and cached.hash_bytes == 5 * 4 * 10_007
    some = torch.tensor([0, 17, 10_006, 5_000])
    torch.testing.assert_close(reference.estimate(some), reference.estimate()[some])
    # even rows: mean of the two middle row estimates
    flat, sign = reference.hashes(some)
    rows = (reference.table.view(-1)[flat] * sign).sort(0).values
    torch.testing.assert_close(reference.estimate(some), (rows[1] + rows[2]) / 2)


def test_sparse_accumulation_l2_estimate_and_bucket_zeroing():
    d = 50_000
    vector = torch.randn(d, generator=torch.Generator().manual_seed(6))
    sketch = CountSketch(d, 5, 5_000, seed=2).accumulate_vector(vector)
    assert abs(float(sketch.l2_estimate()) / float(vector.norm()) - 1) < 0.1
    idx = torch.tensor([3, 40_000])
    sparse = CountSketch(d, 5, 5_000, seed=2).accumulate_sparse(idx, vector[idx])
    dense = torch.zeros(d)
    dense[idx] = vector[idx]
    torch.testing.assert_close(sparse.table, CountSketch(d, 5, 5_000, seed=2).accumulate_vector(dense).table)
    buckets = sketch.buckets(idx)
    sketch.zero_buckets_(idx)
    for row in range(5):
        assert (sketch.table[row, buckets[row]] == 0).all()
    assert (sketch.table != 0).sum() >= 5 * 5_000 - 10


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="rows >= 1"):
        CountSketch(10, 0, 5)
    with pytest.raises(ValueError, match="dimension"):
        CountSketch(2**32, 1, 5)
    sketch = CountSketch(10, 1, 5)
    with pytest.raises(ValueError, match=r"shape \(10,\)"):
        sketch.accumulate_vector(torch.zeros(11))
    with pytest.raises(ValueError, match="k must be"):
        sketch.top_k(11)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_sketch_matches_cpu():
    vector = torch.randn(100_000, generator=torch.Generator().manual_seed(7))
    cpu = CountSketch(100_000, 5, 1_000, seed=3).accumulate_vector(vector)
    gpu = CountSketch(100_000, 5, 1_000, seed=3, device="cuda").accumulate_vector(vector.cuda())
    torch.testing.assert_close(gpu.table.cpu(), cpu.table, atol=1e-4, rtol=1e-5)
    assert torch.equal(gpu.top_k(50)[0].cpu(), cpu.top_k(50)[0])


@pytest.mark.parametrize("rows", [3, 4, 5, 7])
def test_median_over_rows_matches_sorting(rows):
    sketch = CountSketch(1_000, rows, 50, seed=0)
    values = torch.randn(rows, 1_000, generator=torch.Generator().manual_seed(rows))
    ordered = values.sort(dim=0).values
    middle = (ordered[(rows - 1) // 2] + ordered[rows // 2]) / 2
    torch.testing.assert_close(sketch._median(values), middle, atol=0, rtol=0)
