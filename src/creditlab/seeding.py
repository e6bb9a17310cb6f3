"""The one place where seeds are mixed: every stream of randomness is a function of the run's seed.

``mix_seed(seed, *parts)`` chains the splitmix64 finalizer over the parts (strings hashed with
``zlib.crc32`` of their UTF-8, so a name gives the same stream on every machine and Python run);
``seeded_generator(seed, *parts)`` is a ``torch.Generator`` seeded with it. A new stream (evaluation
variants, spiking noise, sampling, node perturbation) names itself by its parts, e.g.
``seeded_generator(config.seed, "eval", "ensemble-4", epoch)``, and never touches the global RNG.

``numpy_generator(seed, *parts)`` is the same for code that computes in numpy (a
``numpy.random.Generator`` seeded with ``mix_seed``).

``batch_stream_seed`` is the trainer's older linear scheme for batch order and augmentation; it is
kept as it is because every recorded run's batches depend on it.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

_MASK64 = 0xFFFFFFFFFFFFFFFF
_MASK63 = 0x7FFFFFFFFFFFFFFF


def _splitmix64(seed: int, part: int) -> int:
    """One splitmix64 step: the finalizer of seed * golden gamma + part + 1, reduced to 63 bits."""
    z = (seed * 0x9E3779B97F4A7C15 + part + 1) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) & _MASK63


def _as_int(part: int | str) -> int:
    if isinstance(part, str):
        return zlib.crc32(part.encode("utf-8"))
    if isinstance(part, int):  # bool is an int too: True == 1
        return part
    raise TypeError(f"seed parts must be int or str, got {type(part).__name__} {part!r}")


def mix_seed(seed: int, *parts: int | str) -> int:
    """A 63-bit seed from ``seed`` and ``parts`` (ints or strings), by chained splitmix64.

    ``mix_seed(s, a, b) == mix_seed(mix_seed(s, a), b)``; with no parts it is ``seed`` reduced to
    63 bits. Distinct parts give statistically independent seeds.
    """
    value = _as_int(seed)
    if not parts:
        return value & _MASK63
    for part in parts:
        value = _splitmix64(value, _as_int(part))
    return value


def seeded_generator(seed: int, *parts: int | str, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``mix_seed(seed, *parts)``."""
    return torch.Generator(device=device).manual_seed(mix_seed(seed, *parts))


def numpy_generator(seed: int, *parts: int | str) -> np.random.Generator:
    """A ``numpy.random.Generator`` (PCG64) seeded with ``mix_seed(seed, *parts)``."""
    return np.random.default_rng(mix_seed(seed, *parts))


def batch_stream_seed(seed: int, epoch: int, stream: int) -> int:
    """The trainer's seed of epoch ``epoch``'s batch order (stream 0) or augmentation (stream 1)."""
    return seed * 1_000_003 + epoch * 7919 + stream


__all__ = ["batch_stream_seed", "mix_seed", "numpy_generator", "seeded_generator"]
