"""SAL and the stochastic neurons: firing rate against sigma(u), batch = loop bit for bit, pair sums
against brute-force pairing, the two-neuron fixed point under noise, plasticity noise, refusals."""

from __future__ import annotations

import math

import pytest
import torch

from creditlab.spiking.sal import (
    ExponentialWindow,
    PairSTDP,
    TriangularWindow,
    plasticity_amplitudes,
    sal_update,
    symmetric_update,
)
from creditlab.spiking.stochastic import RunNoise, StochasticNeurons, spike_probability


def _simulate(weights: torch.Tensor, biases: torch.Tensor, steps: int, seeds: list[int], chains: int = 1,
              t_ref: int = 10, pairs: PairSTDP | None = None) -> torch.Tensor:
    """Spikes (steps, runs, chains, n) of networks u = b + W psp; W (runs, n, n), b (runs, n)."""
    runs, n = biases.shape
    neurons = StochasticNeurons((runs, chains, n), t_ref)
    noise = RunNoise(seeds, (chains, n), block=64)
    out = []
    for _ in range(steps):
        potential = torch.baddbmm(biases.unsqueeze(1), neurons.psp(), weights.transpose(1, 2))
        spikes = neurons.step(potential, noise.next())
        if pairs is not None:
            pairs.observe(spikes, spikes)
        out.append(spikes)
    return torch.stack(out)


def test_state_fraction_and_rate_match_the_neural_sampling_closed_form() -> None:
    potentials = torch.tensor([-2.0, -0.5, 0.0, 1.0, 2.5])
    t_ref, steps, chains = 10, 6000, 40
    n = len(potentials)
    neurons = StochasticNeurons((1, chains, n), t_ref)
    noise = RunNoise([3], (chains, n))
    spikes = states = torch.zeros(n)
    for _ in range(steps):
        spike = neurons.step(potentials.expand(1, chains, n), noise.next())
        spikes = spikes + spike.float().sum((0, 1))
        states = states + neurons.state().sum((0, 1))
    total = steps * chains
    # P(z = 1) = sigma(u): geometric wait (mean 1 + t_ref e^-u) then t_ref refractory steps
    expected_state = torch.sigmoid(potentials)
    assert torch.allclose(states / total, expected_state, atol=0.02)
    assert torch.allclose(spikes / total, expected_state / t_ref, atol=0.002)
    # the per-step probability of a free neuron is sigma(u - ln t_ref)
    assert torch.allclose(spike_probability(potentials, t_ref),
                          1 / (1 + t_ref * torch.exp(-potentials)), atol=1e-6)


def test_a_batch_of_runs_equals_each_run_simulated_alone() -> None:
    gen = torch.Generator().manual_seed(0)
    runs, n = 5, 4
    weights = torch.randn(runs, n, n, generator=gen)
    biases = torch.randn(runs, n, generator=gen)
    seeds = [11, 12, 13, 14, 15]
    batch = _simulate(weights, biases, 300, seeds, chains=2)
    for r in range(runs):
        alone = _simulate(weights[r:r + 1], biases[r:r + 1], 300, [seeds[r]], chains=2)
        assert torch.equal(batch[:, r:r + 1], alone)
    assert batch.float().mean() > 0.01  # something spiked


def _brute_force_pairs(pre: torch.Tensor, post: torch.Tensor, window, pairing: str, causal: float,
                       anticausal: float) -> torch.Tensor:
    """The STDP sum by explicit loops over spike times: (post, pre) for one run and one chain."""
    n_post, n_pre = post.shape[1], pre.shape[1]
    out = torch.zeros(n_post, n_pre, dtype=torch.float64)
    k0 = float(window(torch.tensor(0.0)))
    for i in range(n_post):
        post_times = post[:, i].nonzero().flatten().tolist()
        for j in range(n_pre):
            pre_times = pre[:, j].nonzero().flatten().tolist()
            total = 0.0
            for t in post_times:  # causal lobe: each post spike with earlier pre spikes
                earlier = [s for s in pre_times if s < t]
                if pairing == "nearest":
                    earlier = earlier[-1:]
                else:
                    earlier = [s for s in earlier if t - s < window.support]
                total += causal * sum(float(window(torch.tensor(float(t - s)))) for s in earlier)
            for t in pre_times:  # anti-causal lobe: each pre spike with earlier post spikes
                earlier = [s for s in post_times if s < t]
                if pairing == "nearest":
                    earlier = earlier[-1:]
                else:
                    earlier = [s for s in earlier if t - s < window.support]
                total += anticausal * sum(float(window(torch.tensor(float(t - s)))) for s in earlier)
            same = len(set(pre_times) & set(post_times))
            total += 0.5 * (causal + anticausal) * k0 * same
            out[i, j] = total
    return out


