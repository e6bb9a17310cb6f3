"""Checks that a sampled network fits TrueNorth cores, and the count of cores it occupies.

The constraints (Merolla et al. 2014; Esser et al. 2015 §2): at most 256 axons and 256 neurons per
core; a binary crossbar; each axon has one of 4 types, shared by all neurons of its core; each neuron
holds one signed integer weight per type (9-bit: -255..255), an integer leak in the same range and a
positive integer threshold; a neuron's spike goes to exactly one axon (fan-out 1), so a neuron output
is wired to at most one axon of the next layer (pixels, injected from off chip, may feed many axons).
"""

from __future__ import annotations

import torch

from creditlab.errors import CreditlabError
from creditlab.neuromorphic.cores import AXON_TYPES, CORE_AXONS, CORE_NEURONS, LEAK_RANGE, WEIGHT_RANGE
from creditlab.neuromorphic.sampling import SampledNetwork


class CoreConstraintError(CreditlabError, ValueError):
    """A network does not fit TrueNorth's cores."""


def _integer_in(values: torch.Tensor, low: int, high: int) -> bool:
    return bool((values == values.round()).all()) and bool(((values >= low) & (values <= high)).all())


def core_violations(network: SampledNetwork) -> list[str]:
    """Every way ``network`` breaks a core constraint (an empty list when it fits)."""
    problems: list[str] = []
    width = None
    for i, layer in enumerate(network.layers):
        where = f"layer {i}"
        copies, cores, axons, neurons = layer.crossbar.shape
        if axons > CORE_AXONS:
            problems.append(f"{where}: {axons} axons per core > {CORE_AXONS}")
        if neurons > CORE_NEURONS:
            problems.append(f"{where}: {neurons} neurons per core > {CORE_NEURONS}")
        if layer.crossbar.dtype != torch.bool:
            problems.append(f"{where}: crossbar is {layer.crossbar.dtype}, not binary")
        if layer.axon_types.shape != (cores, axons) or not _integer_in(layer.axon_types, 0, AXON_TYPES - 1):
            problems.append(f"{where}: every axon needs one type in 0..{AXON_TYPES - 1}")
        if layer.type_weights.shape != (cores, neurons, AXON_TYPES) or not _integer_in(layer.type_weights,
                                                                                      *WEIGHT_RANGE):
            problems.append(f"{where}: each neuron needs {AXON_TYPES} integer weights in {WEIGHT_RANGE}")
        if not _integer_in(layer.leak, *LEAK_RANGE):
            problems.append(f"{where}: leaks must be integers in {LEAK_RANGE}")
        if int(layer.threshold) != layer.threshold or layer.threshold < 1:
            problems.append(f"{where}: threshold must be a positive integer, got {layer.threshold}")
        allowed = torch.cat([layer.type_weights.flatten(), torch.zeros(1)]).unique()
        effective = layer.effective_weights()
        if not bool(torch.isin(effective, allowed).all()):
            problems.append(f"{where}: a synapse weight outside crossbar x type weight")
        if width is not None:
            if layer.in_features != width:
                problems.append(f"{where}: reads {layer.in_features} inputs, the previous layer has {width}")
            wired = layer.axon_sources[layer.axon_sources < layer.in_features]
            if wired.numel() != wired.unique().numel():
                problems.append(f"{where}: a neuron of layer {i - 1} feeds more than one axon (fan-out > 1)")
        width = layer.out_features
    return problems


def check_core_constraints(network: SampledNetwork) -> None:
    """Raise CoreConstraintError listing every violated constraint."""
    problems = core_violations(network)
    if problems:
        raise CoreConstraintError("network does not fit TrueNorth cores: " + "; ".join(problems))
