"""Compiled CPU kernels of the TTFS layer and of the time-target STDP rules (optional extra ``fast``).

The torch code (:mod:`creditlab.spiking.event_layer`, :mod:`creditlab.spiking.supervised`) is the
reference and the GPU path. On a CPU its per-sample work is a few hundred tiny tensor operations, so
the online rules spend their time in dispatch, not arithmetic; these Numba kernels run the same
algorithm as plain loops. They are used on CPU tensors when ``numba`` is installed
(``pip install creditlab[fast]``) unless ``CREDITLAB_KERNELS=torch``; tests check them against the
torch code and against a brute-force fine-time-step simulation.

The event loop per sample: input spikes are bucketed by time (one O(n_in) counting pass into
``BINS`` time bins), the bins are visited in time order and each is sorted when reached; a neuron
integrates ``V += w`` spike by spike (accumulated in float64 and rounded to float32 like torch's
``cumsum``) and tests ``V > theta`` at the end of every timestamp group. The sample stops as soon as
every neuron fired, so the work is (spikes before the last first spike) x (neurons), and the sort
costs only the bins reached. Samples run in parallel over the CPU threads at inference.
"""

from __future__ import annotations

import os

import numpy as np

try:
    import numba
except ImportError:  # the optional extra is missing: the torch code runs instead
    numba = None

#: time bins of the counting pass (the bins reached are sorted exactly; their number only sets speed)
BINS = 256


def enabled() -> bool:
    """True when the compiled kernels can and may be used (numba installed, not disabled by
    ``CREDITLAB_KERNELS=torch``)."""
    return numba is not None and os.environ.get("CREDITLAB_KERNELS", "").lower() != "torch"


def set_threads(threads: int) -> None:
    """Use ``threads`` CPU threads in the parallel kernels (bounded by numba's pool)."""
    numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))


def _njit(function):  # noqa: ANN001, ANN202
    return numba.njit(cache=True, nogil=True)(function) if numba is not None else function


def _njit_parallel(function):  # noqa: ANN001, ANN202
    return numba.njit(cache=True, nogil=True, parallel=True)(function) if numba is not None else function


_prange = numba.prange if numba is not None else range


