"""Deployment: sample binary crossbars from trained connection probabilities and run them with spikes.

:func:`sample_network` draws ``copies`` independent networks from a model built of
:class:`~creditlab.neuromorphic.cores.CoreLayer` s (every crossbar bit set with probability ``c``,
from an explicit generator; leaks rounded to the integers the hardware holds). A
:class:`SampledNetwork` runs them as TrueNorth does with one image per tick: each pixel becomes a
spike with probability equal to its intensity (drawn independently for every copy), every neuron
integrates ``V = sum(spike * crossbar * s) + leak`` once, fires if ``V >= threshold`` and resets.
An ensemble averages the copies' output spike counts per class (Esser et al. 2015 §3).

All copies run as ONE batched computation (``torch.bmm`` over copies x cores); ``batched=False``
loops over copies with the same arithmetic (for the throughput benchmark and as a cross-check).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from creditlab.neuromorphic.cores import LEAK_RANGE, CoreLayer, core_layers


@dataclass
class SampledLayer:
    """One layer of sampled cores, for ``copies`` independent copies."""

    in_features: int
    axon_sources: torch.Tensor       # (cores, axons) int64; ``in_features`` = silent axon
    axon_types: torch.Tensor         # (cores, axons) int64 in [0, 4)
    type_weights: torch.Tensor       # (cores, neurons, 4) integer-valued
    crossbar: torch.Tensor           # (copies, cores, axons, neurons) bool
    leak: torch.Tensor               # (cores, neurons) integer-valued
    threshold: int
    _weights: torch.Tensor | None = field(default=None, repr=False)
    _dense: torch.Tensor | None = field(default=None, repr=False)
    _synapses: torch.Tensor | None = field(default=None, repr=False)
    _has_silent_axons: bool | None = field(default=None, repr=False)

    @property
    def copies(self) -> int:
        return self.crossbar.shape[0]

    @property
    def cores(self) -> int:
        return self.crossbar.shape[1]

    @property
    def out_features(self) -> int:
        return self.crossbar.shape[1] * self.crossbar.shape[3]

    def synapse_weights(self) -> torch.Tensor:
        """(cores, axons, neurons) signed weight of each axon type for each neuron."""
        neurons = self.type_weights.shape[1]
        index = self.axon_types.unsqueeze(1).expand(-1, neurons, -1)
        return torch.gather(self.type_weights, 2, index).transpose(1, 2)

    def effective_weights(self) -> torch.Tensor:
        """(copies, cores, axons, neurons) float: crossbar * s, the deployed (trinary by default) synapses."""
        if self._weights is None:
            self._weights = self.crossbar.float() * self.synapse_weights().float()
        return self._weights

    def uses_dense(self) -> bool:
        """Whether to run as one dense (copies, in, out) matmul: when that is at most 4x the block
        weights and 1M entries per copy (then it beats gathering axons); else per-core blocks."""
        dense = self.in_features * self.out_features
        return dense <= min(4 * self.crossbar[0].numel(), 1_000_000)

    def dense_weights(self) -> torch.Tensor:
        """(copies, in, out): the block weights scattered into one matrix (zeros where no axon reads)."""
        if self._dense is None:
            copies, cores, _axons, neurons = self.crossbar.shape
            dense = torch.zeros(copies, self.in_features + 1, cores, neurons, device=self.crossbar.device)
            weights = self.effective_weights()
            for k in range(cores):  # an input read by several cores lands in different output columns
                dense[:, self.axon_sources[k], k, :] = weights[:, k]
            self._dense = dense[:, :self.in_features].flatten(2)
        return self._dense

    def input_fanout(self) -> torch.Tensor:
        """(in,) how many axons read each input."""
        wired = self.axon_sources[self.axon_sources < self.in_features]
        return torch.bincount(wired, minlength=self.in_features).float()

    def input_synapses(self) -> torch.Tensor:
        """(copies, in) how many set, nonzero synapses each input reaches (one accumulate per spike each)."""
        if self._synapses is None:
            row_nnz = (self.effective_weights() != 0).sum(3).float()  # (copies, cores, axons)
            per_input = torch.zeros(self.copies, self.in_features + 1, device=row_nnz.device)
            per_input.index_add_(1, self.axon_sources.flatten(), row_nnz.flatten(1))
            self._synapses = per_input[:, :self.in_features]
        return self._synapses

    def axon_spikes(self, spikes: torch.Tensor) -> torch.Tensor:
        """(copies, batch, in) binary -> (copies, batch, cores, axons) binary."""
        if self._has_silent_axons is None:  # checked once, not on every tick (a device sync)
            self._has_silent_axons = bool((self.axon_sources == self.in_features).any())
        if self._has_silent_axons:
            spikes = torch.nn.functional.pad(spikes, (0, 1))
        return spikes[..., self.axon_sources]

    def event_potentials(self, spikes: torch.Tensor) -> torch.Tensor:
        """Event-driven :meth:`potentials` of all copies in ONE ``embedding_bag``: each spike that reaches
        an axon adds that axon's row of synapse weights to its core's neurons, so the work scales with
        the spikes (about 13 % of MNIST pixels) rather than with every axon (as a matmul's does).

        The rows of the table are the block weights (copy, core, axon) -> neurons; a bag is one (copy,
        core, image). ``nonzero`` lists the active axons in (copy, core, image, axon) order, so every bag
        is one contiguous run of them; empty bags sum to 0. Same integer sums as the matmul, exactly.
        """
        axon = self.axon_spikes(spikes.bool()).transpose(1, 2)  # (copies, cores, batch, axons)
        copies, cores, batch, axons = axon.shape
        neurons = self.crossbar.shape[3]
        flat = axon.reshape(copies * cores * batch, axons)  # one bag per row, in (copy, core, image) order
        bag, a = flat.nonzero(as_tuple=True)
        rows = torch.div(bag, batch, rounding_mode="floor") * axons + a  # table row (copy, core, axon)
        per_bag = torch.bincount(bag, minlength=len(flat))
        offsets = per_bag.cumsum(0) - per_bag
        table = self.effective_weights().reshape(copies * cores * axons, neurons)
        out = torch.nn.functional.embedding_bag(rows, table, offsets, mode="sum")
        return out.view(copies, cores, batch, neurons).transpose(1, 2).reshape(copies, batch, cores * neurons)

    def potentials(self, spikes: torch.Tensor, batched: bool = True, events: bool = False) -> torch.Tensor:
        """(copies, batch, in) spikes -> (copies, batch, cores * neurons) summed synaptic input (no leak).

        ``events``: the event-driven formulation (:meth:`event_potentials`); else matmuls, all copies in
        one ``bmm`` (``batched``) or a loop over copies.
        """
        if events:
            return self.event_potentials(spikes).to(spikes.dtype)
        if self.uses_dense():
            dense = self.dense_weights()
            if batched:
                return torch.bmm(spikes, dense)
            return torch.stack([spikes[i] @ dense[i] for i in range(self.copies)])
        axon = self.axon_spikes(spikes)
        copies, batch, cores, axons = axon.shape
        weights = self.effective_weights()
        if batched:
            flat = axon.permute(0, 2, 1, 3).reshape(copies * cores, batch, axons)
            potential = torch.bmm(flat, weights.reshape(copies * cores, axons, -1))
            return potential.view(copies, cores, batch, -1).permute(0, 2, 1, 3).flatten(2)
        return torch.stack([torch.bmm(axon[i].transpose(0, 1), weights[i]).transpose(0, 1).flatten(1)
                            for i in range(copies)])

    def forward(self, spikes: torch.Tensor, batched: bool = True, events: bool = False) -> torch.Tensor:
        """One tick: (copies, batch, in) spikes -> (copies, batch, out) spikes (V = input + leak >= threshold)."""
        fired = (self.potentials(spikes, batched, events) + self.leak.flatten()) >= self.threshold
        return fired.to(spikes.dtype)


@dataclass
class SpikeCounts:
    """Per-image event counts of a run, summed over the copies (NeuroBench-style: a binary spike
    arriving at a set synapse is one accumulate)."""

    input_spikes: float      # pixel spikes injected (off chip), per image
    axon_events: float       # spikes delivered to axons (a pixel feeding k axons counts k), per image
    synaptic_events: float   # accumulates: active axon x set crossbar bit with nonzero weight, per image
    neuron_spikes: float     # spikes fired by all neurons of all layers, per image

    def as_dict(self) -> dict[str, float]:
        """JSON-ready."""
        return {"input_spikes": self.input_spikes, "axon_events": self.axon_events,
                "synaptic_events": self.synaptic_events, "neuron_spikes": self.neuron_spikes}


@dataclass
class SampledNetwork:
    """``copies`` sampled networks, layer by layer, with the class of every output neuron."""

    layers: list[SampledLayer]
    output_class: torch.Tensor   # (out_features,) int64 class of each output neuron, -1 if unused
    num_classes: int

    @property
    def copies(self) -> int:
        return self.layers[0].copies

    @property
    def cores_per_copy(self) -> int:
        return sum(layer.cores for layer in self.layers)

    @property
    def cores(self) -> int:
        """Cores the whole ensemble occupies."""
        return self.copies * self.cores_per_copy

    def input_spikes(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(copies, batch, pixels) binary: pixel i spikes with probability images[:, i], per copy."""
        flat = images.flatten(1)
        draws = torch.rand((self.copies, *flat.shape), generator=generator, device=flat.device)
        return (draws < flat).float()

    def run(self, spikes: torch.Tensor, batched: bool = True, events: bool = False
            ) -> tuple[torch.Tensor, SpikeCounts]:
        """Input spikes (copies, batch, pixels) -> (class spike counts (copies, batch, classes), event counts).

        ``batched``/``events``: how the potentials are computed (see :meth:`SampledLayer.potentials`)."""
        batch = spikes.shape[1]
        axon_events = synaptic = neuron_spikes = 0.0
        input_spikes = float(spikes.sum())
        for layer in self.layers:
            out = layer.forward(spikes, batched, events)
            axon_events += float((spikes @ layer.input_fanout()).sum())
            synaptic += float((spikes * layer.input_synapses().unsqueeze(1)).sum())
            neuron_spikes += float(out.sum())
            spikes = out
        used = self.output_class >= 0
        onehot = torch.zeros(int(used.sum()), self.num_classes, device=spikes.device)
        onehot[torch.arange(len(onehot), device=spikes.device), self.output_class[used]] = 1.0
        counts = spikes[..., used] @ onehot
        return counts, SpikeCounts(input_spikes / batch, axon_events / batch, synaptic / batch, neuron_spikes / batch)

    def class_scores(self, images: torch.Tensor, generator: torch.Generator, batched: bool = True,
                     events: bool = False) -> torch.Tensor:
        """(batch, classes): output spikes per class averaged over the copies (the ensemble's vote)."""
        counts, _ = self.run(self.input_spikes(images, generator), batched, events)
        return counts.mean(0)


@torch.no_grad()
def sample_network(model: nn.Module, copies: int, generator: torch.Generator) -> SampledNetwork:
    """Draw ``copies`` binary networks from ``model``'s connection probabilities (bit ~ Bernoulli(c)).

    ``model`` must consist of CoreLayers (in forward order) and expose ``output_class`` (class of each
    neuron of its last layer) and ``num_classes``.
    """
    if copies < 1:
        raise ValueError(f"copies must be >= 1, got {copies}")
    layers = core_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no CoreLayer to sample")
    sampled = []
    for layer in layers:
        layer: CoreLayer
        c = layer.connection_probability.detach().clamp(0.0, 1.0)
        draws = torch.rand((copies, *c.shape), generator=generator, device=c.device)
        sampled.append(SampledLayer(
            in_features=layer.in_features, axon_sources=layer.axon_sources.clone(),
            axon_types=layer.axon_types.clone(), type_weights=layer.type_weights.clone(),
            crossbar=draws < c, leak=layer.leak.detach().round().clamp(*LEAK_RANGE),
            threshold=layer.threshold))
    return SampledNetwork(sampled, model.output_class.clone(), int(model.num_classes))  # type: ignore[union-attr]
