"""Cost per inference of the single-spike TTFS pipeline, as NeuroBench defines it, layer by layer.

NeuroBench's workload metrics (``neurobench.metrics.workload``, Yik et al. 2025), applied to every
connection layer of the pipeline (the extractor's conv layer and the classifier's fully connected
one) and to every spiking neuron population:

* **effective ACs** (``SynapticOperations`` "Effective_ACs"): per sample, every (input spike,
  nonzero weight) pair: a binary input reaching a synapse whose weight is not zero. Spike inputs
  make every operation an accumulate, so effective MACs are 0.
* **dense** (``SynapticOperations`` "Dense"): every synapse of the layer whatever the input (all
  inputs and weights taken as ones), per sample: ``n_in x N`` for the classifier, ``C k k x F x
  H_out x W_out`` for the conv layer.
* **activation sparsity** (``ActivationSparsity``): zeros over all neuron outputs of all populations
  (neurons x time steps), pooled over layers. A single-spike TTFS neuron fires at most once per
  sample, and an event-driven run of one sample is one presentation: one time step per sample.

When the ``neurobench`` package is installed (``pip install 'creditlab[neurobench]'``) the counts are
computed by its metric classes on a replay network (``nn.Conv2d`` / ``nn.Linear`` holding our weights,
fed the binary input spikes, each followed by a module that returns the recorded spikes, the
activation NeuroBench hooks); without it, by the same definitions here (``counted_by`` says which).
Beside them, ``event_acs`` (ours, not NeuroBench's): an event-driven simulator stops integrating a
neuron once it fired, so each neuron counts the nonzero-weight input spikes up to its firing time.
Max pooling of spike times is no synaptic operation (NeuroBench counts none for pooling either).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from creditlab.spiking.coding import SILENT


class _Replay(nn.Module):
    """Returns the recorded spikes of its population for the current chunk (the activation NeuroBench
    hooks); its input (the layer's potentials on binary inputs) is ignored."""

    def __init__(self) -> None:
        super().__init__()
        self.spikes: torch.Tensor | None = None

    def forward(self, _potentials: torch.Tensor) -> torch.Tensor:  # noqa: D102
        assert self.spikes is not None
        return self.spikes


def _neurobench() -> Any:
    try:
        import neurobench.metrics.workload as workload
        from neurobench.models import TorchModel
    except ImportError:
        return None
    return workload, TorchModel


def _by_definition(layer: nn.Linear | nn.Conv2d, spikes_in: torch.Tensor) -> tuple[float, float]:
    """(effective ACs, dense) summed over the batch, by NeuroBench's definitions (no package)."""
    nonzero = (layer.weight != 0).to(spikes_in.dtype)
    if isinstance(layer, nn.Linear):
        effective = float((spikes_in @ nonzero.t()).sum())
        dense = float(layer.weight.numel()) * len(spikes_in)
    else:
        effective = float(F.conv2d(spikes_in, nonzero).sum())
        out = F.conv2d(torch.ones_like(spikes_in[:1]), torch.ones_like(nonzero))
        dense = float(out.sum()) * len(spikes_in)
    return effective, dense


def layer_cost(layer: nn.Linear | nn.Conv2d, input_times: torch.Tensor, output_times: torch.Tensor,
               chunk: int = 256) -> dict[str, Any]:
    """NeuroBench's counts for one layer, per sample: inputs (B, n_in) or (B, C, H, W) spike times,
    first-spike outputs of the same batch ((B, N) or (B, F, H', W')); ``SILENT`` is no spike."""
    tools = _neurobench()
    replay = _Replay()
    model = tools[1](nn.Sequential(layer, replay)) if tools else None
    if model is not None:
        model.add_activation_module(_Replay)
        model.register_hooks()
        synops = tools[0].SynapticOperations()
    effective = dense = zeros = activations = 0.0
    batch = len(input_times)
    with torch.no_grad():
        for i in range(0, batch, chunk):
            spikes_in = (input_times[i:i + chunk] < SILENT).to(layer.weight.dtype)
            replay.spikes = (output_times[i:i + chunk] < SILENT).to(layer.weight.dtype)
            if model is not None:
                preds = model(spikes_in)
                synops(model, preds, (spikes_in, None))
                sparsity = tools[0].ActivationSparsity()(model, preds, (spikes_in, None))
                zeros += sparsity * replay.spikes.numel()
                model.reset_hooks()
            else:
                e, d = _by_definition(layer, spikes_in)
                effective, dense = effective + e, dense + d
                zeros += float((replay.spikes == 0).sum())
            activations += replay.spikes.numel()
    if model is not None:
        counts = synops.compute()
        model.cleanup_hooks()
        if counts["Effective_MACs"]:
            raise RuntimeError("NeuroBench counted MACs on binary spike inputs: the replay is miswired")
        effective, dense = counts["Effective_ACs"] * batch, counts["Dense"] * batch
    fired = output_times < SILENT
    return {"effective_acs": effective / batch, "dense": dense / batch, "effective_macs": 0.0,
            "neuron_outputs": activations / batch, "spikes": float(fired.sum()) / batch,
            "activation_sparsity": zeros / activations if activations else 0.0,
            "input_spikes": float((input_times < SILENT).sum()) / batch,
            "input_sparsity": float((input_times >= SILENT).double().mean()),
            "counted_by": _counted_by(tools)}


def _counted_by(tools: Any) -> str:
    if not tools:
        return "creditlab (NeuroBench's definitions; neurobench not installed)"
    from importlib.metadata import version

    return f"neurobench {version('neurobench')}"


def event_acs(input_times: torch.Tensor, weight: torch.Tensor, output_times: torch.Tensor) -> float:
    """Mean per sample of the nonzero-weight input spikes each neuron integrates up to its first spike
    (all of them if it stays silent): inputs (B, n_in), weights (N, n_in), outputs (B, N)."""
    arrived = (input_times < SILENT).unsqueeze(1) & (input_times.unsqueeze(1) <= output_times.unsqueeze(2))
    return float((arrived & (weight != 0).unsqueeze(0)).sum()) / len(input_times)


def classifier_cost(input_times: torch.Tensor, weight: torch.Tensor, output_times: torch.Tensor) -> dict[str, Any]:
    """The classifier layer's counts (``layer_cost``) plus ``event_acs``; weight (N, n_in)."""
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=False).to(weight.device, weight.dtype)
    linear.weight.data.copy_(weight)
    cost = layer_cost(linear, input_times, output_times)
    cost["event_acs"] = sum(event_acs(input_times[i:i + 256], weight, output_times[i:i + 256]) * len(
        input_times[i:i + 256]) for i in range(0, len(input_times), 256)) / len(input_times)
    return cost


