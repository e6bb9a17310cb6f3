"""e-prop under NEST's conventions: ``eprop_iaf`` / ``eprop_iaf_adapt`` recurrent neurons, an ``eprop_readout``
and ``eprop_synapse`` s updated at every time step (``optimize_each_step``), simulated densely in time,
float64, and equal step for step to NEST's event-driven computation (NEST 3.10; read from
``models/eprop_iaf*.cpp``, ``models/eprop_readout.cpp``, ``models/weight_optimizer.cpp`` and
``nestkernel/eprop_archiving_node_recurrent_impl.h``). This is not ``creditlab.rules.eprop`` (the
paper's formulation, one update per sequence); it exists to cross-check e-prop against NEST.

Time: step ``k`` (1 ms). Every connection has a delay of 1 step. Per step::

    a_k  = rho a_{k-1} + z_{k-1}                         (adapt; rho = exp(-1/adapt_tau); iaf: beta = 0)
    v_k  = alpha v_{k-1} + W_in x_{k-1} + W_rec z_{k-1}   (x: input spikes emitted at k-1)
    psi_k = h max(0, 1 - |v_k - (thr + beta a_k)| / w)   (piecewise-linear surrogate, before the reset)
    z_k  = [v_k >= thr + beta a_k];  v_k -= thr z_k       (reset in the spiking step, by thr)
    y_k  = alpha y_{k-1} + W_out z_{k-1};  E_k = y_k - y*_k   (readout; scored from step 3 on)

Per synapse ``i -> j`` (pre spikes arriving at ``k``): ``zbar_k = alpha zbar_{k-1} + pre_k`` and, on the
steps the synapse computes (see below),

    e_k = psi_k (zbar_k - beta eps_{k-1});  eps_k = rho eps_{k-1} + e_k
    ebar_k = kappa ebar_{k-1} + e_k;  ebar^reg_k = kappa_reg ebar^reg_{k-1} + (1 - kappa_reg) e_k
    g_k = L_k ebar_k + r_k ebar^reg_k,   L_k = B_j E_{k+1},   r_k = c_reg (f_k - f_target),
    f_k = kappa_reg f_{k-1} + (1 - kappa_reg) z_k      (online rate; f_target in spikes per step)

(off those steps ``e`` is 0: NEST only decays the traces). Readout synapses: ``g_k = E_k zbar_k``.
A synapse computes step ``k`` when ``k`` is within ``cutoff - 1`` steps after its last presynaptic
arrival, or its presynaptic neuron spikes at ``k`` (NEST's loop from ``t_prev - 1`` over
``min(cutoff, isi)`` steps of the postsynaptic history); before its first spike every step from 1
counts. Each computed step is one call of NEST's optimizer with index ``k``: gradient descent
``w -= eta g``, or Adam per synapse where a call after a gap of ``n`` uncomputed steps first applies
``g`` and then ``n`` steps of zero gradient (NEST's catch-up loop), bias correction counting the
synapse's own steps. The rec/input weights take step ``k``'s update once ``E_{k+1}`` is known, the
readout weights one step later: the weights a spike is sent with are those of NEST at that time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class NestSineSetting:
    """NEST's ``test_eprop_regression`` setting (nest-simulator testsuite/pytests/synapses/test_eprop_plasticity.py)."""

    neuron_model: str = "eprop_iaf"     # or "eprop_iaf_adapt"
    optimizer: str = "adam"             # NEST's test: adam for eprop_iaf, gradient_descent for eprop_iaf_adapt
    n_in: int = 100
    n_rec: int = 100
    iterations: int = 5
    sequence: int = 100
    seed: int = 1
    tau_m: float = 30.0
    threshold: float = 0.03
    kappa: float = 0.97
    kappa_reg: float = 0.97
    c_reg: float = 300.0 / 100
    f_target_hz: float = 10.0
    height: float = 10.0
    width: float = 0.03
    cutoff: int = 100
    adapt_beta: float = 0.0174
    adapt_tau: float = 2000.0
    input_probability: float = 0.05

    @property
    def eta(self) -> float:
        """NEST's learning rate, ``1e-4 (1 - kappa)^2``."""
        return 1e-4 * (1.0 - self.kappa) ** 2


