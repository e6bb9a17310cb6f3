"""Spike-based alignment learning (SAL; Gierlich, Baumbach, Kungl, Max & Petrovici, arXiv 2503.02642).

SAL is pair-based STDP on each synapse of a reciprocal pair whose window *depresses causal pairs
and potentiates anti-causal pairs* with equal amplitude and time constant. For the synapse j -> i
(presynaptic j, postsynaptic i, weight ``W[i, j]``) and a spike pair with lag ``dt = t_i - t_j``::

    dW[i, j] = eta * a_ij * ( -k(dt)   if dt > 0   (causal: pre before post, depressed)
                              +k(-dt)  if dt < 0   (anti-causal: post before pre, potentiated)
                               0       if dt = 0 )                         (SAL window)

    k(s) = 1 - s / tau for s < tau, else 0     (triangular; tau = t_ref = 50, sampling network)
    k(s) = exp(-s / tau)                        (exponential; tau = t_ref = 10, microcircuit, deep net)

with ``a_ij = 1 + eps_ij`` the synapse's own amplitude (plasticity noise, eps ~ N(0, sigma_stdp)
truncated at +-1.5 sigma_stdp, the same eps for both lobes of one synapse). Why it symmetrizes: if
``W[i, j] > W[j, i]``, j's spikes cause i's more often than the reverse, so the pairs (j then i)
outnumber (i then j); for ``W[i, j]`` those are causal (depressed), for ``W[j, i]`` anti-causal
(potentiated). Without plasticity noise the two updates of a reciprocal pair within one population
are exactly opposite (each pair is causal for one synapse and anti-causal for the other), so
``W[i, j] + W[j, i]`` is conserved and only the asymmetry ``W[i, j] - W[j, i]`` changes.

:class:`PairSTDP` accumulates the causal and anti-causal pair sums once; any window is a linear
combination of them: SAL is ``update(-1, +1)`` (:func:`sal_update`); the sampling network's
learning rule (a co-activation estimate) is the symmetric ``update(+1, +1)``
(:func:`symmetric_update`), next to SAL on the same spikes. A pair at ``dt = 0``
is weighted by the mean of the two lobes, ``(a_causal + a_anticausal) / 2 * k(0)`` (zero for SAL,
``k(0)`` once for the symmetric window).

Pairing (``pairing``):

- ``"nearest"``: each spike pairs with the partner neuron's most recent earlier spike (symmetric
  nearest-neighbour; the authors' ``num_last_spikes = 1`` / ``n_last_spks = 1``);
- ``"all"``: each spike pairs with every earlier partner spike at a lag below ``support`` steps
  (lags 0 .. support - 1: the window's length for the triangle, whose weight is 0 from lag tau on;
  ``buffer * tau`` taps for the exponential, as the authors' SALNet kernel ``exp(-s / t_ref)`` for
  s = 0 .. 2 t_ref - 1, a buffer of 2 t_ref: lags 0-19 for t_ref 10).

Shapes: spikes are ``(runs, chains, neurons)``; the accumulated ``total`` is ``(runs, post, pre)``
(summed over chains).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from creditlab.spiking.stochastic import check_time_constant

PAIRINGS = ("nearest", "all")


@dataclass(frozen=True)
class TriangularWindow:
    """k(s) = max(0, 1 - s / tau) for lags s >= 0 (support: tau steps)."""

    tau: int

    def __post_init__(self) -> None:
        check_time_constant("window tau", self.tau)

    def __call__(self, lag: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return (1.0 - lag / self.tau).clamp(min=0.0)

    @property
    def support(self) -> int:
        """All-pairs pairing counts lags < support (the triangle's weight is 0 from lag tau on)."""
        return self.tau


@dataclass(frozen=True)
class ExponentialWindow:
    """k(s) = exp(-s / tau) for lags s >= 0; all-pairs pairing keeps its first ``buffer * tau`` taps."""

    tau: int
    buffer: float = 2.0

    def __post_init__(self) -> None:
        check_time_constant("window tau", self.tau)
        if not self.buffer > 0:
            raise ValueError(f"exponential window buffer must be > 0 (in units of tau), got {self.buffer}")

    def __call__(self, lag: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return torch.exp(-lag / self.tau)

    @property
    def support(self) -> int:
        """Taps of the all-pairs kernel: lags 0 .. support - 1 are paired (the authors' 2 t_ref taps)."""
        return max(1, math.ceil(self.buffer * self.tau))


Window = TriangularWindow | ExponentialWindow


class PairSTDP:
    """Accumulates the pair sums of a pair-based STDP window for synapses pre j -> post i.

    ``observe(pre, post)`` is called once per step with that step's spikes (bool, (runs, chains, n));
    it adds, per synapse and summed over chains, the causal lobe ``Y_c = sum post_now x (pre trace +
    k(0)/2 pre_now)`` and the anti-causal lobe ``Y_a = sum (post trace + k(0)/2 post_now) x pre_now``
    (the trace: the window summed over the earlier spikes the pairing admits). Any window with causal
    amplitude ``a_c`` and anti-causal amplitude ``a_a`` is then ``update(a_c, a_a) = a_c Y_c + a_a Y_a``
    (a dt = 0 pair gets (a_c + a_a) k(0) / 2), so SAL (-1, +1) and the symmetric rule (+1, +1)
    come from one pass over the same spikes. ``recurrent=True`` (pre and post are one population,
    ``observe(spikes, spikes)``) uses ``Y_a = Y_c^T`` and accumulates one outer product per step.
    ``reset()`` zeroes the sums and keeps the spike history, so a long simulation can be cut into
    learning iterations. Plasticity noise is not included: multiply by per-synapse amplitudes.
    """

    def __init__(self, window: Window, pairing: str = "nearest", recurrent: bool = False) -> None:
        if pairing not in PAIRINGS:
            raise ValueError(f"unknown pairing {pairing!r}; valid: {', '.join(PAIRINGS)}")
        self.window, self.pairing, self.recurrent = window, pairing, recurrent
        self.half_zero = 0.5 * float(window(torch.tensor(0.0)))
        self.causal_sum: torch.Tensor | None = None
        self.anticausal_sum: torch.Tensor | None = None
        self._pre_history: torch.Tensor | None = None
        self._post_history: torch.Tensor | None = None
        self._weights: torch.Tensor | None = None

    def reset(self) -> None:
        """Zero the accumulated pair sums (the spike history is kept)."""
        for total in (self.causal_sum, self.anticausal_sum):
            if total is not None:
                total.zero_()

    def update(self, causal: float, anticausal: float) -> torch.Tensor:
        """The summed window with these lobe amplitudes, (runs, post, pre): a_c Y_c + a_a Y_a."""
        for name, value in (("causal", causal), ("anticausal", anticausal)):
            if not math.isfinite(value):
                raise ValueError(f"{name} amplitude must be finite, got {value}")
        if self.causal_sum is None:
            raise RuntimeError("PairSTDP.update before any observe(): no spikes seen yet")
        anti = self.causal_sum.transpose(1, 2) if self.recurrent else self.anticausal_sum
        return causal * self.causal_sum + anticausal * anti

    def _start(self, pre: torch.Tensor, post: torch.Tensor) -> None:
        runs, _, n_pre = pre.shape
        self.causal_sum = torch.zeros(runs, post.shape[2], n_pre, device=pre.device)
        self.anticausal_sum = None if self.recurrent else torch.zeros_like(self.causal_sum)
        if self.pairing == "nearest":  # lag since the last spike, as seen at the next step (inf: none yet)
            self._pre_history = torch.full(pre.shape, math.inf, device=pre.device)
            self._post_history = None if self.recurrent else torch.full(post.shape, math.inf, device=post.device)
        else:  # ring buffers of the earlier steps at lags 1 .. support - 1, newest at index 0
            support = self.window.support
            depth = max(1, support - 1)  # one (zero-weighted) slot when only lag 0 pairs
            self._pre_history = torch.zeros((depth, *pre.shape), device=pre.device)
            self._post_history = None if self.recurrent else torch.zeros((depth, *post.shape),
                                                                         device=post.device)
            lags = torch.arange(1, depth + 1, dtype=torch.float32, device=pre.device)
            self._weights = self.window(lags) * (lags < support)

    def _trace(self, history: torch.Tensor) -> torch.Tensor:
        """Window summed over the earlier spikes each neuron pairs with: shape (runs, chains, n)."""
        if self.pairing == "nearest":
            return self.window(history)  # inf lag -> 0 for both windows
        return torch.tensordot(self._weights, history, dims=1)  # type: ignore[arg-type]

    @staticmethod
    def _outer_add(total: torch.Tensor, post: torch.Tensor, pre: torch.Tensor) -> None:
        """total[r] += sum over chains of post[r, c]^T pre[r, c]."""
        if post.shape[1] == 1:  # one chain: a broadcast outer product (batched tiny matmuls are slow)
            total.addcmul_(post.transpose(1, 2), pre)
        else:
            total.baddbmm_(post.transpose(1, 2), pre)

    def observe(self, pre: torch.Tensor, post: torch.Tensor) -> None:
        """Add the pairs this step's spikes form with earlier ones and with each other."""
        if pre.dim() != 3 or post.dim() != 3 or pre.shape[:2] != post.shape[:2]:
            raise ValueError(f"spikes must be (runs, chains, neurons) with equal runs and chains, got "
                             f"pre {tuple(pre.shape)} and post {tuple(post.shape)}")
        if self.recurrent and pre.shape != post.shape:
            raise ValueError("a recurrent PairSTDP observes one population: pre and post spikes must be the same")
        if self.causal_sum is None:
            self._start(pre, post)
        pre_f = pre.float()
        post_f = pre_f if self.recurrent else post.float()
        pre_part = self._trace(self._pre_history).add_(pre_f, alpha=self.half_zero)
        self._outer_add(self.causal_sum, post_f, pre_part)
        if not self.recurrent:
            post_part = self._trace(self._post_history).add_(post_f, alpha=self.half_zero)
            self._outer_add(self.anticausal_sum, post_part, pre_f)
        self._advance(self._pre_history, pre)
        if not self.recurrent:
            self._advance(self._post_history, post)

    def _advance(self, history: torch.Tensor, spikes: torch.Tensor) -> None:
        if self.pairing == "nearest":
            history.add_(1.0).masked_fill_(spikes, 1.0)  # lags as seen at the next step
        else:
            history.copy_(torch.roll(history, 1, dims=0))
            history[0] = spikes


def sal_update(pairs: PairSTDP) -> torch.Tensor:
    """The SAL window's summed update: causal pairs depressed (-1), anti-causal potentiated (+1)."""
    return pairs.update(causal=-1.0, anticausal=1.0)


def symmetric_update(pairs: PairSTDP) -> torch.Tensor:
    """The symmetric (+1 / +1) window's sum: a spike-based estimate of pairwise co-activation."""
    return pairs.update(causal=1.0, anticausal=1.0)


def plasticity_amplitudes(shape: tuple[int, ...], sigma: float, generator: torch.Generator,
                          device: str | torch.device = "cpu") -> torch.Tensor:
    """Per-synapse amplitudes 1 + eps, eps ~ N(0, sigma) truncated to +-1.5 sigma (inverse-CDF draw)."""
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"plasticity noise sigma_stdp must be a finite number >= 0, got {sigma}")
    if sigma == 0:
        return torch.ones(shape, device=device)
    low, high = torch.special.ndtr(torch.tensor(-1.5)), torch.special.ndtr(torch.tensor(1.5))
    uniform = low + (high - low) * torch.rand(shape, generator=generator)
    return (1.0 + sigma * torch.special.ndtri(uniform)).to(device)


__all__ = ["PAIRINGS", "ExponentialWindow", "PairSTDP", "TriangularWindow", "Window", "plasticity_amplitudes",
           "sal_update", "symmetric_update"]
