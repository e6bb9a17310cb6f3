"""STDP weight changes of one post-synaptic neuron (or a few rows at once), as pure functions.

Causality: input ``i`` is causal for neuron ``j`` when ``t_i <= t_j``; a silent input (t_i = 1)
is non-causal unless the neuron is silent too (then every input is causal).
"""

from __future__ import annotations

import torch


def error_modulated_additive(input_times: torch.Tensor, post_times: torch.Tensor, errors: torch.Tensor,
                             a_plus: float | torch.Tensor, a_minus: float | torch.Tensor) -> torch.Tensor:
    """Additive STDP scaled by a temporal error (S2-STDP / SSTDP / R-STDP update).

    For rows ``j`` with error ``e_j``: ``dw_ji = e_j * A+`` for causal inputs and ``e_j * A-`` for
    the others (``A+ > 0``, ``A- < 0``). ``e_j > 0`` (the neuron fired too late) gives STDP; ``e_j < 0``
    gives anti-STDP (the signs flip). ``input_times`` (n_in,), ``post_times`` and ``errors`` (R,);
    the rates are scalars or per row (R,). Returns (R, n_in).
    """
    causal = input_times.unsqueeze(0) <= post_times.unsqueeze(1)
    rates = []
    for rate in (a_plus, a_minus):
        rate = torch.as_tensor(rate, dtype=errors.dtype, device=errors.device)
        rates.append(rate.unsqueeze(1) if rate.dim() == 1 else rate)
    return errors.unsqueeze(1) * torch.where(causal, rates[0], rates[1])


def multiplicative(weights: torch.Tensor, input_times: torch.Tensor, post_time: torch.Tensor | float,
                   a_plus: float, a_minus: float, beta: float) -> torch.Tensor:
    """Multiplicative STDP of the STDP-CSNN (weights in [0, 1]); returns the new, clipped weights.

    ``w + A+ exp(-beta w)`` for causal inputs, ``w - A- exp(-beta (1 - w))`` otherwise (A+, A- > 0).
    """
    causal = input_times <= post_time
    new = torch.where(causal, weights + a_plus * torch.exp(-beta * weights),
                      weights - a_minus * torch.exp(-beta * (1.0 - weights)))
    return new.clamp_(0.0, 1.0)
