"""The event-driven single-spike IF layer against a brute-force fine-time-step simulation."""

from __future__ import annotations

import pytest
import torch

from creditlab.spiking.coding import SILENT, latency_code
from creditlab.spiking.event_layer import first_spikes, first_to_fire

GRID = 64  # time steps of the brute-force simulation; inputs sit on the grid, so ties are common


def brute_force(times: torch.Tensor, weights: torch.Tensor, thresholds: torch.Tensor):
    """Step through t = 0, 1/GRID, ..., integrating every spike of a step before testing V > theta."""
    batch, n = times.shape[0], weights.shape[0]
    out_t = torch.full((batch, n), SILENT, dtype=torch.float64)
    out_v = torch.zeros(batch, n, dtype=torch.float64)
    for b in range(batch):
        v = torch.zeros(n, dtype=torch.float64)
        fired = torch.zeros(n, dtype=torch.bool)
        for step in range(GRID):
            t = step / GRID
            arriving = times[b] == t
            if not arriving.any():
                continue
            v = v + weights[:, arriving].sum(1)
            new = (v > thresholds) & ~fired
            out_t[b, new], out_v[b, new] = t, v[new]
            fired |= new
        out_v[b, ~fired] = v[~fired]
    return out_t, out_v


def random_case(seed: int, batch: int = 6, n_in: int = 12, n: int = 5, signed: bool = False):
    g = torch.Generator().manual_seed(seed)
    steps = torch.randint(0, GRID // 4, (batch, n_in), generator=g)  # few distinct times: many ties
    times = (steps * 4 / GRID).double()
    times[torch.rand(batch, n_in, generator=g) < 0.3] = SILENT
    # dyadic weights and thresholds: every partial sum is exact, so equality cases are real ties
    weights = torch.randint(-2 if signed else 0, 5, (n, n_in), generator=g).double() / 4
    thresholds = torch.randint(1, 8, (n,), generator=g).double() / 4
    return times, weights, thresholds


@pytest.mark.parametrize("time_chunk", [None, 1, 3])
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_matches_brute_force_simulation(seed: int, signed: bool, time_chunk: int | None) -> None:
    # time_chunk: spikes integrated at a time, stopping once every neuron fired (chunks split tie groups)
    times, weights, thresholds = random_case(seed, signed=signed)
    got = first_spikes(times, weights, thresholds, time_chunk=time_chunk)
    want_t, want_v = brute_force(times, weights, thresholds)
    assert torch.equal(got.times, want_t)
    assert torch.equal(got.potentials, want_v)
    # the same winners (earliest spike, ties by the larger V, then the lower index)
    for b in range(times.shape[0]):
        order = sorted(range(weights.shape[0]), key=lambda j: (want_t[b, j].item(), -want_v[b, j].item(), j))
        assert first_to_fire(got.times[b], got.potentials[b]).item() == order[0]


def test_threshold_is_strict_and_simultaneous_spikes_integrate_together() -> None:
    times = torch.tensor([[0.25, 0.25, 0.5, SILENT]], dtype=torch.float64)
    weights = torch.tensor([[0.5, 0.5, 0.5, 9.0],   # V = 1.0 at t = .25 (== theta: no spike), 1.5 at .5
                            [0.75, 0.5, 0.0, 0.0]], dtype=torch.float64)  # 1.25 at .25 only after both
    got = first_spikes(times, weights, torch.tensor([1.0, 1.0], dtype=torch.float64))
    assert got.times.tolist() == [[0.5, 0.25]]
    assert got.potentials.tolist() == [[1.5, 1.25]]  # no reset; the silent input never arrives


def test_tie_broken_by_potential() -> None:
    times = torch.tensor([0.3, 0.3])
    potentials = torch.tensor([2.0, 3.0])
    assert first_to_fire(times, potentials).item() == 1


def test_batches_are_chunked_without_changing_results() -> None:
    times, weights, thresholds = random_case(11, batch=9)
    whole = first_spikes(times, weights, thresholds)
    chunked = first_spikes(times, weights, thresholds, max_elements=weights.shape[0] * times.shape[1])
    assert torch.equal(whole.times, chunked.times) and torch.equal(whole.potentials, chunked.potentials)


def test_latency_code_and_refusal() -> None:
    assert latency_code(torch.tensor([0.0, 0.25, 1.0])).tolist() == [SILENT, 0.75, 0.0]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        latency_code(torch.tensor([1.5]))