def extractor_cost(extractor: Any, images: torch.Tensor) -> dict[str, Any]:
    """The STDP-CSNN conv layer's counts (``layer_cost``) on ``images`` (its on/off latency-coded
    input, its conv neurons' first spikes before pooling)."""
    c = extractor.config
    times = extractor.input_times(images)
    conv = nn.Conv2d(times.shape[1], c.filters, c.kernel, bias=False).to(times.dtype)
    conv.weight.data.copy_(extractor.weight)
    maps = extractor.conv_spike_times(times)
    return layer_cost(conv, times, maps, chunk=64)


def pipeline_cost(layers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Totals over layers (``{"extractor": layer_cost, "classifier": ...}``): ACs and dense summed,
    activation sparsity pooled over every neuron output of every layer (NeuroBench's definition)."""
    outputs = sum(c["neuron_outputs"] for c in layers.values())
    spikes = sum(c["spikes"] for c in layers.values())
    return {"effective_acs": sum(c["effective_acs"] for c in layers.values()),
            "dense": sum(c["dense"] for c in layers.values()), "effective_macs": 0.0,
            "activation_sparsity": 1.0 - spikes / outputs if outputs else 0.0,
            "neuron_outputs": outputs, "spikes": spikes, "layers": layers,
            "counted_by": next(iter(layers.values()))["counted_by"] if layers else ""}
