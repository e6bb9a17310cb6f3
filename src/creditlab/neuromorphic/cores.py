"""TrueNorth neurosynaptic cores as a trainable layer: connection probabilities over a binary crossbar.

A core has ``CORE_AXONS`` = 256 input axons, ``CORE_NEURONS`` = 256 neurons and a 256 x 256 binary
crossbar; each axon has one of ``AXON_TYPES`` = 4 types, and each neuron holds one signed integer
weight per type (Merolla et al., Science 2014; Esser et al. 2015 §2). The synapse from axon ``a`` to
neuron ``n`` of core ``k`` is therefore::

    w[k, a, n] = crossbar[k, a, n] * type_weight[k, n, axon_type[k, a]]      crossbar in {0, 1}

With type weights of +-1 every deployed synapse is trinary, {-1, 0, +1}. Training replaces the
crossbar bit by its probability ``c in [0, 1]`` (Esser et al. 2015): :class:`CoreLayer` holds ``c``
(``connection_probability``, one block per core: cores x axons x neurons) and the neuron leaks, and
computes each neuron's spike probability with the Gaussian approximation of
:mod:`creditlab.neuromorphic.gaussian`. A layer of several cores is block-sparse: each core reads
only the inputs its axons are wired to (``axon_sources``), so fan-in above 256 is spread over cores.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from creditlab.neuromorphic.gaussian import spike_probability

#: hardware limits of one TrueNorth core (Merolla et al. 2014; quoted in Esser et al. 2015)
CORE_AXONS = 256
CORE_NEURONS = 256
AXON_TYPES = 4
#: signed 9-bit leak and synaptic weight registers of a TrueNorth neuron (Cassidy et al. 2013 neuron model)
LEAK_RANGE = (-255, 255)
WEIGHT_RANGE = (-255, 255)


class CoreLayer(nn.Module):
    """A layer of TrueNorth cores trained on connection probabilities and leaks.

    Args:
        in_features: width of the layer input.
        axon_sources: (cores, axons) int64, the layer-input index each axon of each core reads
            (``in_features`` for an axon wired to nothing).
        neurons_per_core: neurons used in every core (<= 256).
        axon_types: (cores, axons) int64 in [0, 4).
        type_weights: (cores, neurons, 4) integers in [-255, 255], fixed (not trained).
        threshold: integer firing threshold; a neuron spikes when V = sum + leak >= threshold.
        generator: initializes ``connection_probability`` ~ U(0, 1).

    Input (batch, in_features) spike probabilities in [0, 1]; output (batch, cores * neurons) spike
    probabilities, core-major (core k's neuron n is column k * neurons + n).
    """

    def __init__(self, in_features: int, axon_sources: torch.Tensor, neurons_per_core: int, axon_types: torch.Tensor,
                 type_weights: torch.Tensor, threshold: int, generator: torch.Generator,
                 variance_floor: float = 1e-2) -> None:
        super().__init__()
        cores, axons = axon_sources.shape
        check_core_shape(axons, neurons_per_core)
        if axon_types.shape != axon_sources.shape:
            raise ValueError(f"axon_types must have shape {tuple(axon_sources.shape)}, got {tuple(axon_types.shape)}")
        if type_weights.shape != (cores, neurons_per_core, AXON_TYPES):
            raise ValueError(f"type_weights must have shape ({cores}, {neurons_per_core}, {AXON_TYPES}), "
                             f"got {tuple(type_weights.shape)}")
        if axon_sources.numel() and not 0 <= int(axon_sources.min()) <= int(axon_sources.max()) <= in_features:
            raise ValueError(f"axon_sources must index inputs 0..{in_features - 1} (or {in_features}: unused)")
        self.in_features = int(in_features)
        self.has_silent_axons = bool((axon_sources == in_features).any())
        self.register_buffer("axon_sources", axon_sources.long())
        self.register_buffer("axon_types", axon_types.long())
        self.register_buffer("type_weights", type_weights.float())
        self.threshold = int(threshold)
        self.variance_floor = float(variance_floor)
        self.connection_probability = nn.Parameter(torch.rand(cores, axons, neurons_per_core, generator=generator))
        self.leak = nn.Parameter(torch.zeros(cores, neurons_per_core))

    @property
    def cores(self) -> int:
        """Number of cores in this layer."""
        return self.axon_sources.shape[0]

    @property
    def neurons_per_core(self) -> int:
        """Neurons used in each core."""
        return self.connection_probability.shape[2]

    @property
    def out_features(self) -> int:
        """Output width: cores x neurons per core."""
        return self.cores * self.neurons_per_core

    def synapse_weights(self) -> torch.Tensor:
        """(cores, axons, neurons): the signed weight a set crossbar bit gives, s = type_weight[type(axon)]."""
        index = self.axon_types.unsqueeze(1).expand(-1, self.neurons_per_core, -1)  # (cores, neurons, axons)
        return torch.gather(self.type_weights, 2, index).transpose(1, 2)

    def axon_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in_features) -> (..., cores, axons): what every axon of every core receives."""
        if self.has_silent_axons:
            x = torch.nn.functional.pad(x, (0, 1))  # the silent input: never spikes
        return x[..., self.axon_sources]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return spike_probability(self.axon_inputs(x), self.connection_probability, self.synapse_weights(),
                                 self.leak, self.threshold, self.variance_floor).flatten(1)

    @torch.no_grad()
    def apply_constraints(self) -> None:
        """Clip to what the hardware can hold: c to [0, 1], leaks to the signed 9-bit range."""
        self.connection_probability.clamp_(0.0, 1.0)
        self.leak.clamp_(*LEAK_RANGE)


def check_core_shape(axons: int, neurons: int) -> None:
    """Raise ValueError unless a core of ``axons`` inputs and ``neurons`` neurons fits a TrueNorth core."""
    if not 1 <= axons <= CORE_AXONS:
        raise ValueError(f"a core has 1 to {CORE_AXONS} axons, got {axons}")
    if not 1 <= neurons <= CORE_NEURONS:
        raise ValueError(f"a core has 1 to {CORE_NEURONS} neurons, got {neurons}")


def core_count(model: nn.Module) -> int:
    """Cores one copy of ``model`` occupies (sum over its CoreLayers)."""
    return sum(layer.cores for layer in model.modules() if isinstance(layer, CoreLayer))


def core_layers(model: nn.Module) -> list[CoreLayer]:
    """The CoreLayers of ``model`` in forward order (the order they were registered)."""
    return [m for m in model.modules() if isinstance(m, CoreLayer)]
