"""Time-to-first-spike coding: one spike time per input in [0, 1]; ``SILENT`` (= T_max = 1) is no spike."""

from __future__ import annotations

import torch

#: T_max: the spike time of an input or neuron that never fires
SILENT = 1.0


def latency_code(values: torch.Tensor) -> torch.Tensor:
    """Spike times ``t = 1 - x`` of intensities ``x`` in [0, 1]; ``x <= 0`` never fires (t = 1).

    Raises ValueError for values outside [0, 1] (scale them first).
    """
    if values.numel() and (values.min() < 0 or values.max() > 1):
        raise ValueError(f"latency coding needs intensities in [0, 1], got [{values.min().item():.3g}, "
                         f"{values.max().item():.3g}]; scale the inputs first")
    return torch.where(values > 0, 1.0 - values, torch.full_like(values, SILENT))


def check_spike_times(times: torch.Tensor, what: str = "input") -> None:
    """Raise ValueError unless every entry of ``times`` is a spike time in [0, 1]."""
    if not times.is_floating_point():
        raise ValueError(f"{what} spike times must be floating point, got {times.dtype}")
    if times.numel() and not bool(((times >= 0) & (times <= SILENT)).all()):
        raise ValueError(f"{what} spike times must lie in [0, 1] (1 = no spike); got values in "
                         f"[{times.min().item():.3g}, {times.max().item():.3g}]")
