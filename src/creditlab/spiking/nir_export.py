"""NIR export of the spiking classifier and of the STDP-CSNN conv layer, and their read-back.

``nir`` (the Neuromorphic Intermediate Representation, ``pip install 'creditlab[nir]'``) is imported
only when these functions run. Mapping:

* classifier: ``Input (n_in) -> Linear (W) -> IF (r = 1, v_threshold = theta, v_reset = 0) -> Output``;
* conv layer: ``Input (2C, H, W) -> Conv2d (filters, stride 1, no padding, zero bias) -> IF ->
  SumPool2d (pool x pool) -> Output``; the output counts the window's neurons that fire in a step, so
  a window's first nonzero step is its earliest spike (our pooling of spike times).

**What another simulator runs the same, and what NIR cannot say.** A time-stepped NIR reader (Norse's
``from_nir``, tested in ``tests/test_nir_interop.py``) runs these graphs equivalently when the inputs
are presented on the event grid (:func:`event_steps`: one step per distinct input spike time, in
order): NIR's IF with r = 1 and no leak integrates the step's inputs, fires on V > v_threshold (the
strict test after a whole timestamp group, which is ours; Norse's Heaviside is strict too) and the
first step it fires at is our first-spike time, exactly. What NIR cannot express, kept in metadata:
(1) TTFS coding: a spike's *time* is the input, so a reader on a fixed grid (not ``event_steps``)
agrees only within one step; (2) single spike: NIR's IF resets and fires again, which leaves first
spikes unchanged but the spike counts not, so only first spikes are the output; (3) the classifier's
decision: the earliest neuron wins, ties (same step) go to the larger V, then the lower index; NIR has
no decision node, and a reader that takes the first spike with the lowest index ignores the V
tie-break. With V read from the reader's own state the decisions agree exactly (tested).
:func:`first_spike_times` simulates a read graph from its parameters alone.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from creditlab.errors import CreditlabError
from creditlab.neuromorphic.nir_export import import_nir  # the one lazy import of the optional package
from creditlab.spiking.classifier import SpikingClassifier
from creditlab.spiking.coding import SILENT
from creditlab.spiking.event_layer import first_spikes
from creditlab.spiking.extractor import STDPCSNN

NEURON_METADATA = {"single_spike": True, "coding": "ttfs", "t_max": SILENT, "threshold_test": "strict, per timestamp"}


def classifier_graph(classifier: SpikingClassifier) -> Any:
    """The classifier as a ``nir.NIRGraph`` (test thresholds; weights as float32)."""
    nir = import_nir()
    weight = classifier.weight.detach().cpu().numpy().astype(np.float32)
    n = weight.shape[0]
    neurons = nir.IF(r=np.ones(n, dtype=np.float32), v_threshold=classifier.thresholds.cpu().numpy().astype(np.float32),
                     v_reset=np.zeros(n, dtype=np.float32),
                     metadata={**NEURON_METADATA, "neuron_class": classifier.neuron_class.cpu().numpy(),
                               "decision": "first spike wins; ties: larger V, then lower index"})
    nodes = {"input": nir.Input(input_type={"input": np.array([weight.shape[1]])}),
             "synapses": nir.Linear(weight=weight), "neurons": neurons,
             "output": nir.Output(output_type={"output": np.array([n])})}
    edges = [("input", "synapses"), ("synapses", "neurons"), ("neurons", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"creditlab": "spiking-fc", "t_max": SILENT})


def extractor_graph(extractor: STDPCSNN) -> Any:
    """The extractor's conv layer and spike-time pooling as a ``nir.NIRGraph`` (inputs: the
    latency-coded on/off maps ``extractor.input_times(images)``; the DoG/whitening front end is not spiking)."""
    nir = import_nir()
    c = extractor.config
    channels, height, width = 2 * extractor.input_shape[0], *extractor.input_shape[1:]
    conv_shape = (c.filters, height - c.kernel + 1, width - c.kernel + 1)
    weight = extractor.weight.detach().cpu().numpy().astype(np.float32)
    thresholds = np.broadcast_to(extractor.thresholds.cpu().numpy().astype(np.float32)[:, None, None],
                                 conv_shape).copy()
    nodes = {
        "input": nir.Input(input_type={"input": np.array([channels, height, width])}),
        "conv": nir.Conv2d(input_shape=(height, width), weight=weight, stride=1, padding=0, dilation=1, groups=1,
                           bias=np.zeros(c.filters, dtype=np.float32)),
        "neurons": nir.IF(r=np.ones(conv_shape, dtype=np.float32), v_threshold=thresholds,
                          v_reset=np.zeros(conv_shape, dtype=np.float32), metadata=dict(NEURON_METADATA)),
        "pool": nir.SumPool2d(kernel_size=np.array([c.pool, c.pool]), stride=np.array([c.pool, c.pool]),
                              padding=np.array([0, 0])),
        "output": nir.Output(output_type={"output": np.array(extractor.output_shape)}),
    }
    edges = [("input", "conv"), ("conv", "neurons"), ("neurons", "pool"), ("pool", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"creditlab": "stdp-csnn conv layer", "t_max": SILENT})


def write(graph: Any, path: str | os.PathLike) -> None:
    """Write ``graph`` to an NIR (HDF5) file."""
    import_nir().write(path, graph)


def read(path: str | os.PathLike) -> Any:
    """Read an NIR file."""
    return import_nir().read(path)


def event_steps(input_times: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """TTFS inputs (B, ...) as the steps a time-stepped NIR reader runs: ``(times (T,), spikes (T, B, ...))``
    with one step per distinct spike time of the batch (< T_max), in increasing order, and
    ``spikes[k]`` 1 where an input spikes at ``times[k]``. A neuron that first fires in step k has
    first-spike time ``times[k]``; one that never fires, T_max."""
    times = torch.unique(input_times[input_times < SILENT])
    spikes = (input_times.unsqueeze(0) == times.view(-1, *([1] * input_times.dim()))).to(input_times.dtype)
    return times, spikes


def first_spike_times(graph: Any, input_times: torch.Tensor) -> torch.Tensor:
    """First-spike times of a graph written by this module, from its parameters alone.

    ``input_times``: (B, n_in) for a classifier graph, (B, 2C, H, W) for a conv graph. Returns (B, N)
    or the pooled (B, F, H', W'). CreditlabError for a graph of another shape.
    """
    nodes = graph.nodes
    neurons = nodes.get("neurons")
    if neurons is None or type(neurons).__name__ != "IF" or not neurons.metadata.get("single_spike"):
        raise CreditlabError("not a creditlab TTFS graph: it needs a single-spike IF node named 'neurons'")
    threshold = torch.as_tensor(np.asarray(neurons.v_threshold), dtype=input_times.dtype)
    if "synapses" in nodes:
        weight = torch.as_tensor(np.asarray(nodes["synapses"].weight), dtype=input_times.dtype)
        return first_spikes(input_times, weight, threshold).times
    conv = nodes["conv"]
    weight = torch.as_tensor(np.asarray(conv.weight), dtype=input_times.dtype)
    filters, kernel = weight.shape[0], weight.shape[-1]
    batch, _, height, width = input_times.shape
    rows = F.unfold(input_times, kernel).transpose(1, 2).reshape(-1, weight[0].numel())
    out_h, out_w = height - kernel + 1, width - kernel + 1
    per_filter = threshold.reshape(filters, -1)[:, 0]
    times = first_spikes(rows, weight.reshape(filters, -1), per_filter).times
    maps = times.view(batch, out_h, out_w, filters).permute(0, 3, 1, 2)
    pool = int(np.asarray(nodes["pool"].kernel_size)[0])
    return -F.max_pool2d(-maps, pool)  # a window's pooled spike is its earliest one
