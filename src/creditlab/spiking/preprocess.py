"""Input preprocessing of the STDP-CSNN: DoG on/off filtering (MNIST, Fashion-MNIST), patch
whitening with sign separation (CIFAR-10), per-feature min-max scaling fitted on training images."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def dog_kernel(size: int = 7, center_sd: float = 1.0, surround_sd: float = 2.0) -> torch.Tensor:
    """Difference of two normalized Gaussians (centre minus surround), (size, size)."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    d2 = coords.view(-1, 1) ** 2 + coords.view(1, -1) ** 2
    center = torch.exp(-d2 / (2 * center_sd ** 2))
    surround = torch.exp(-d2 / (2 * surround_sd ** 2))
    return (center / center.sum() - surround / surround.sum()).float()


def on_off(images: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """DoG-filter every channel (replicate padding) and split into ON (positive) and OFF channels."""
    c = images.shape[1]
    pad = kernel.shape[-1] // 2
    weight = kernel.to(images).expand(c, 1, *kernel.shape)
    filtered = F.conv2d(F.pad(images, (pad, pad, pad, pad), mode="replicate"), weight, groups=c)
    return torch.cat([filtered.clamp(min=0), (-filtered).clamp(min=0)], 1)


def fit_whitening(images: torch.Tensor, patch: int, generator: torch.Generator, patches: int = 20000,
                  eps: float = 1e-2) -> torch.Tensor:
    """ZCA whitening filters of ``patch``x``patch`` patches, as conv weights (C, C, patch, patch)."""
    c, height, width = images.shape[1:]
    positions = (height - patch + 1) * (width - patch + 1)
    pick_b = torch.randint(0, len(images), (patches,), generator=generator)
    pick_l = torch.randint(0, positions, (patches,), generator=generator)
    parts = []  # unfold only the picked images, a chunk at a time (all of CIFAR-10 unfolded is 28 GB)
    for start in range(0, patches, 1000):
        picked = pick_l[start:start + 1000]
        cols = F.unfold(images[pick_b[start:start + 1000]], patch)  # (chunk, C*p*p, L)
        parts.append(cols[torch.arange(len(picked)), :, picked])
    x = torch.cat(parts).double()
    x = x - x.mean(0)
    cov = x.t() @ x / len(x)
    values, vectors = torch.linalg.eigh(cov)
    zca = vectors @ torch.diag(1.0 / torch.sqrt(values.clamp(min=0) + eps)) @ vectors.t()
    centre = (patch // 2) * patch + patch // 2
    rows = [zca[ch * patch * patch + centre] for ch in range(c)]  # the filter centred on each channel
    return torch.stack(rows).view(c, c, patch, patch).float()


def whiten_separate(images: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """Apply whitening filters (replicate padding), then separate signs: 2C channels."""
    pad = filters.shape[-1] // 2
    white = F.conv2d(F.pad(images, (pad, pad, pad, pad), mode="replicate"), filters.to(images))
    return torch.cat([white.clamp(min=0), (-white).clamp(min=0)], 1)


def fit_scaling(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature minimum and maximum over the training images."""
    return features.amin(0), features.amax(0)


def apply_scaling(features: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Min-max scaling into [0, 1] (constant features map to 0, i.e. silent); clipped for test data."""
    span = high - low
    scaled = torch.where(span > 0, (features - low) / torch.where(span > 0, span, torch.ones_like(span)),
                         torch.zeros_like(features))
    return scaled.clamp_(0.0, 1.0)


def output_size(size: int, kernel: int, pool: int) -> int:
    """Side of the pooled map for a ``size`` input, valid convolution and ``pool`` pooling."""
    return math.floor((size - kernel + 1) / pool)
