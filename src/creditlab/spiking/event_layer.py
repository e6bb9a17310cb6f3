"""The event-driven single-spike integrate-and-fire layer (TTFS), vectorized over a batch.

Neuron ``j`` integrates ``V_j(t) = sum_i w_ji [t_i <= t]`` over the input spikes (silent inputs,
``t_i = 1``, never arrive). All input spikes sharing a timestamp are integrated before the threshold
test; the neuron fires once, at the first input timestamp where ``V_j > theta_j`` (strict); there is
no reset, and the potential at firing is kept to break ties in the decision.

No time grid: per sample the input times are sorted once, the weights gathered in that order and
summed cumulatively; the potential is tested only at the last spike of each timestamp group, and the
first crossing gives the spike time. Work is (#input spikes) x (#neurons), as in an event-driven
simulator (optionally cut short in time chunks once every neuron has fired), and every sample of a
batch is simulated at once (chunked to bound memory), on any device.

Departure from the authors' Numba loop (``spikenn/_impl.py::forward_fc``): there the very last
input spike of a sample is integrated after the last threshold test, so it can never make a neuron
fire; here every timestamp group, the last included, is tested.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from creditlab.spiking.coding import SILENT, check_spike_times

#: elements of the (neurons, chunk, spikes) cumulative-sum tensor kept in memory at once
MAX_ELEMENTS = 1 << 24


@dataclass
class SortedInputs:
    """Input spikes of a batch in time order (independent of the weights, so computed once).

    ``order`` (B, K): input indices by increasing time, K = the most active inputs of any sample
    (positions past a sample's ``count`` are padding: silent inputs, never integrated);
    ``times`` (B, K): their times; ``group_end`` (B, K): the last spike of its timestamp group (where
    the threshold is tested); ``next_end`` (B, K): the group end at or after each position;
    ``count`` (B,): the number of input spikes of each sample.
    """

    order: torch.Tensor
    times: torch.Tensor
    group_end: torch.Tensor
    next_end: torch.Tensor
    count: torch.Tensor

    def row(self, b: int, count: int | None = None) -> SortedInputs:
        """Sample ``b`` alone (views, no copy), cut to its ``count`` spikes when given."""
        k = self.order.shape[1] if count is None else count
        return SortedInputs(self.order[b:b + 1, :k], self.times[b:b + 1, :k], self.group_end[b:b + 1, :k],
                            self.next_end[b:b + 1, :k], self.count[b:b + 1])


@dataclass
class FirstSpikes:
    """Output of the layer: ``times`` (B, N), ``SILENT`` for neurons that never fire, and
    ``potentials`` (B, N): V at the spike (the final V for silent neurons)."""

    times: torch.Tensor
    potentials: torch.Tensor


def sort_inputs(input_times: torch.Tensor) -> SortedInputs:
    """Sort a batch of input spike times ``(B, n_in)`` into :class:`SortedInputs`.

    Spikes sharing a timestamp may come in any order (they are integrated together). On CPU the
    order comes from numpy's vectorized quicksort (several times faster than torch's sort there).
    """
    count = (input_times < SILENT).sum(1)
    k = int(count.max()) if input_times.numel() else 0
    if input_times.device.type == "cpu":
        order = torch.from_numpy(np.argsort(input_times.detach().numpy(), axis=1)[:, :k])
        times = input_times.gather(1, order)
    else:
        times, order = input_times.sort(dim=1)
        times, order = times[:, :k], order[:, :k]
    active = times < SILENT
    group_end = torch.ones_like(active)
    if k > 1:
        group_end[:, :-1] = times[:, 1:] != times[:, :-1]
    group_end &= active
    index = torch.arange(k, device=times.device).expand_as(order)
    ends = torch.where(group_end, index, torch.full_like(index, max(k - 1, 0)))
    next_end = ends.flip(1).cummin(1).values.flip(1)
    return SortedInputs(order, times, group_end, next_end, count)


def first_spikes(input_times: torch.Tensor | SortedInputs, weights: torch.Tensor, thresholds: torch.Tensor,
                 max_elements: int = MAX_ELEMENTS, monotone: bool | None = None,
                 time_chunk: int | None = None) -> FirstSpikes:
    """First spike times and potentials of IF neurons ``weights`` (N, n_in) with ``thresholds``
    (N,) or per sample (B, N), for input spike times (B, n_in) in [0, 1] (or pre-sorted).

    Samples are simulated together (``max_elements`` bounds the potentials held at once). With
    nonnegative weights (``monotone``; checked when None) the potential only rises, so the first
    crossing is the number of positions at or below the threshold; otherwise every group end is
    tested. ``time_chunk``: integrate that many spikes at a time and stop once every neuron fired.
    Dense float32 inputs on a CPU go to the compiled kernel when numba is installed (same results;
    :mod:`creditlab.spiking.kernels`), which ignores ``max_elements``, ``monotone`` and ``time_chunk``.
    """
    if not isinstance(input_times, SortedInputs) and uses_compiled_kernel(input_times, weights):
        return _first_spikes_compiled(input_times, weights, thresholds)
    inputs = input_times if isinstance(input_times, SortedInputs) else sort_inputs(input_times)
    batch, k = inputs.times.shape
    n = weights.shape[0]
    dtype, device = weights.dtype, weights.device
    out_t = torch.full((batch, n), SILENT, dtype=dtype, device=device)
    out_v = torch.zeros(batch, n, dtype=dtype, device=device)
    if k == 0 or batch == 0:
        return FirstSpikes(out_t, out_v)
    if monotone is None:
        monotone = bool((weights >= 0).all())
    thr = thresholds if thresholds.dim() == 2 else thresholds.unsqueeze(0).expand(batch, n)
    step = k if time_chunk is None else max(1, min(k, time_chunk))
    rows = max(1, max_elements // max(1, step * n))
    for start in range(0, batch, rows):
        sl = slice(start, start + rows)
        part = SortedInputs(inputs.order[sl], inputs.times[sl], inputs.group_end[sl], inputs.next_end[sl],
                            inputs.count[sl])
        t, v = _simulate(part, weights, thr[sl], monotone, step)
        out_t[sl], out_v[sl] = t.t(), v.t()
    return FirstSpikes(out_t, out_v)


def uses_compiled_kernel(input_times: torch.Tensor, weights: torch.Tensor) -> bool:
    """True when the compiled CPU kernel runs this layer (:mod:`creditlab.spiking.kernels`)."""
    if input_times.device.type != "cpu" or weights.device.type != "cpu" or weights.dtype != torch.float32:
        return False
    from creditlab.spiking import kernels  # noqa: PLC0415 - imports numba (optional) only when used

    return kernels.enabled()


def _first_spikes_compiled(input_times: torch.Tensor, weights: torch.Tensor, thresholds: torch.Tensor) -> FirstSpikes:
    """:func:`first_spikes` by the compiled kernel, samples in parallel over torch's CPU threads."""
    from creditlab.spiking import kernels  # noqa: PLC0415

    batch, n = input_times.shape[0], weights.shape[0]
    if input_times.shape[1] != weights.shape[1]:
        raise ValueError(f"{input_times.shape[1]} input times per sample for weights of {weights.shape[1]} inputs")
    check_spike_times(input_times)  # the kernel indexes time bins by t: NaN or t outside [0, 1] must not reach it
    times = input_times.detach().to(torch.float32).contiguous()
    thr = thresholds.detach().to(torch.float32)
    thr = (thr if thr.dim() == 2 else thr.unsqueeze(0)).expand(batch, n).contiguous()
    out_t = torch.empty(batch, n)
    out_v = torch.empty(batch, n)
    if batch:
        kernels.set_threads(torch.get_num_threads())
        kernels.first_spikes(times.numpy(), weights.detach().t().contiguous().numpy(), thr.numpy(), out_t.numpy(),
                             out_v.numpy())
    return FirstSpikes(out_t, out_v)