@pytest.mark.parametrize("pairing", ["nearest", "all"])
@pytest.mark.parametrize("window", [TriangularWindow(6), ExponentialWindow(4, buffer=2.0)])
def test_pair_sums_equal_brute_force_pairing(pairing: str, window) -> None:
    gen = torch.Generator().manual_seed(1)
    steps = 120
    pre = torch.rand(steps, 1, 1, 3, generator=gen) < 0.15
    post = torch.rand(steps, 1, 1, 2, generator=gen) < 0.15
    pre[40, 0, 0, 0] = post[40, 0, 0, 0] = True  # a same-step pair
    pairs = PairSTDP(window, pairing)
    for t in range(steps):
        pairs.observe(pre[t], post[t])
    for causal, anticausal in ((-1.0, 1.0), (1.0, 1.0), (0.3, -2.0)):
        expected = _brute_force_pairs(pre[:, 0, 0], post[:, 0, 0], window, pairing, causal, anticausal)
        got = pairs.update(causal, anticausal)[0].double()
        assert torch.allclose(got, expected, atol=1e-4), (causal, anticausal)


def test_recurrent_pairs_equal_the_two_population_form() -> None:
    gen = torch.Generator().manual_seed(2)
    spikes = torch.rand(200, 2, 3, 4, generator=gen) < 0.2
    one, two = PairSTDP(TriangularWindow(5), recurrent=True), PairSTDP(TriangularWindow(5))
    for t in range(200):
        one.observe(spikes[t], spikes[t])
        two.observe(spikes[t], spikes[t])
    assert torch.allclose(sal_update(one), sal_update(two), atol=1e-4)
    assert torch.allclose(symmetric_update(one), symmetric_update(two), atol=1e-4)


def _two_neuron_sal(w12: float, w21: float, sigma_stdp: float, iterations: int = 60, steps: int = 400,
                    runs: int = 16, lr: float = 3.0) -> torch.Tensor:
    """A reciprocal pair (t_ref 10, exponential SAL window tau 10) trained by SAL only; W (runs, 2, 2)."""
    t_ref = 10
    weights = torch.zeros(runs, 2, 2)
    weights[:, 0, 1], weights[:, 1, 0] = w12, w21  # W[i, j]: synapse j -> i
    biases = torch.full((runs, 2), -0.5)
    amplitudes = plasticity_amplitudes((runs, 2, 2), sigma_stdp, torch.Generator().manual_seed(7))
    neurons = StochasticNeurons((runs, 1, 2), t_ref)
    noise = RunNoise(list(range(runs)), (1, 2))
    pairs = PairSTDP(ExponentialWindow(t_ref), "nearest", recurrent=True)
    off_diagonal = 1.0 - torch.eye(2)
    for _ in range(iterations):
        pairs.reset()
        for _ in range(steps):
            potential = torch.baddbmm(biases.unsqueeze(1), neurons.psp(), weights.transpose(1, 2))
            pairs.observe(*(2 * (neurons.step(potential, noise.next()),)))
        weights += lr * amplitudes * sal_update(pairs) * off_diagonal / steps
    return weights


def test_sal_fixed_point_on_a_reciprocal_pair_keeps_the_symmetric_part() -> None:
    start_asymmetry, start_sum = 2.0 - (-1.0), 2.0 + (-1.0)
    clean = _two_neuron_sal(2.0, -1.0, sigma_stdp=0.0)
    asym = clean[:, 0, 1] - clean[:, 1, 0]
    # without plasticity noise every pair is causal for one synapse and anti-causal for the other:
    # the sum is conserved exactly (up to float rounding) and the asymmetry decays
    assert torch.allclose(clean[:, 0, 1] + clean[:, 1, 0], torch.full((16,), start_sum), atol=1e-4)
    assert asym.abs().median() < 0.2 * start_asymmetry
    # with plasticity noise (sigma 0.05) the fixed point moves only a little
    noisy = _two_neuron_sal(2.0, -1.0, sigma_stdp=0.05)
    assert ((noisy[:, 0, 1] + noisy[:, 1, 0]) - start_sum).abs().max() < 0.25
    assert (noisy[:, 0, 1] - noisy[:, 1, 0]).abs().median() < 0.25 * start_asymmetry


