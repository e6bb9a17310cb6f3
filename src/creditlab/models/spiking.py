"""Spiking models: ``spiking-fc`` (a TTFS classification layer with competition groups) and
``stdp-csnn`` (the unsupervised STDP feature extractor with that layer on top)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from creditlab.models import register_model
from creditlab.spiking.classifier import SpikingClassifier


@register_model("spiking-fc", "TTFS spiking classifier: IF neurons in competition groups (NCG option); "
                "inputs are spike times in [0, 1]", default_dataset="fashion-mnist",
                optimizer="sgd", lr=1.0, batch_size=256, epochs=100)
def spiking_fc(input_shape: tuple[int, ...], num_classes: int, neurons_per_class: int = 1,
               non_target_per_class: int = 0, regulation: str = "none", threshold: float = 200.0,
               w_init_mean: float = 0.3, w_init_std: float = 0.01, w_min: float = 0.0, w_max: float = 1.0,
               weight_norm: bool = False, seed: int = 0) -> nn.Module:
    """Options: ``neurons_per_class`` (M), ``non_target_per_class`` (L), ``regulation``
    (cr2 | cr1 | none), ``threshold``, ``w_init_mean``/``w_init_std``, ``w_min``/``w_max``, ``weight_norm``."""
    generator = torch.Generator().manual_seed(int(seed))
    return SpikingClassifier(math.prod(input_shape), num_classes, neurons_per_class, non_target_per_class,
                             regulation, threshold, w_init_mean, w_init_std, w_min, w_max, weight_norm,
                             generator)