def _simulate(inputs: SortedInputs, weights: torch.Tensor, thresholds: torch.Tensor, monotone: bool,
              step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`first_spikes` of one batch chunk, integrating ``step`` spikes at a time; (N, b) results."""
    b, k = inputs.order.shape
    n = weights.shape[0]
    thr = thresholds.t().unsqueeze(-1)  # (N, b, 1)
    count = inputs.count.unsqueeze(0)  # (1, b)
    last = (count - 1).clamp(min=0)
    times = inputs.times.to(weights.dtype).unsqueeze(0).expand(n, b, k)
    ends = inputs.next_end.unsqueeze(0).expand(n, b, k)
    t_out = torch.full((n, b), SILENT, dtype=weights.dtype, device=weights.device)
    v_out = torch.zeros_like(t_out)
    done = torch.zeros((n, b), dtype=torch.bool, device=weights.device)
    carry = None
    for s in range(0, k, step):
        e = min(k, s + step)
        potential = weights.index_select(1, inputs.order[:, s:e].reshape(-1)).view(n, b, e - s).cumsum(2)
        if carry is not None:
            potential += carry
        if monotone:  # first position with V > theta, then the end of its timestamp group
            crossing = s + (potential <= thr).sum(2)
            first = ends.gather(2, crossing.clamp(max=k - 1).unsqueeze(-1)).squeeze(-1)
            new = (crossing < count) & (first < e)
        else:
            cross = (potential > thr) & inputs.group_end[:, s:e].unsqueeze(0)
            new = cross.any(2)
            first = s + cross.to(torch.uint8).argmax(2)
        new &= ~done
        local = (first - s).clamp(0, e - s - 1).unsqueeze(-1)
        t_out = torch.where(new, times.gather(2, first.clamp(max=k - 1).unsqueeze(-1)).squeeze(-1), t_out)
        v_out = torch.where(new, potential.gather(2, local).squeeze(-1), v_out)
        done |= new
        at_last = ~done & (last >= s) & (last < e)  # silent so far: keep V after the last real spike
        v_out = torch.where(at_last, potential.gather(2, (last - s).clamp(0, e - s - 1).unsqueeze(-1)
                                                       .expand(n, b, 1)).squeeze(-1), v_out)
        if e < k:
            if bool(done.all()):
                break
            carry = potential[..., -1:]
    return t_out, torch.where(count > 0, v_out, torch.zeros_like(v_out))


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
