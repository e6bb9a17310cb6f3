"""NIR export of the trained LSNN (:mod:`creditlab.models.lsnn`) and a read-back simulation.

Graph: ``input -> input_synapses (Linear W_in^T) -> neurons (LIF) -> recurrent_synapses (Linear W_rec^T)
-> neurons`` (the recurrent loop), ``neurons -> readout_synapses (Linear W_out^T) -> readout (LI) ->
output``. NIR's neurons are continuous-time; the LSNN is discrete (one step = ``dt`` ms), so the nodes
carry the continuous parameters whose exact discretization is the LSNN's (``tau`` in seconds,
``r = tau / dt``: one step's input of 1 raises ``v`` by 1) and the metadata carries what NIR cannot say:

* the discrete update ``v_t = alpha v_{t-1} + input`` with ``alpha = exp(-dt/tau)`` (``decay``), reset by
  subtracting the threshold in the next step, one step of synaptic delay on the recurrent loop;
* the refractory period (``refractory``: a spike blocks the next n_ref - 1 steps);
* the adaptive threshold of the ALIF neurons, ``A_t = thr + beta a_t``, ``a_t = rho a_{t-1} + z_{t-1}``:
  NIR 1.0 has no adaptive-threshold neuron, so ``beta`` and ``rho`` are metadata and a reader that
  ignores them simulates every neuron as LIF (exact only for ``n_adaptive = 0``);
* the readout is a leaky integrator of the spikes (LI with ``v_leak = 0``), read at every step.

:func:`simulate` runs a read graph from its parameters and metadata alone.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from creditlab.errors import CreditlabError
from creditlab.models.lsnn import LSNN
from creditlab.neuromorphic.nir_export import import_nir


def lsnn_graph(model: LSNN) -> Any:
    """The LSNN as a ``nir.NIRGraph`` (float32 weights; module docstring for the mapping)."""
    nir = import_nir()
    n, dt_s = model.neurons, model.dt / 1000.0

    def tau(decay: float, size: int) -> np.ndarray:
        return np.full(size, -dt_s / math.log(decay), dtype=np.float32)

    w = {name: getattr(model, name).detach().cpu().numpy().astype(np.float32)
         for name in ("input_weight", "recurrent_weight", "readout_weight")}
    w["recurrent_weight"] = w["recurrent_weight"] * (1 - np.eye(n, dtype=np.float32))
    tau_m, tau_out = tau(model.alpha, n), tau(model.kappa, model.classes)
    neurons = nir.LIF(tau=tau_m, r=tau_m / dt_s, v_leak=np.zeros(n, dtype=np.float32),
                      v_threshold=np.full(n, model.threshold, dtype=np.float32), v_reset=np.zeros(n, dtype=np.float32),
                      metadata={"discrete_time": True, "dt_ms": model.dt, "decay": model.alpha,
                                "reset": "subtract threshold (next step)", "refractory": model.refractory,
                                "adaptive_beta": model.beta.cpu().numpy().astype(np.float32),
                                "adaptive_decay": model.rho, "n_regular": model.n_regular,
                                "n_adaptive": model.n_adaptive,
                                "not_expressible": "adaptive threshold (ALIF), refractory period, reset by "
                                                   "subtraction: metadata only"})
    nodes = {"input": nir.Input(input_type={"input": np.array([model.channels])}),
             "input_synapses": nir.Linear(weight=w["input_weight"].T.copy()),
             "neurons": neurons,
             "recurrent_synapses": nir.Linear(weight=w["recurrent_weight"].T.copy(), metadata={"delay_steps": 1}),
             "readout_synapses": nir.Linear(weight=w["readout_weight"].T.copy(), metadata={"delay_steps": 1}),
             "readout": nir.LI(tau=tau_out, r=tau_out / dt_s, v_leak=np.zeros(model.classes, dtype=np.float32),
                               metadata={"discrete_time": True, "decay": model.kappa}),
             "output": nir.Output(output_type={"output": np.array([model.classes])})}
    edges = [("input", "input_synapses"), ("input_synapses", "neurons"), ("neurons", "recurrent_synapses"),
             ("recurrent_synapses", "neurons"), ("neurons", "readout_synapses"),
             ("readout_synapses", "readout"), ("readout", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"creditlab": "lsnn"})


def simulate(graph: Any, inputs: torch.Tensor, adaptive: bool = True) -> torch.Tensor:
    """Readout (batch, time, classes) of a graph written by :func:`lsnn_graph`, from its nodes alone.

    ``adaptive=False`` ignores the ALIF metadata (what a reader that knows only NIR's nodes computes).
    """
    nodes = graph.nodes
    if graph.metadata.get("creditlab") != "lsnn" or type(nodes.get("neurons")).__name__ != "LIF":
        raise CreditlabError("not a creditlab LSNN graph: it needs a LIF node named 'neurons'")
    neurons, meta = nodes["neurons"], nodes["neurons"].metadata
    as_tensor = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64)  # noqa: E731
    w_in, w_rec, w_out = (as_tensor(nodes[k].weight).T for k in ("input_synapses", "recurrent_synapses",
                                                                 "readout_synapses"))
    threshold = as_tensor(neurons.v_threshold)
    dt_s = float(meta["dt_ms"]) / 1000.0
    alpha = torch.exp(-dt_s / as_tensor(neurons.tau))
    kappa = torch.exp(-dt_s / as_tensor(nodes["readout"].tau))
    beta = as_tensor(meta["adaptive_beta"]) if adaptive else torch.zeros_like(threshold)
    rho, n_ref = float(meta["adaptive_decay"]), int(meta["refractory"])
    x = inputs.to(torch.float64)
    batch, steps, _ = x.shape
    v = x.new_zeros(batch, len(threshold))
    a, z, r = (torch.zeros_like(v) for _ in range(3))
    y = x.new_zeros(batch, w_out.shape[1])
    outputs = []
    for t in range(steps):
        a = rho * a + z
        v = alpha * v + x[:, t] @ w_in + z @ w_rec - threshold * z
        z = torch.where(r > 0, torch.zeros_like(v), ((v - threshold - beta * a) > 0).to(v.dtype))
        r = (r + n_ref * z - 1).clamp(0, n_ref)
        y = kappa * y + z @ w_out  # LI on the readout's input: the LSNN's W_out zbar, by linearity
        outputs.append(y)
    return torch.stack(outputs, 1)


__all__ = ["lsnn_graph", "simulate"]
