"""Export one sampled copy to NIR (Neuromorphic Intermediate Representation), and run a NIR graph.

A sampled network becomes ``input -> [Affine -> IF] per layer -> Affine (class readout) -> output``:
each Affine holds the layer's deployed integer synapses as a dense (out, in) matrix (trinary
{-1, 0, +1} by default, zeros where no axon reads an input) and the integer leaks as bias; each IF
(r = 1, v_reset = 0, ``v_threshold = threshold - 1/2``) run for one step from V = 0 fires where
``V > threshold - 1/2``, which for integer V is TrueNorth's ``V >= threshold``. The readout Affine sums
each class's output spikes. One image is one tick: a reader runs **one step per image from a fresh
state** (every layer once, as the chip's tick does; metadata ``steps_per_image`` = 1), and then
a generic NIR reader (Norse's ``from_nir``, tested) gives the same class counts exactly. What the
graph does not carry: the input coding (each pixel a Bernoulli spike with probability equal to its
intensity, drawn per copy, is the caller's) and the ensemble (one graph per sampled copy; the copies'
counts are averaged, ties to the lowest class index).

``nir`` is an optional dependency (``pip install 'creditlab[nir]'``), imported only here, lazily.
:func:`run_nir` is a small, independent interpreter of such graphs (numpy), used to check a round trip.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from creditlab.errors import CreditlabError
from creditlab.neuromorphic.sampling import SampledNetwork


class NIRUnavailableError(CreditlabError, ImportError):
    """The optional ``nir`` package is not installed."""


def import_nir() -> Any:
    """The ``nir`` module, or NIRUnavailableError saying how to install it."""
    try:
        import nir
    except ImportError as error:
        raise NIRUnavailableError("NIR export needs the optional 'nir' package: pip install 'creditlab[nir]' "
                                  "(or pip install 'nir>=1.0')") from error
    return nir


def to_nir(network: SampledNetwork, copy: int = 0) -> Any:
    """A ``nir.NIRGraph`` of copy ``copy`` of ``network`` (see the module docstring)."""
    nir = import_nir()
    if not 0 <= copy < network.copies:
        raise ValueError(f"copy must be in 0..{network.copies - 1}, got {copy}")
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array([network.layers[0].in_features])})}
    edges: list[tuple[str, str]] = []
    previous = "input"
    for i, layer in enumerate(network.layers):
        weight = layer.dense_weights()[copy].t().double().cpu().numpy()  # (out, in)
        nodes[f"synapses_{i}"] = nir.Affine(weight=weight, bias=layer.leak.flatten().double().cpu().numpy())
        size = weight.shape[0]
        nodes[f"neurons_{i}"] = nir.IF(r=np.ones(size), v_threshold=np.full(size, layer.threshold - 0.5),
                                       v_reset=np.zeros(size))
        edges += [(previous, f"synapses_{i}"), (f"synapses_{i}", f"neurons_{i}")]
        previous = f"neurons_{i}"
    readout = np.zeros((network.num_classes, len(network.output_class)))
    for neuron, cls in enumerate(network.output_class.tolist()):
        if cls >= 0:
            readout[cls, neuron] = 1.0
    nodes["readout"] = nir.Affine(weight=readout, bias=np.zeros(network.num_classes))
    nodes["output"] = nir.Output(output_type={"output": np.array([network.num_classes])})
    edges += [(previous, "readout"), ("readout", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={
        "source": "creditlab truenorth", "copy": copy, "steps_per_image": 1,
        "input": "binary pixel spikes, one Bernoulli(intensity) draw per image and copy"})


def run_nir(graph: Any, spikes: np.ndarray) -> np.ndarray:
    """Run a chain-shaped graph of Input/Affine/IF (one step from V = 0)/Threshold/Output nodes on
    (batch, in) input spikes."""
    nir = import_nir()
    following = dict(graph.edges)
    name, value = "input", np.asarray(spikes, dtype=np.float64)
    while name in following:
        name = following[name]
        node = graph.nodes[name]
        if isinstance(node, nir.Affine):
            value = value @ np.asarray(node.weight).T + np.asarray(node.bias)
        elif isinstance(node, nir.IF):
            value = (np.asarray(node.r) * value > np.asarray(node.v_threshold)).astype(np.float64)
        elif isinstance(node, nir.Threshold):
            value = (value > np.asarray(node.threshold)).astype(np.float64)
        elif not isinstance(node, nir.Output):
            raise ValueError(f"run_nir handles Affine, IF, Threshold and Output nodes, not {type(node).__name__}")
    return value
