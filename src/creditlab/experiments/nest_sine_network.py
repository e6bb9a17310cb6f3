"""Run NEST's own e-prop sine-wave regression (the setting of NEST's test_eprop_regression) and print its
per-iteration losses, the weights it started from, its inputs and target as JSON.

Run as a script by a Python that has NEST (``pip install nest-simulator`` in a separate venv, not
creditlab's); ``creditlab reproduce eprop-nest-sine --opt nest_python=NESTVENV/bin/python`` does so and
records the losses beside the test file's. This module imports only numpy (NEST inside :func:`main`)::

    NESTVENV/bin/python src/creditlab/experiments/nest_sine_network.py eprop_iaf adam

The network is built from the test's description (nest-simulator testsuite/pytests/synapses/
test_eprop_plasticity.py, test_eprop_regression): 100 parrot inputs, 100 recurrent neurons, 1
``eprop_readout``; all delays 1 step; 5 iterations of a 100-step sequence; numpy seed 1 draws the
weights, the input spikes (p = 0.05 per step) and a sum of four sines as the target.
"""

from __future__ import annotations

import json
import sys

import numpy as np


def superimposed_sines(rng_uniform, steps: int, periods: list[int]) -> np.ndarray:
    """Sum of sines with amplitudes in [0.5, 2] and phases in [0, 2 pi), shifted to start at 0, max |.| = 1."""
    amplitudes = rng_uniform(0.5, 2.0, len(periods))
    phases = rng_uniform(0.0, 2.0 * np.pi, len(periods))
    total = sum(a * np.sin(np.linspace(p, p + 2.0 * np.pi * (steps // period), steps))
                for a, p, period in zip(amplitudes, phases, periods, strict=True))
    total = total - total[0]
    return total / max(np.abs(total).max(), 1e-6)


def main(neuron_model: str, optimizer: str) -> dict:
    import nest

    np.random.seed(1)
    n_in, n_rec, n_out, n_iter, seq = 100, 100, 1, 5, 100
    offset_gen, delay, extension = 1, 1, 3
    task = n_iter * seq
    total_offset = offset_gen + delay
    nest.ResetKernel()
    nest.set(print_time=False, resolution=1.0, total_num_virtual_procs=1)
    kappa = 0.97
    scale = 1.0 - kappa
    rec_params = {"C_m": 1.0, "c_reg": 300.0 / seq, "E_L": 0.0, "eprop_isi_trace_cutoff": 100, "f_target": 10.0,
                  "flush_event_send_interval": float(seq), "I_e": 0.0, "kappa": kappa, "kappa_reg": kappa,
                  "surrogate_gradient_function": "piecewise_linear", "surrogate_gradient_height": 10.0,
                  "surrogate_gradient_width": 0.03, "t_ref": 0.0, "tau_m": 30.0, "V_m": 0.0, "V_th": 0.03}
    if neuron_model == "eprop_iaf_adapt":
        rec_params.update(adapt_beta=0.0174, adapt_tau=2000.0, adaptation=0.0)
    out_params = {"C_m": 1.0, "E_L": 0.0, "eprop_isi_trace_cutoff": 100, "I_e": 0.0, "tau_m": 30.0, "V_m": 0.0}
    generators = nest.Create("spike_generator", n_in)
    inputs = nest.Create("parrot_neuron", n_in)
    recurrent = nest.Create(neuron_model, n_rec, rec_params)
    readout = nest.Create("eprop_readout", n_out, out_params)
    target_gen = nest.Create("step_rate_generator", n_out)
    window_gen = nest.Create("step_rate_generator")
    meter = nest.Create("multimeter", params={"interval": 1.0, "record_from": ["readout_signal", "target_signal"],
                                              "start": float(total_offset), "stop": float(total_offset + task)})

    w_in = np.array(np.random.randn(n_in, n_rec).T / np.sqrt(n_in), dtype=np.float32)
    w_rec = np.array(np.random.randn(n_rec, n_rec).T / np.sqrt(n_rec), dtype=np.float32)
    np.fill_diagonal(w_rec, 0.0)
    w_out = np.array(np.random.randn(n_rec, n_out).T / np.sqrt(n_rec), dtype=np.float32) * scale
    w_feedback = np.array(np.random.randn(n_rec, n_out) / np.sqrt(n_rec), dtype=np.float32)
    w_in, w_rec, w_feedback = w_in * scale, w_rec * scale, w_feedback * scale

    opt = {"type": optimizer, "batch_size": 1, "eta": 1e-4 * scale ** 2, "optimize_each_step": True,
           "Wmin": -100.0, "Wmax": 100.0}
    if optimizer == "adam":
        opt.update(beta_1=0.9, beta_2=0.999, epsilon=1e-7)
    nest.SetDefaults("eprop_synapse", {"optimizer": opt})
    one_to_one, all_to_all = {"rule": "one_to_one"}, {"rule": "all_to_all", "allow_autapses": False}
    nest.Connect(generators, inputs, one_to_one, {"synapse_model": "static_synapse", "delay": 1.0})
    nest.Connect(inputs, recurrent, all_to_all, {"synapse_model": "eprop_synapse", "delay": 1.0, "weight": w_in})
    nest.Connect(recurrent, recurrent, all_to_all, {"synapse_model": "eprop_synapse", "delay": 1.0, "weight": w_rec})
    nest.Connect(recurrent, readout, all_to_all, {"synapse_model": "eprop_synapse", "delay": 1.0, "weight": w_out})
    nest.Connect(readout, recurrent, all_to_all, {"synapse_model": "eprop_learning_signal_connection",
                                                  "delay": 1.0, "weight": w_feedback})
    nest.Connect(target_gen, readout, one_to_one, {"synapse_model": "rate_connection_delayed", "delay": 1.0,
                                                   "receptor_type": 2})
    nest.Connect(window_gen, readout, all_to_all, {"synapse_model": "rate_connection_delayed", "delay": 1.0,
                                                   "receptor_type": 1})
    nest.Connect(meter, readout, all_to_all, {"synapse_model": "static_synapse", "delay": 1.0})

    spikes = np.random.rand(seq, n_in) < 0.05  # (step, input)
    starts = np.arange(0.0, task, seq) + offset_gen
    step_times = np.arange(0.0, seq, 1.0)
    generators.set([{"spike_times": np.hstack([step_times[spikes[:, i]] + s for s in starts]).astype(np.float32)}
                    for i in range(n_in)])
    target = superimposed_sines(np.random.uniform, seq, [1000, 500, 333, 200])
    target_gen.set({"amplitude_times": np.arange(0.0, task, 1.0) + total_offset,
                    "amplitude_values": np.tile(target, n_iter)})
    window_gen.set({"amplitude_times": [float(total_offset)], "amplitude_values": [1.0]})
    nest.Simulate(float(task + total_offset + extension))
    events = meter.get("events")
    readout_signal = np.asarray(events["readout_signal"]).reshape(n_iter, seq)
    target_signal = np.asarray(events["target_signal"]).reshape(n_iter, seq)
    loss = 0.5 * np.sum((readout_signal - target_signal) ** 2, axis=1)
    return {"neuron_model": neuron_model, "optimizer": optimizer, "nest_version": nest.__version__,
            "losses": loss.tolist(), "readout": readout_signal.tolist(), "target": target.tolist(),
            "input_spikes": spikes.astype(int).tolist(), "w_in": w_in.tolist(), "w_rec": w_rec.tolist(),
            "w_out": w_out.tolist(), "w_feedback": w_feedback.tolist()}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
