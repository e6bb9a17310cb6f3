"""Neuronal Competition Groups (Goupy et al. 2024): M neurons per class with intra-class WTA and
two-compartment thresholds for competition regulation.

Neuron ``i`` belongs to class ``i // M``. With ``non_target_per_class = L`` the first L neurons of
each group are labelled non-target: trained towards the non-target time even on their own class,
left out of the regulation, still used at inference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from creditlab.spiking.event_layer import first_to_fire

REGULATIONS = ("cr2", "cr1", "none")


@dataclass(frozen=True)
class CompetitionGroups:
    """The neuron-to-class map of a layer of ``num_classes * neurons_per_class`` neurons."""

    num_classes: int
    neurons_per_class: int
    non_target_per_class: int = 0

    def __post_init__(self) -> None:
        if self.num_classes < 1 or self.neurons_per_class < 1:
            raise ValueError("num_classes and neurons_per_class must be >= 1")
        if not 0 <= self.non_target_per_class < self.neurons_per_class:
            raise ValueError(f"non_target_per_class must be in [0, neurons_per_class - 1] = "
                             f"[0, {self.neurons_per_class - 1}], got {self.non_target_per_class}")

    @property
    def num_neurons(self) -> int:
        return self.num_classes * self.neurons_per_class

    @property
    def targets_per_class(self) -> int:
        return self.neurons_per_class - self.non_target_per_class

    def neuron_class(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """Class of every neuron, (N,) int64."""
        return torch.arange(self.num_neurons, device=device) // self.neurons_per_class

    def is_target_labelled(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """True for neurons trained towards the target time on their own class, (N,) bool."""
        return torch.arange(self.num_neurons, device=device) % self.neurons_per_class >= self.non_target_per_class

    def class_winners(self, times: torch.Tensor, potentials: torch.Tensor) -> torch.Tensor:
        """Intra-class WTA: the index of the first neuron to fire in each group, (..., C)."""
        shape = (*times.shape[:-1], self.num_classes, self.neurons_per_class)
        local = first_to_fire(times.reshape(shape), potentials.reshape(shape))
        offset = torch.arange(self.num_classes, device=times.device) * self.neurons_per_class
        return local + offset


def regulate_thresholds(training_thresholds: torch.Tensor, times: torch.Tensor, potentials: torch.Tensor,
                        group_neurons: torch.Tensor, rate: float, floor: float) -> int | None:
    """Two-compartment competition regulation on one sample, in place (CR-2, Eq. of Sec. 4.2).

    Among the ``M_t`` target-labelled neurons ``group_neurons`` of the sample's class, the first to
    fire (ties: larger V) gets ``+rate (M_t - 1) / M_t`` and every other one ``-rate / M_t``: the
    group's sum of training thresholds is conserved, then thresholds are clipped below at ``floor``
    (the authors' floor is the smallest test threshold, so the sum is conserved until a loser hits it).
    Returns the winner's index (None when ``M_t <= 1``: no regulation).
    """
    m_t = group_neurons.numel()
    if m_t <= 1:
        return None
    local = int(first_to_fire(times[group_neurons], potentials[group_neurons]))
    change = torch.full((m_t,), -rate / m_t, dtype=training_thresholds.dtype, device=training_thresholds.device)
    change[local] = rate * (m_t - 1) / m_t
    training_thresholds[group_neurons] = (training_thresholds[group_neurons] + change).clamp_(min=floor)
    return int(group_neurons[local])
