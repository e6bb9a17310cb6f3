"""The event-driven single-spike integrate-and-fire layer (TTFS), vectorized over a batch.

Neuron ``j`` integrates ``V_j(t) = sum_i w_ji [t_i <= t]`` over the input spikes (silent inputs,
``t_i = 1``, never arrive). All input spikes sharing a timestamp are integrated before the threshold
test; the neuron fires once, at the first input timestamp where ``V_j > theta_j`` (strict); there is
no reset, and the potential at firing is kept to break ties in the decision.

No time grid: per sample the input times are sorted once, the weights gathered in that order and
summed cumulatively; the potential is tested only at the last spike of each timestamp group, and the
first crossing gives the spike time. Work is (#input spikes) x (#neurons), as in an event-driven
simulator, and every sample of a batch is simulated at once (chunked to bound memory), on any device.

Departure from the authors' Numba loop (``spikenn/_impl.py::forward_fc``): there the very last
input spike of a sample is integrated after the last threshold test, so it can never make a neuron
fire; here every timestamp group, the last included, is tested.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from creditlab.spiking.coding import SILENT

#: elements of the (chunk, spikes, neurons) cumulative-sum tensor kept in memory at once
MAX_ELEMENTS = 1 << 24


@dataclass
class SortedInputs:
    """Input spikes of a batch in time order (independent of the weights, so computed once).

    ``order`` (B, K): input indices by increasing time, K = the most active inputs of any sample;
    ``times`` (B, K): their times; ``active`` (B, K): a real spike (not padding);
    ``group_end`` (B, K): the last spike of its timestamp group (where the threshold is tested).
    """

    order: torch.Tensor
    times: torch.Tensor
    active: torch.Tensor
    group_end: torch.Tensor


@dataclass
class FirstSpikes:
    """Output of the layer: ``times`` (B, N), ``SILENT`` for neurons that never fire, and
    ``potentials`` (B, N): V at the spike (the final V for silent neurons)."""

    times: torch.Tensor
    potentials: torch.Tensor


def sort_inputs(input_times: torch.Tensor) -> SortedInputs:
    """Sort a batch of input spike times ``(B, n_in)`` into :class:`SortedInputs`."""
    times, order = input_times.sort(dim=1, stable=True)
    active = times < SILENT
    k = int(active.sum(1).max()) if active.numel() else 0
    times, order, active = times[:, :k], order[:, :k], active[:, :k]
    group_end = torch.ones_like(active)
    if k > 1:
        group_end[:, :-1] = times[:, 1:] != times[:, :-1]
    return SortedInputs(order, times, active, group_end & active)


def first_spikes(input_times: torch.Tensor | SortedInputs, weights: torch.Tensor, thresholds: torch.Tensor,
                 max_elements: int = MAX_ELEMENTS) -> FirstSpikes:
    """First spike times and potentials of IF neurons ``weights`` (N, n_in) with ``thresholds``
    (N,) or per sample (B, N), for input spike times (B, n_in) in [0, 1] (or pre-sorted).

    With nonnegative weights the potential only rises, so the first crossing is found by binary
    search (``searchsorted``) in the cumulative sums; otherwise every group end is tested.
    """
    inputs = input_times if isinstance(input_times, SortedInputs) else sort_inputs(input_times)
    batch, k = inputs.times.shape
    n, n_in = weights.shape
    dtype, device = weights.dtype, weights.device
    if k == 0:
        zeros = torch.zeros(batch, n, dtype=dtype, device=device)
        return FirstSpikes(torch.full_like(zeros, SILENT), zeros)
    thr = thresholds if thresholds.dim() == 2 else thresholds.unsqueeze(0).expand(batch, n)
    padded = torch.cat([weights, weights.new_zeros(n, 1)], 1)  # padding spikes read a zero weight
    order = torch.where(inputs.active, inputs.order, torch.full_like(inputs.order, n_in))
    monotone = bool((weights >= 0).all())
    if monotone:  # index of the group end at or after each position
        index = torch.arange(k, device=device).expand(batch, k)
        ends = torch.where(inputs.group_end, index, torch.full_like(index, k - 1))
        next_end = ends.flip(1).cummin(1).values.flip(1)
    chunk = max(1, max_elements // max(1, k * n))
    out_t, out_v = [], []
    for start in range(0, batch, chunk):
        sl = slice(start, start + chunk)
        b = order[sl].shape[0]
        potential = padded.index_select(1, order[sl].reshape(-1)).view(n, b, k).cumsum(2)  # (N, b, K)
        thr_c = thr[sl].t().unsqueeze(-1).contiguous()
        if monotone:
            position = torch.searchsorted(potential, thr_c, right=True)  # first index with V > theta
            fired = position.squeeze(-1) < k
            first = next_end[sl].unsqueeze(0).expand(n, b, k).gather(2, position.clamp_(max=k - 1))
        else:
            cross = (potential > thr_c) & inputs.group_end[sl].unsqueeze(0)
            fired = cross.any(2)
            first = cross.to(torch.uint8).argmax(2, keepdim=True)
        t = inputs.times[sl].unsqueeze(0).expand(n, b, k).gather(2, first).squeeze(-1)
        v_fire = potential.gather(2, first).squeeze(-1)
        out_t.append(torch.where(fired, t.to(dtype), torch.full_like(v_fire, SILENT)).t())
        out_v.append(torch.where(fired, v_fire, potential[..., -1]).t())
    return FirstSpikes(torch.cat(out_t), torch.cat(out_v))


def first_to_fire(times: torch.Tensor, potentials: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Index of the winner along the last dim: the earliest spike, ties broken by the larger
    potential, then by the lower index. ``mask`` (same shape, bool) restricts the candidates."""
    big = torch.finfo(times.dtype).max
    t = times if mask is None else torch.where(mask, times, torch.full_like(times, big))
    earliest = t.min(-1, keepdim=True).values
    candidates = t == earliest
    if mask is not None:
        candidates &= mask
    score = torch.where(candidates, potentials, torch.full_like(potentials, -big))
    return score.argmax(-1)