@_njit
def scratch(n_in, n_neurons):  # noqa: ANN001, ANN201
    """The scratch arrays of :func:`sample_first_spikes` (about 16 inputs per time bin, at most ``BINS``)."""
    bins = max(1, min(BINS, n_in // 16))
    return (np.empty(n_in, dtype=np.int64), np.empty(n_in, dtype=np.int64), np.empty(bins + 2, dtype=np.int64),
            np.empty(bins + 1, dtype=np.int64), np.empty(n_neurons, dtype=np.float64),
            np.empty(n_neurons, dtype=np.float64))


@_njit
def sample_first_spikes(times, weights_t, thresholds, out_t, out_v, order, bin_key, bin_start, bin_fill,
                        potential, alive_threshold):  # noqa: ANN001, ANN202, PLR0913
    """First spike (time, potential) of every neuron for one sample, into ``out_t`` / ``out_v``.

    ``weights_t`` is the transposed weight matrix (n_in, N): one input spike adds a contiguous row to
    every potential. ``order``, ``bin_key`` (n_in,), ``bin_start`` (bins + 2,), ``bin_fill`` (bins + 1,),
    ``potential`` and ``alive_threshold`` (N, float64) are scratch arrays (:func:`scratch`).
    Returns the number of neurons that stayed silent.
    """
    n_in, n_neurons = weights_t.shape
    bins = bin_start.shape[0] - 2  # time bins, then one for the silent inputs (t = 1)
    bin_start[:] = 0
    for i in range(n_in):  # counting pass (branch-free): spikes per time bin
        b = min(max(np.int64(times[i] * bins), 0), bins)  # callers check times in [0, 1]; never index out
        bin_key[i] = b
        bin_start[b + 1] += 1
    for b in range(bins):
        bin_start[b + 1] += bin_start[b]
    bin_fill[:] = bin_start[:-1]
    for i in range(n_in):
        b = bin_key[i]
        order[bin_fill[b]] = i
        bin_fill[b] += 1
    potential[:] = 0.0
    out_t[:] = 1.0
    alive_threshold[:] = thresholds  # +inf once a neuron fired: a branch-free pre-test
    remaining = n_neurons
    for b in range(bins):
        lo, hi = bin_start[b], bin_start[b + 1]
        for k in range(lo + 1, hi):  # insertion sort of the bin by time (ties: integrated together)
            i = order[k]
            t = times[i]
            m = k - 1
            while m >= lo and times[order[m]] > t:
                order[m + 1] = order[m]
                m -= 1
            order[m + 1] = i
        for k in range(lo, hi):
            i = order[k]
            t = times[i]
            for j in range(n_neurons):
                potential[j] += weights_t[i, j]
            if k + 1 < hi and times[order[k + 1]] == t:
                continue
            crossed = 0  # the end of a timestamp group: test (float32(V) > theta implies V > theta)
            for j in range(n_neurons):
                crossed += potential[j] > alive_threshold[j]
            if crossed:
                for j in range(n_neurons):
                    if potential[j] > alive_threshold[j] and np.float32(potential[j]) > thresholds[j]:
                        out_t[j] = t
                        out_v[j] = np.float32(potential[j])
                        alive_threshold[j] = np.inf
                        remaining -= 1
                if remaining == 0:
                    return 0
    for j in range(n_neurons):
        if out_t[j] >= 1.0:
            out_v[j] = np.float32(potential[j])
    return remaining


@_njit_parallel
def first_spikes(times, weights_t, thresholds, out_t, out_v):  # noqa: ANN001, ANN202
    """:func:`sample_first_spikes` of every sample (rows of ``times``), in parallel; ``weights_t``
    (n_in, N), ``thresholds`` (B, N)."""
    batch, n_in = times.shape
    n_neurons = weights_t.shape[1]
    for s in _prange(batch):
        order, bin_key, bin_start, bin_fill, potential, alive = scratch(n_in, n_neurons)
        sample_first_spikes(times[s], weights_t, thresholds[s], out_t[s], out_v[s], order, bin_key, bin_start,
                            bin_fill, potential, alive)

@_njit
def first_to_fire(times, potentials, lo, hi):  # noqa: ANN001, ANN202
    """Index in [lo, hi) of the earliest spike, ties by the larger potential, then the lower index."""
    best = lo
    for j in range(lo + 1, hi):
        if times[j] < times[best] or (times[j] == times[best] and potentials[j] > potentials[best]):
            best = j
    return best


@_njit
def _update_rows(x, weights_t, rows, posts, ups, downs, initial_norm, w_min, w_max, weight_norm, norms):  # noqa: ANN001, ANN202, PLR0913
    """Error-modulated additive STDP on the columns ``rows`` of ``weights_t`` (n_in, N), clipped, then
    (``weight_norm``) each rescaled to its initial L1 norm: one sweep over the rows of W^T
    (``norms``: float64 scratch, >= len(rows))."""
    kept = rows.shape[0]
    norms[:kept] = 0.0
    for i in range(x.shape[0]):
        xi = x[i]
        for r in range(kept):
            causal = np.float32(xi <= posts[r])  # a branch-free, exact select of A+ or A-
            value = weights_t[i, rows[r]] + (ups[r] * causal + downs[r] * (np.float32(1.0) - causal))
            value = min(max(value, w_min), w_max)
            weights_t[i, rows[r]] = value
            norms[r] += abs(value)
    if not weight_norm:
        return
    scales = np.empty(kept, dtype=np.float32)
    for r in range(kept):
        scales[r] = initial_norm[rows[r]] / max(np.float32(norms[r]), np.float32(1e-12))
    for i in range(x.shape[0]):
        for r in range(kept):
            weights_t[i, rows[r]] *= scales[r]


@_njit
def time_target_epoch(inputs, labels, weights_t, thresholds, training_thresholds, initial_norm,  # noqa: ANN001, ANN202, PLR0913
                      target_labelled, num_classes, per_class, regulated, ranges, t_gap, a_plus, a_minus,
                      w_min, w_max, weight_norm, threshold_rate, threshold_floor, out_t, out_v, errors_abs,
                      updated, updates, target_updates):
    """S2-STDP / SSTDP (``ranges``) on the samples in order, updating the arrays in place: the
    compiled form of ``SupervisedSTDPRule._online`` with ``_TimeTargetRule.sample_update``. The
    weights are given transposed, ``weights_t`` (n_in, N): the forward pass adds rows, and an update
    of the winners is one sweep over its rows."""
    batch, n_in = inputs.shape
    n_neurons = weights_t.shape[1]
    order, bin_key, bin_start, bin_fill, potential, alive = scratch(n_in, n_neurons)
    sample_thresholds = np.empty(n_neurons, dtype=np.float32)
    winners = np.empty(num_classes, dtype=np.int64)
    is_target = np.empty(num_classes, dtype=np.bool_)
    errors = np.empty(num_classes, dtype=np.float32)
    rows = np.empty(num_classes, dtype=np.int64)
    posts, ups = np.empty(num_classes, dtype=np.float32), np.empty(num_classes, dtype=np.float32)
    downs = np.empty(num_classes, dtype=np.float32)
    norms = np.empty(num_classes, dtype=np.float64)
    targets_per_class = 0
    for j in range(per_class):
        if target_labelled[j]:
            targets_per_class += 1
    group = np.empty(targets_per_class, dtype=np.int64)
    for s in range(batch):
        label = labels[s]
        x = inputs[s]
        t_out, v_out = out_t[s], out_v[s]
        for j in range(n_neurons):  # the training compartment for the label's target-labelled neurons
            own = regulated and j // per_class == label and target_labelled[j]
            sample_thresholds[j] = training_thresholds[j] if own else thresholds[j]
        sample_first_spikes(x, weights_t, sample_thresholds, t_out, v_out, order, bin_key, bin_start, bin_fill,
                            potential, alive)
        # the per-class winners U and their desired times (temporal_targets)
        fired_sum = np.float32(0.0)
        fired = 0
        for c in range(num_classes):
            w = first_to_fire(t_out, v_out, c * per_class, (c + 1) * per_class)
            winners[c] = w
            is_target[c] = c == label and target_labelled[w]
            if t_out[w] < 1.0:
                fired_sum += t_out[w]
                fired += 1
        gap_nt = t_gap * 1 / num_classes  # n_t = 1: the label's group (see temporal_targets)
        gap_t = np.float32(t_gap * (num_classes - 1) / num_classes)
        cap = np.float32(1.0 - gap_nt)
        t_base = min(np.float32(fired_sum / fired), cap) if fired else cap
        want_target, want_non = t_base - gap_t, t_base + np.float32(gap_nt)
        error_sum = 0.0
        for c in range(num_classes):
            t = t_out[winners[c]]
            if ranges:
                desired = min(t, want_target) if is_target[c] else max(t, want_non)
            else:
                desired = want_target if is_target[c] else want_non
            errors[c] = np.float32(t - desired)
        kept = 0
        for c in range(num_classes):  # the rows to update: winners with a nonzero error
            if errors[c] != 0:
                j = winners[c]
                rows[kept], posts[kept] = j, t_out[j]
                ups[kept], downs[kept] = errors[c] * a_plus, errors[c] * a_minus
                updates[j] += 1
                if j // per_class == label and target_labelled[j]:
                    target_updates[j] += 1
                error_sum += abs(errors[c])
                kept += 1
        if kept:
            _update_rows(x, weights_t, rows[:kept], posts[:kept], ups[:kept], downs[:kept], initial_norm, w_min,
                         w_max, weight_norm, norms)
        if kept:
            errors_abs[s] = np.float32(error_sum / kept)
            updated[s] = True
        if regulated and threshold_rate != 0.0 and targets_per_class > 1:  # CR: conserve the group's sum
            m = 0
            for j in range(label * per_class, (label + 1) * per_class):
                if target_labelled[j]:
                    group[m] = j
                    m += 1
            best = 0
            for k in range(1, m):
                a, b = group[k], group[best]
                if t_out[a] < t_out[b] or (t_out[a] == t_out[b] and v_out[a] > v_out[b]):
                    best = k
            for k in range(m):
                j = group[k]
                change = np.float32(threshold_rate * (m - 1) / m if k == best else -threshold_rate / m)
                training_thresholds[j] = max(training_thresholds[j] + change, threshold_floor)


@_njit
def csnn_fit_epoch(times, ys, xs, weights, weights_t, thresholds, kernel, threshold_lr, a_plus, a_minus, beta,  # noqa: ANN001, ANN201, PLR0913
                   target_time, min_threshold):
    """One unsupervised epoch of the STDP-CSNN on one patch per image: the compiled form of the loop
    in ``STDPCSNN.fit`` (WTA, target-timestamp threshold adaptation, multiplicative STDP).

    ``times`` (B, C, H, W) input spike times; ``ys``, ``xs`` (B,) the patches' corners; ``weights``
    (F, C k k) and its transpose ``weights_t`` are updated together, ``thresholds`` (F,) in place.
    Returns the number of updates (patches on which some filter fired).
    """
    n_images, channels = times.shape[0], times.shape[1]
    filters, size = weights.shape
    patch = np.empty(size, dtype=np.float32)
    out_t = np.empty(filters, dtype=np.float32)
    out_v = np.empty(filters, dtype=np.float32)
    order, bin_key, bin_start, bin_fill, potential, alive = scratch(size, filters)
    down_all = np.float32(threshold_lr / (filters - 1))
    up_winner = np.float32(threshold_lr + threshold_lr / (filters - 1))
    wins = 0
    for n in range(n_images):
        y0, x0 = ys[n], xs[n]
        for c in range(channels):
            for dy in range(kernel):
                for dx in range(kernel):
                    patch[(c * kernel + dy) * kernel + dx] = times[n, c, y0 + dy, x0 + dx]
        silent = sample_first_spikes(patch, weights_t, thresholds, out_t, out_v, order, bin_key, bin_start, bin_fill,
                                     potential, alive)
        if silent == filters:
            continue
        winner = first_to_fire(out_t, out_v, 0, filters)
        t_post = out_t[winner]
        shift = np.float32(threshold_lr * (t_post - target_time))
        for j in range(filters):
            thresholds[j] -= shift
            thresholds[j] -= down_all
        thresholds[winner] += up_winner
        for j in range(filters):
            thresholds[j] = max(thresholds[j], min_threshold)
        for i in range(size):  # multiplicative STDP of the winner, clipped to [0, 1]
            w = weights[winner, i]
            if patch[i] <= t_post:
                w = w + a_plus * np.exp(-beta * w)
            else:
                w = w - a_minus * np.exp(-beta * (np.float32(1.0) - w))
            w = min(max(w, np.float32(0.0)), np.float32(1.0))
            weights[winner, i] = w
            weights_t[i, winner] = w
        wins += 1
    return wins
