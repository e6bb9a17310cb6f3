"""Spiking models: ``spiking-fc`` (a TTFS classification layer with competition groups) and
``stdp-csnn`` (the unsupervised STDP feature extractor with that layer on top)."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn

from creditlab.models import register_model
from creditlab.spiking.classifier import SpikingClassifier
from creditlab.spiking.extractor import PAPER_CONFIGS, STDPCSNN, CSNNConfig, paper_config


@register_model("spiking-fc", "TTFS spiking classifier: IF neurons in competition groups (NCG option); "
                "inputs are spike times in [0, 1] (images: latency-coded, t = 1 - x)", default_dataset="fashion-mnist",
                optimizer="sgd", lr=1.0, batch_size=256, epochs=100, normalization="latency")
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


#: the extractor configuration used for inputs of each shape unless ``features_of`` says otherwise
_DEFAULT_FEATURES = {1: "fashion-mnist", 3: "cifar10"}


class STDPCSNNNetwork(nn.Module):
    """The STDP-CSNN extractor (``extractor``, trained unsupervised) under a spiking classifier.

    :meth:`prepare` trains the extractor on the training images first (unless already trained, e.g.
    restored from a checkpoint) and extracts the features of every split once; :meth:`encode` then
    reads features from that in-memory cache (by image contents), extracting only images it has not
    seen. The supervised STDP rules train ``classifier`` on ``encode``'s output.
    """

    trained_by = SpikingClassifier.trained_by

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, config: CSNNConfig,
                 extractor_train: int | None, seed: int, **classifier_options: Any) -> None:
        super().__init__()
        self.seed, self.extractor_train = int(seed), extractor_train
        self.extractor = STDPCSNN(input_shape, config, torch.Generator().manual_seed(int(seed)))
        self.classifier = SpikingClassifier(math.prod(self.extractor.output_shape), num_classes,
                                            generator=torch.Generator().manual_seed(int(seed)), **classifier_options)
        self._cache: dict[bytes, torch.Tensor] = {}

    def prepare(self, images: torch.Tensor, *other_splits: torch.Tensor) -> dict[str, Any]:
        """Train the extractor on (the first ``extractor_train`` of) the training ``images`` if it is
        untrained, then cache the features of ``images`` and ``other_splits``. Returns fit statistics."""
        stats: dict[str, Any] = {}
        if not bool(self.extractor.trained):
            fit_images = images[:self.extractor_train].cpu()
            stats = self.extractor.fit(fit_images, torch.Generator().manual_seed(self.seed))
        for split in (images, *other_splits):
            self.encode(split)
        return stats

    def encode(self, images: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
        """Pooled first-spike features (B, F) of images (B, C, H, W), cached by image contents."""
        cpu = images.detach().cpu().contiguous()
        keys = [row.numpy().tobytes() for row in cpu]
        missing = [i for i, key in enumerate(keys) if key not in self._cache]
        for start in range(0, len(missing), chunk):
            part = missing[start:start + chunk]
            features = self.extractor.encode(images[part]).flatten(1).cpu()
            for i, row in zip(part, features, strict=True):
                self._cache[keys[i]] = row
        if not keys:
            return images.new_zeros(0, self.classifier.num_inputs)
        return torch.stack([self._cache[key] for key in keys]).to(images.device)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.encode(images))


@register_model("stdp-csnn", "STDP-CSNN: unsupervised STDP conv features (trained first, cached) under a TTFS "
                "spiking classifier (NCG option); images in [0, 1]", default_dataset="fashion-mnist",
                optimizer="sgd", lr=1.0, batch_size=256, epochs=20, normalization="unit")
def stdp_csnn(input_shape: tuple[int, ...], num_classes: int, neurons_per_class: int = 1,
              non_target_per_class: int = 0, regulation: str = "none", threshold: float = 300.0,
              w_init_mean: float = 0.3, w_init_std: float = 0.01, weight_norm: bool = True,
              features_of: str | None = None, extractor_epochs: int = 1, extractor_train: int | None = 10000,
              seed: int = 0) -> nn.Module:
    """Options: the classifier's ``neurons_per_class`` (M), ``non_target_per_class`` (L),
    ``regulation`` (competition regulation: cr2 | cr1 | none), ``threshold``, ``w_init_mean``/``w_init_std``,
    ``weight_norm``; the extractor's ``features_of`` (whose configuration: mnist | fashion-mnist | cifar10;
    by default fashion-mnist for 1 channel, cifar10 for 3), ``extractor_epochs`` (the paper: 100) and
    ``extractor_train`` (training images it is fitted on; None: all)."""
    if len(input_shape) != 3:
        raise ValueError(f"model 'stdp-csnn' takes images (C, H, W), got input shape {tuple(input_shape)}")
    name = features_of or _DEFAULT_FEATURES.get(input_shape[0])
    if name is None:
        raise ValueError(f"model 'stdp-csnn' has no extractor configuration for {input_shape[0]} channels; "
                         f"pass features_of= one of {', '.join(PAPER_CONFIGS)}")
    if extractor_train is not None and extractor_train < 1:
        raise ValueError(f"extractor_train must be >= 1 (or None: every training image), got {extractor_train}")
    config = paper_config(name, epochs=int(extractor_epochs))
    if (config.preprocessing == "whiten") != (input_shape[0] == 3):
        raise ValueError(f"features_of={name!r} expects {'3' if config.preprocessing == 'whiten' else '1'}-channel "
                         f"images, got {input_shape[0]} channels")
    return STDPCSNNNetwork(tuple(input_shape), num_classes, config, extractor_train, seed,
                           neurons_per_class=neurons_per_class, non_target_per_class=non_target_per_class,
                           regulation=regulation, threshold=threshold, w_init_mean=w_init_mean,
                           w_init_std=w_init_std, weight_norm=weight_norm)