def test_sal_on_independent_neurons_has_zero_mean_and_the_symmetric_rule_counts_coincidences() -> None:
    # uncoupled Bernoulli-like trains: E[causal] = E[anti-causal], so SAL's mean update is 0 while the
    # symmetric window's mean is r_i r_j (k(0) + 2 sum_{s>=1} k(s)) per step (all-pairs, triangle tau)
    runs, t_ref, steps = 64, 4, 3000
    neurons = StochasticNeurons((runs, 1, 2), t_ref)
    noise = RunNoise(list(range(runs)), (1, 2))
    window = TriangularWindow(8)
    pairs = PairSTDP(window, "all", recurrent=True)
    potential = torch.tensor([0.0, 1.0]).expand(runs, 1, 2)
    for _ in range(steps):
        spikes = neurons.step(potential, noise.next())
        pairs.observe(spikes, spikes)
    sal = sal_update(pairs)[:, 0, 1] / steps
    assert sal.mean().abs() < 3 * sal.std() / math.sqrt(runs) + 1e-6
    rates = torch.sigmoid(torch.tensor([0.0, 1.0])) / t_ref
    window_sum = 1.0 + 2 * sum(1 - s / 8 for s in range(1, 8))
    symmetric = symmetric_update(pairs)[:, 0, 1].mean() / steps
    # refractoriness correlates each train with itself, not across neurons: the product form holds
    assert abs(float(symmetric) / float(rates[0] * rates[1] * window_sum) - 1) < 0.08


def test_plasticity_amplitudes_are_truncated_normal() -> None:
    amplitudes = plasticity_amplitudes((200_000,), 0.04, torch.Generator().manual_seed(0))
    eps = amplitudes - 1
    assert eps.abs().max() <= 1.5 * 0.04 + 1e-6
    # sd of N(0, 1) truncated at +-1.5: sqrt(1 - 3 phi(1.5) / (2 Phi(1.5) - 1)) = 0.7375
    phi = math.exp(-1.125) / math.sqrt(2 * math.pi)
    sd = math.sqrt(1 - 3 * phi / (2 * 0.5 * (1 + math.erf(1.5 / math.sqrt(2))) - 1))
    assert abs(float(eps.std()) / 0.04 - sd) < 0.01 and abs(float(eps.mean())) < 5e-4
    assert torch.equal(plasticity_amplitudes((3,), 0.0, torch.Generator()), torch.ones(3))


def test_bad_settings_are_refused_with_what_is_valid() -> None:
    with pytest.raises(ValueError, match="t_ref must be an integer number of time steps >= 1"):
        StochasticNeurons((1, 1, 2), 0)
    with pytest.raises(ValueError, match=r"\(runs, chains, neurons\)"):
        StochasticNeurons((2, 3), 5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown pairing 'first'; valid: nearest, all"):
        PairSTDP(TriangularWindow(5), "first")
    with pytest.raises(ValueError, match="window tau must be"):
        TriangularWindow(0)
    with pytest.raises(ValueError, match="sigma_stdp must be a finite number >= 0"):
        plasticity_amplitudes((2,), -0.1, torch.Generator())
    with pytest.raises(ValueError, match="at least one run seed"):
        RunNoise([], (1, 2))
    pairs = PairSTDP(TriangularWindow(5), recurrent=True)
    with pytest.raises(RuntimeError, match="before any observe"):
        sal_update(pairs)
    with pytest.raises(ValueError, match="must be the same"):
        pairs.observe(torch.zeros(1, 1, 2, dtype=torch.bool), torch.zeros(1, 1, 3, dtype=torch.bool))


def test_the_exponential_all_pairs_kernel_pairs_lags_0_to_19_as_the_authors_2_t_ref_taps() -> None:
    # SALNet's kernel exp(-s / t_ref) has 2 t_ref taps, s = 0 .. 19 for t_ref 10: a pre spike at step 0
    # pairs with a post spike 19 steps later (weight e^-1.9) and not with one 20 steps later
    window = ExponentialWindow(10, buffer=2.0)
    for lag, expected in ((19, math.exp(-1.9)), (20, 0.0)):
        pairs = PairSTDP(window, "all")
        for t in range(lag + 1):
            pre = torch.tensor([[[t == 0]]])
            post = torch.tensor([[[t == lag]]])
            pairs.observe(pre, post)
        assert float(pairs.update(1.0, 0.0)[0, 0, 0]) == pytest.approx(expected, abs=1e-6), lag


@pytest.mark.parametrize(("refractory", "interval"), [(None, 10), (11, 11)])
def test_a_saturated_neuron_spikes_every_refractory_steps(refractory, interval) -> None:
    # p(spike) = sigma(u - ln t_ref) ~ 1 at u = 60: a free neuron always fires, so the interspike
    # interval is the refractory period: t_ref by default, t_ref + 1 as in the SAL authors' SALNet
    neurons = StochasticNeurons((1, 1, 1), 10, refractory=refractory)
    noise = RunNoise([0], (1, 1))
    times = [t for t in range(60) if neurons.step(torch.full((1, 1, 1), 60.0), noise.next()).item()]
    assert times == list(range(0, 60, interval))
