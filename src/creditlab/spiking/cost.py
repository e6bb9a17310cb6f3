"""NeuroBench-style cost figures of a single-spike TTFS layer, per inference (one sample).

Spike inputs make every synaptic operation an accumulate (AC, no multiply). ``dense_acs``: every
input spike reaches every neuron (``#input spikes x N``, NeuroBench's effective ACs of the layer);
``event_acs``: an event-driven simulator stops integrating a neuron once it fired (each neuron
counts the input spikes up to its firing time, all of them if it stays silent). Activation sparsity
is the fraction of zeros (no spike) among the inputs and among the layer's neurons.
"""

from __future__ import annotations

import torch

from creditlab.spiking.coding import SILENT
from creditlab.spiking.event_layer import sort_inputs


def inference_cost(input_times: torch.Tensor, output_times: torch.Tensor) -> dict[str, float]:
    """Mean cost figures per sample of a layer with inputs (B, n_in) and first spikes (B, N)."""
    batch, n = output_times.shape
    spikes_in = (input_times < SILENT).sum(1)  # (B,)
    sorted_in = sort_inputs(input_times).times.contiguous()
    reached = torch.searchsorted(sorted_in, output_times.to(sorted_in.dtype).contiguous(), right=True)
    reached = torch.minimum(reached, spikes_in.unsqueeze(1))  # padding (silent inputs) never arrives
    fired = output_times < SILENT
    return {
        "dense_acs": float((spikes_in * n).double().mean()),
        "event_acs": float(reached.sum(1).double().mean()),
        "macs": 0.0,
        "input_spikes": float(spikes_in.double().mean()),
        "input_sparsity": float(1.0 - spikes_in.double().mean() / input_times.shape[1]),
        "output_spikes": float(fired.sum(1).double().mean()),
        "activation_sparsity": float(1.0 - fired.double().mean()),
        "samples": batch,
    }
