"""The Gaussian (central-limit) approximation of a TrueNorth neuron's summed input (Esser et al. 2015).

Input spike ``i`` arrives with probability ``x_i`` and its crossbar bit is set with probability
``c_i``, independently, so the synapse contributes ``s_i`` with probability ``x_i c_i`` (a Bernoulli
term). The neuron's potential in one tick, ``V = sum_i s_i B_i + b``, then has::

    mean      mu     = sum_i x_i c_i s_i + b                    (Esser et al. 2015, eq. 2)
    variance  sigma2 = sum_i x_i c_i (1 - x_i c_i) s_i^2

and, treating V as Gaussian, the spike probability is ``P(V >= theta)``. V takes integer values
(integer weights, integer leak at deployment), so the Gaussian is read with a continuity correction:
``P(V >= theta) ~ 1 - Phi((theta - 1/2 - mu) / sigma)``. A small ``variance_floor`` keeps the
probability smooth (and its gradient finite) for a neuron with (almost) no active inputs.
"""

from __future__ import annotations

import torch


def input_moments(axon_inputs: torch.Tensor, connection_probability: torch.Tensor, synapse_weights: torch.Tensor,
                  leak: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of every neuron's summed input.

    Args:
        axon_inputs: (batch, cores, axons) spike probabilities x.
        connection_probability: (cores, axons, neurons) c.
        synapse_weights: (cores, axons, neurons) s.
        leak: (cores, neurons) b.

    Returns:
        (mean, variance), each (batch, cores, neurons).
    """
    x = axon_inputs.transpose(0, 1)  # (cores, batch, axons): one matmul per core
    cs = connection_probability * synapse_weights
    mean = torch.bmm(x, cs).transpose(0, 1) + leak
    # sum x c (1 - x c) s^2 = sum x (c s^2) - sum x^2 (c s)^2
    variance = torch.bmm(x, cs * synapse_weights) - torch.bmm(x * x, cs * cs)
    return mean, variance.transpose(0, 1).clamp_min(0.0)


def gaussian_tail(mean: torch.Tensor, variance: torch.Tensor, threshold: float, variance_floor: float = 1e-2
                  ) -> torch.Tensor:
    """P(V >= threshold) for integer-valued V ~ N(mean, variance), continuity-corrected."""
    z = (mean - (threshold - 0.5)) / torch.sqrt(2.0 * (variance + variance_floor))
    return 0.5 * torch.erfc(-z)


def spike_probability(axon_inputs: torch.Tensor, connection_probability: torch.Tensor, synapse_weights: torch.Tensor,
                      leak: torch.Tensor, threshold: float, variance_floor: float = 1e-2) -> torch.Tensor:
    """(batch, cores, neurons) probability that each neuron spikes in the tick (see module docstring)."""
    mean, variance = input_moments(axon_inputs, connection_probability, synapse_weights, leak)
    return gaussian_tail(mean, variance, threshold, variance_floor)