def nest_sine_inputs(setting: NestSineSetting) -> dict[str, np.ndarray]:
    """The test's draws from numpy's legacy generator with its seed, in its order: weights (float32, scaled
    by 1 - kappa; no self-connections), input spikes (sequence, n_in) and the superimposed-sines target."""
    rng = np.random.RandomState(setting.seed)
    scale = 1.0 - setting.kappa
    n_in, n_rec = setting.n_in, setting.n_rec
    w_in = np.array(rng.randn(n_in, n_rec).T / np.sqrt(n_in), dtype=np.float32)
    w_rec = np.array(rng.randn(n_rec, n_rec).T / np.sqrt(n_rec), dtype=np.float32)
    np.fill_diagonal(w_rec, 0.0)
    w_out = np.array(rng.randn(n_rec, 1).T / np.sqrt(n_rec), dtype=np.float32) * scale
    feedback = np.array(rng.randn(n_rec, 1) / np.sqrt(n_rec), dtype=np.float32)
    spikes = rng.rand(setting.sequence, n_in) < setting.input_probability
    periods = [1000, 500, 333, 200]
    amplitudes = rng.uniform(0.5, 2.0, len(periods))
    phases = rng.uniform(0.0, 2.0 * np.pi, len(periods))
    target = sum(a * np.sin(np.linspace(p, p + 2.0 * np.pi * (setting.sequence // period), setting.sequence))
                 for a, p, period in zip(amplitudes, phases, periods, strict=True))
    target = target - target[0]
    target = target / max(np.abs(target).max(), 1e-6)
    w_in, w_rec, feedback = w_in * scale, w_rec * scale, feedback * scale  # in float32, as the test does
    return {"w_in": w_in.astype(np.float64), "w_rec": w_rec.astype(np.float64),
            "w_out": w_out[0].astype(np.float64), "feedback": feedback[:, 0].astype(np.float64),
            "spikes": spikes, "target": np.asarray(target, dtype=np.float64)}


class _Optimizer:
    """NEST's per-synapse weight optimizer (``WeightOptimizer::optimized_weight``, batch size 1)."""

    def __init__(self, shape: tuple[int, ...], kind: str, eta: float) -> None:
        self.kind, self.eta = kind, eta
        self.m, self.v = np.zeros(shape), np.zeros(shape)
        self.beta1_power, self.beta2_power = np.ones(shape), np.ones(shape)
        self.next_step = np.zeros(shape, dtype=np.int64)  # NEST's optimization_step_ (0: never called)

    def step(self, weight: np.ndarray, gradient: np.ndarray, index: int, computed: np.ndarray) -> np.ndarray:
        if self.kind == "gradient_descent":
            return np.where(computed, weight - self.eta * gradient, weight)
        start = np.where(self.next_step == 0, index, self.next_step)
        count = np.where(computed, index + 1 - start, 0)  # 1 + the steps skipped since the last call
        grad = gradient
        for repeat in range(int(count.max(initial=0))):
            active = count > repeat
            self.beta1_power = np.where(active, self.beta1_power * 0.9, self.beta1_power)
            self.beta2_power = np.where(active, self.beta2_power * 0.999, self.beta2_power)
            alpha = self.eta * np.sqrt(1 - self.beta2_power) / np.where(active, 1 - self.beta1_power, 1.0)
            self.m = np.where(active, 0.9 * self.m + 0.1 * grad, self.m)
            self.v = np.where(active, 0.999 * self.v + 0.001 * grad * grad, self.v)
            weight = np.where(active, weight - alpha * self.m / (np.sqrt(self.v) + 1e-7), weight)
            grad = np.zeros_like(grad)  # NEST's catch-up steps carry no gradient
        self.next_step = np.where(computed, index + 1, self.next_step)
        return weight


def simulate_nest_sine(setting: NestSineSetting) -> dict[str, np.ndarray]:
    """Train the setting for its iterations; the readout ``y`` (steps,) and the per-iteration losses
    ``0.5 sum (y - y*)^2`` over NEST's recorded window (steps 3 to 2 + iterations x sequence)."""
    if setting.neuron_model not in ("eprop_iaf", "eprop_iaf_adapt"):
        raise ValueError(f"neuron_model must be eprop_iaf or eprop_iaf_adapt, got {setting.neuron_model!r}")
    if setting.optimizer not in ("adam", "gradient_descent"):
        raise ValueError(f"optimizer must be adam or gradient_descent, got {setting.optimizer!r}")
    draws = nest_sine_inputs(setting)
    w_in, w_rec, w_out, feedback = draws["w_in"], draws["w_rec"], draws["w_out"], draws["feedback"]
    n, n_in, task = setting.n_rec, setting.n_in, setting.iterations * setting.sequence
    steps = task + 3
    inputs = np.zeros((steps + 2, n_in))  # inputs[k]: spikes the parrots emit at k (the generators' at k - 1)
    inputs[2:2 + task] = np.tile(draws["spikes"], (setting.iterations, 1))
    target = np.zeros(steps + 2)
    target[3:3 + task] = np.tile(draws["target"], setting.iterations)
    alpha = np.exp(-1.0 / setting.tau_m)
    rho = np.exp(-1.0 / setting.adapt_tau)
    beta = setting.adapt_beta if setting.neuron_model == "eprop_iaf_adapt" else 0.0
    f_target = setting.f_target_hz / 1000.0
    opt_in, opt_rec, opt_out = (_Optimizer(shape, setting.optimizer, setting.eta)
                                for shape in (w_in.shape, w_rec.shape, w_out.shape))
    off_diagonal = 1.0 - np.eye(n)
    v, adapt, z_prev, y, rate = np.zeros(n), np.zeros(n), np.zeros(n), 0.0, np.zeros(n)
    zbar_in, zbar_rec = np.zeros(n_in), np.zeros(n)
    traces = {key: np.zeros(shape) for key in ("eps_in", "ebar_in", "reg_in") for shape in [(n, n_in)]}
    traces.update({key: np.zeros((n, n)) for key in ("eps_rec", "ebar_rec", "reg_rec")})
    last_in, last_rec = np.zeros(n_in), np.zeros(n)  # last presynaptic arrival (0: none yet, from step 1)
    readout = np.zeros(steps)
    pending = pending_out = None
    for k in range(1, steps):
        pre_in = inputs[k - 1]
        adapt = rho * adapt + z_prev
        v = alpha * v + w_in @ pre_in + w_rec @ z_prev
        threshold = setting.threshold + beta * adapt
        psi = setting.height * np.maximum(0.0, 1.0 - np.abs(v - threshold) / setting.width)
        z = (v >= threshold).astype(np.float64)
        v = v - setting.threshold * z
        y = alpha * y + w_out @ z_prev
        readout[k] = y
        error = y - target[k] if k >= 3 else 0.0
        zbar_in, zbar_rec = alpha * zbar_in + pre_in, alpha * zbar_rec + z_prev
        last_in, last_rec = np.where(pre_in > 0, k, last_in), np.where(z_prev > 0, k, last_rec)
        computed_in = ((k - last_in) < setting.cutoff - 1) | (inputs[k] > 0)
        computed_rec = ((k - last_rec) < setting.cutoff - 1) | (z > 0)
        rate = setting.kappa_reg * rate + (1 - setting.kappa_reg) * z
        for part, zbar, computed in (("in", zbar_in, computed_in), ("rec", zbar_rec, computed_rec)):
            e = computed[None, :] * psi[:, None] * (zbar[None, :] - beta * traces[f"eps_{part}"])
            traces[f"eps_{part}"] = rho * traces[f"eps_{part}"] + e
            traces[f"ebar_{part}"] = setting.kappa * traces[f"ebar_{part}"] + e
            traces[f"reg_{part}"] = setting.kappa_reg * traces[f"reg_{part}"] + (1 - setting.kappa_reg) * e
        if pending is not None:  # step k-1's update, now that its learning signal B E_k is known
            index, ebar_in, ebar_rec, reg_in, reg_rec, reg_signal, done_in, done_rec = pending
            signal = feedback * error
            w_in = opt_in.step(w_in, signal[:, None] * ebar_in + reg_signal[:, None] * reg_in, index,
                               np.broadcast_to(done_in[None, :], w_in.shape))
            w_rec = opt_rec.step(w_rec, (signal[:, None] * ebar_rec + reg_signal[:, None] * reg_rec) * off_diagonal,
                                 index, np.broadcast_to(done_rec[None, :], w_rec.shape) & (off_diagonal > 0))
        pending = (k, traces["ebar_in"].copy(), traces["ebar_rec"].copy(), traces["reg_in"].copy(),
                   traces["reg_rec"].copy(), setting.c_reg * (rate - f_target), computed_in, computed_rec)
        if pending_out is not None:
            w_out = opt_out.step(w_out, *pending_out)
        pending_out = (error * zbar_rec, k, computed_rec)
        z_prev = z
    window = readout[3:3 + task] - target[3:3 + task]
    losses = 0.5 * np.sum(window.reshape(setting.iterations, setting.sequence) ** 2, axis=1)
    return {"readout": readout, "losses": losses}


__all__ = ["NestSineSetting", "nest_sine_inputs", "simulate_nest_sine"]
