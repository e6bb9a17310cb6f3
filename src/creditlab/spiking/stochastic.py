"""Stochastic spiking neurons for neural sampling (Buesing et al. 2011), time-stepped and batched.

Discrete time, one step = one time unit. A neuron that is not refractory spikes in a step with
probability (the GLM / neural-sampling escape rate)::

    p_spike = sigma(u - ln t_ref)                                  (Buesing et al. 2011, eq. 13)

then stays refractory for ``t_ref`` steps (it cannot spike again until ``t_ref`` steps after its
spike). Its state ``z`` is 1 in the spike step and the ``t_ref - 1`` steps after it; its
postsynaptic potential (PSP) is rectangular: 1 for ``tau_syn`` steps, from the step after the spike
(so the potential at step ``t`` sees the spikes of steps ``< t``). With ``tau_syn = t_ref`` and a
constant ``u`` the neuron is in state 1 a fraction ``sigma(u)`` of the time (the waiting time before
a spike is geometric with mean ``1 + t_ref e^{-u}``), which is what makes a network of them sample
from ``p(z) ~ exp(z^T W z / 2 + b^T z)`` for a symmetric ``W``.

Shapes: every state tensor is ``(runs, chains, neurons)``. ``runs`` are independent experiments
(different seeds, settings or weights), ``chains`` are independent simulations of the same run's
network (1 to follow one network through learning; many to estimate its distribution quickly).

Randomness: :class:`RunNoise` holds one explicit ``torch.Generator`` per run, seeded from the
run's seed with :func:`creditlab.seeding.mix_seed`, and draws each run's uniforms in blocks of
steps. A run's spikes therefore depend only on its own seed and its own inputs: simulating 120
runs as one batch gives, bit for bit, the spikes of 120 separate one-run simulations (tested), on
the CPU and (with the generators on the GPU) on CUDA.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from creditlab.seeding import seeded_generator


def spike_probability(potential: torch.Tensor, t_ref: int) -> torch.Tensor:
    """Per-step spike probability of a free (non-refractory) neuron: sigma(u - ln t_ref)."""
    return torch.sigmoid(potential - math.log(t_ref))


def check_time_constant(name: str, value: object) -> int:
    """``value`` as an int >= 1, or ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer number of time steps >= 1, got {value!r}")
    return value


class RunNoise:
    """Uniform random numbers for ``len(seeds)`` independent runs, one explicit generator per run.

    ``next()`` returns a ``(runs, *per_run_shape)`` tensor for one step; each run's numbers come from
    its own generator (seeded with ``mix_seed(seed, "spiking")`` for its seed), drawn ``block`` steps at a time
    (default: about 16k numbers per run per draw); a run's numbers depend on its seed and ``block``.
    """

    def __init__(self, seeds: Sequence[int], per_run_shape: tuple[int, ...], device: str | torch.device = "cpu",
                 block: int | None = None, dtype: torch.dtype = torch.float32) -> None:
        if len(seeds) < 1:
            raise ValueError("RunNoise needs at least one run seed")
        self.shape = tuple(per_run_shape)
        # default: about 16k numbers per run and draw (few generator calls, bounded memory)
        self.block = check_time_constant("block", block if block is not None
                                         else max(1, min(5000, 16384 // max(1, math.prod(self.shape)))))
        self.device = torch.device(device)
        self.dtype = dtype
        self.generators = [seeded_generator(s, "spiking", device=self.device) for s in seeds]
        self._buffer: torch.Tensor | None = None
        self._used = 0

    @property
    def runs(self) -> int:
        """Number of runs."""
        return len(self.generators)

    def next(self) -> torch.Tensor:
        """Uniforms in [0, 1) for one step, shape ``(runs, *per_run_shape)``."""
        if self._buffer is None or self._used == self.block:
            draws = [torch.rand((self.block, *self.shape), generator=g, device=self.device, dtype=self.dtype)
                     for g in self.generators]
            self._buffer = torch.stack(draws, dim=1)  # (block, runs, *shape)
            self._used = 0
        out = self._buffer[self._used]
        self._used += 1
        return out


class StochasticNeurons:
    """Refractory and PSP counters of a population, shape ``(runs, chains, neurons)``.

    Use: each step compute the potential from :meth:`psp` (the spikes of earlier steps), then call
    :meth:`step` with it and one step of uniforms; it returns this step's spikes (bool).
    ``refractory`` (default ``t_ref``) is the shortest interspike interval in steps; the escape rate
    keeps ``ln t_ref`` and the state ``z`` is 1 for ``refractory`` steps from a spike.
    """

    def __init__(self, shape: tuple[int, int, int], t_ref: int, tau_syn: int | None = None,
                 device: str | torch.device = "cpu", refractory: int | None = None) -> None:
        self.t_ref = check_time_constant("t_ref", t_ref)
        self.tau_syn = check_time_constant("tau_syn", t_ref if tau_syn is None else tau_syn)
        # steps from a spike until the neuron may spike again (the shortest interspike interval);
        # t_ref by default, t_ref + 1 in the SAL authors' SALNet (spike when last_spike_counter > t_ref)
        self.refractory = check_time_constant("refractory", t_ref if refractory is None else refractory)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"neuron shape must be (runs, chains, neurons), each >= 1, got {shape}")
        self.refractory_left = torch.zeros(shape, dtype=torch.int32, device=device)
        self.psp_left = torch.zeros(shape, dtype=torch.int32, device=device)
        self.log_t_ref = math.log(self.t_ref)

    def state(self) -> torch.Tensor:
        """z: 1.0 in a spike step and the refractory - 1 steps after it (float, shape of the population)."""
        return (self.refractory_left > 0).float()

    def psp(self) -> torch.Tensor:
        """Rectangular PSPs: 1.0 for tau_syn steps after each spike (from the next step on)."""
        return (self.psp_left > 0).float()

    def step(self, potential: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
        """Advance one step: free neurons spike with probability sigma(u - ln t_ref); returns the spikes."""
        self.refractory_left.sub_(1).clamp_(min=0)
        self.psp_left.sub_(1).clamp_(min=0)
        spikes = (self.refractory_left == 0) & (uniform < torch.sigmoid(potential - self.log_t_ref))
        self.refractory_left.masked_fill_(spikes, self.refractory)
        self.psp_left.masked_fill_(spikes, self.tau_syn)
        return spikes


__all__ = ["RunNoise", "StochasticNeurons", "check_time_constant", "spike_probability"]
