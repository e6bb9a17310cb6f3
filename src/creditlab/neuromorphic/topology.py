"""Wiring of core-constrained layers: which layer input each axon of each core reads.

Two block-sparse patterns cover the networks here:

* :func:`window_sources`: one core per square image window (a 16 x 16 window is exactly 256 axons),
  windows placed at a stride, as in the 5-core MNIST networks of pytruenorth and RANC (Esser et al.
  2015 describe a "sparsely connected network" without its wiring).
* :func:`interleaved_partitions`: a fan-in too wide for one core (more than 256 inputs) is split
  into ``ceil(width / 256)`` partitions, input ``j`` going to partition ``j mod parts``, so every
  partition sees every window's neurons and each neuron feeds exactly one axon (TrueNorth neurons have
  fan-out 1; an input pixel, injected from off chip, may feed many axons).

An axon that reads nothing is wired to index ``in_features`` (a silent input that never spikes).
"""

from __future__ import annotations

import math

import torch

from creditlab.neuromorphic.cores import CORE_AXONS


def window_offsets(size: int, window: int, stride: int) -> list[int]:
    """Start positions of windows of ``window`` pixels along an axis of ``size``, the last flush with the edge."""
    if not 1 <= window <= size:
        raise ValueError(f"window {window} must be between 1 and the image side {size}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    offsets = list(range(0, size - window + 1, stride))
    if offsets[-1] != size - window:
        offsets.append(size - window)  # cover the border
    return offsets


def window_sources(height: int, width: int, window: int, stride: int) -> torch.Tensor:
    """(windows, window * window) flat pixel indices (row-major over an ``height x width`` image)."""
    if window * window > CORE_AXONS:
        raise ValueError(f"a {window}x{window} window needs {window * window} axons; a core has {CORE_AXONS}")
    rows = torch.arange(window).view(-1, 1)
    cols = torch.arange(window).view(1, -1)
    blocks = [((top + rows) * width + (left + cols)).flatten()
              for top in window_offsets(height, window, stride) for left in window_offsets(width, window, stride)]
    return torch.stack(blocks)


def interleaved_partitions(width: int, max_axons: int = CORE_AXONS) -> torch.Tensor:
    """(parts, axons) input indices: input j goes to partition j mod parts; padding reads index ``width``."""
    parts = math.ceil(width / max_axons)
    axons = math.ceil(width / parts)
    index = torch.arange(parts * axons)
    sources = index.view(axons, parts).t().contiguous()  # partition p gets p, p + parts, p + 2 parts, ...
    sources[sources >= width] = width
    return sources
