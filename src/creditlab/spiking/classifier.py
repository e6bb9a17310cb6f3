"""The spiking classification layer: TTFS inputs -> N single-spike IF neurons in competition groups.

Decision (inference and training statistics): the first neuron to fire wins, ties broken by the
larger potential; the predicted class is the winner's class. ``forward`` returns class scores whose
argmax is that decision: ``1 - t_c`` (``t_c`` the earliest spike of class ``c``), with the winner's
class raised by one.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from creditlab.spiking.coding import check_spike_times
from creditlab.spiking.event_layer import FirstSpikes, SortedInputs, first_spikes, first_to_fire
from creditlab.spiking.ncg import REGULATIONS, CompetitionGroups


class SpikingClassifier(nn.Module):
    """A fully connected layer of IF neurons grouped by class (M = ``neurons_per_class``).

    ``thresholds`` are the fixed test thresholds; ``training_thresholds`` the adaptive second
    compartment (``regulation="cr2"``), used in training only by the target-labelled neurons of the
    sample's class. Weights start N(``w_init_mean``, ``w_init_std``), clipped to [w_min, w_max];
    with ``weight_norm`` every update is followed by rescaling each neuron's L1 norm to its initial one.
    """

    #: spike times have no gradient: only the supervised STDP rules train this layer (Rule.__init__ checks)
    trained_by = ("s2stdp", "sstdp", "rstdp")

    def __init__(self, num_inputs: int, num_classes: int, neurons_per_class: int = 1,
                 non_target_per_class: int = 0, regulation: str = "none", threshold: float = 200.0,
                 w_init_mean: float = 0.3, w_init_std: float = 0.01, w_min: float = 0.0, w_max: float = 1.0,
                 weight_norm: bool = False, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if regulation not in REGULATIONS:
            raise ValueError(f"unknown regulation {regulation!r}; valid: {', '.join(REGULATIONS)}")
        if not w_min < w_max:
            raise ValueError(f"need w_min < w_max, got [{w_min}, {w_max}]")
        if not threshold > 0:
            raise ValueError(f"threshold must be > 0, got {threshold}")
        if regulation != "none" and neurons_per_class - non_target_per_class < 2:
            raise ValueError(f"regulation {regulation!r} needs at least 2 target-labelled neurons per class "
                             f"(neurons_per_class - non_target_per_class), got "
                             f"{neurons_per_class - non_target_per_class}; use regulation='none'")
        self.groups = CompetitionGroups(num_classes, neurons_per_class, non_target_per_class)
        self.regulation = regulation
        self.w_min, self.w_max, self.weight_norm = float(w_min), float(w_max), bool(weight_norm)
        #: spikes integrated at a time at inference (the simulation stops once every neuron fired)
        self.time_chunk: int | None = 128
        n = self.groups.num_neurons
        init = torch.randn(n, num_inputs, generator=generator) * w_init_std + w_init_mean
        self.weight = nn.Parameter(init.clamp_(w_min, w_max))
        self.register_buffer("thresholds", torch.full((n,), float(threshold)))
        self.register_buffer("training_thresholds", torch.full((n,), float(threshold)))
        self.register_buffer("initial_norm", self.weight.detach().abs().sum(1))
        self.register_buffer("neuron_class", self.groups.neuron_class())
        self.register_buffer("target_labelled", self.groups.is_target_labelled())
        classes = torch.arange(num_classes).unsqueeze(1)
        #: (C, N): the target-labelled neurons of each class (trained towards the target time, regulated)
        self.register_buffer("own_target", (self.neuron_class == classes) & self.target_labelled, persistent=False)
        self._groups = [torch.nonzero(row).flatten() for row in self.own_target]

    def _apply(self, fn, recurse=True):  # noqa: ANN001, ANN202 - keep the cached group indices on the device
        result = super()._apply(fn, recurse)
        self._groups = [torch.nonzero(row).flatten() for row in self.own_target]
        return result

    def regulated_group(self, label: int) -> torch.Tensor:
        """Indices of the target-labelled neurons of class ``label`` (the group CR regulates)."""
        return self._groups[label]

    @property
    def num_inputs(self) -> int:
        return self.weight.shape[1]

    def flat_times(self, inputs: torch.Tensor) -> torch.Tensor:
        """Inputs (B, ...) as spike times (B, n_in), checked."""
        x = inputs.flatten(1)
        if x.shape[1] != self.num_inputs:
            raise ValueError(f"the classifier has {self.num_inputs} inputs, got {x.shape[1]} per example")
        check_spike_times(x)
        return x

    def spikes(self, inputs: torch.Tensor | SortedInputs, thresholds: torch.Tensor | None = None,
               weight: torch.Tensor | None = None) -> FirstSpikes:
        """First spikes of every neuron (test thresholds unless given)."""
        w = self.weight.detach() if weight is None else weight
        return first_spikes(inputs, w, self.thresholds if thresholds is None else thresholds,
                            monotone=True if self.w_min >= 0 else None, time_chunk=self.time_chunk)

    def class_scores(self, spikes: FirstSpikes) -> torch.Tensor:
        """(B, C) scores whose argmax is the first-spike decision (see module docstring)."""
        batch = spikes.times.shape[0]
        c, m = self.groups.num_classes, self.groups.neurons_per_class
        earliest = spikes.times.reshape(batch, c, m).min(-1).values
        winner = first_to_fire(spikes.times, spikes.potentials)
        scores = 1.0 - earliest
        scores[torch.arange(batch, device=scores.device), self.neuron_class[winner]] += 1.0
        return scores

    def training_threshold_vector(self, label: int) -> torch.Tensor:
        """Thresholds for a training sample of class ``label``: the training compartment for the
        target-labelled neurons of that class under regulation, the test thresholds elsewhere."""
        if self.regulation == "none":
            return self.thresholds
        return torch.where(self.own_target[label], self.training_thresholds, self.thresholds)

    def constrained_rows(self, block: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Rows ``rows`` of a weight matrix, ``block``, clipped to [w_min, w_max] in place, then
        (weight_norm) rescaled to their initial L1 norms."""
        block.clamp_(self.w_min, self.w_max)
        if self.weight_norm:
            block *= (self.initial_norm[rows] / block.abs().sum(1).clamp_min(1e-12)).unsqueeze(1)
        return block

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.class_scores(self.spikes(self.flat_times(inputs)))


def decision_error(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The loss reported for spiking classifiers: the error rate of the decision (no gradient)."""
    return (scores.argmax(1) != targets).float().mean()


def find_classifier(model: nn.Module) -> SpikingClassifier | None:
    """The spiking classifier a supervised STDP rule trains: the model itself or its ``classifier``."""
    if isinstance(model, SpikingClassifier):
        return model
    head = getattr(model, "classifier", None)
    return head if isinstance(head, SpikingClassifier) else None
