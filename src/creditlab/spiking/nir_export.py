"""NIR export of the spiking classifier and of the STDP-CSNN conv layer, and their read-back.

``nir`` (the Neuromorphic Intermediate Representation, ``pip install 'creditlab[nir]'``) is imported
only when these functions run. Mapping:

* classifier: ``Input (n_in) -> Linear (W) -> IF (r = 1, v_threshold = theta, v_reset = 0) -> Output``;
* conv layer: ``Input (2C, H, W) -> Conv2d (filters, stride 1, no padding, no bias) -> IF -> SumPool2d
  (pool x pool) -> Threshold (0) -> Output``; a pooled channel spikes when any neuron of its window
  does, so its first spike is the window's earliest spike (our pooling of spike times).

What NIR's IF does not say is in the node metadata: inputs are time-to-first-spike coded in [0, T_max]
(``t_max``; no spike = T_max), every neuron fires at most once (``single_spike``; no reset matters),
the test is strict V > theta after all input spikes of a timestamp, and the classifier's decision
(first spike wins, ties to the larger V; ``neuron_class`` maps neurons to classes).
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
        "first_in_window": nir.Threshold(threshold=np.zeros(extractor.output_shape, dtype=np.float32)),
        "output": nir.Output(output_type={"output": np.array(extractor.output_shape)}),
    }
    edges = [("input", "conv"), ("conv", "neurons"), ("neurons", "pool"), ("pool", "first_in_window"),
             ("first_in_window", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"creditlab": "stdp-csnn conv layer", "t_max": SILENT})


def write(graph: Any, path: str | os.PathLike) -> None:
    """Write ``graph`` to an NIR (HDF5) file."""
    import_nir().write(path, graph)


def read(path: str | os.PathLike) -> Any:
    """Read an NIR file."""
    return import_nir().read(path)


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
