"""Seeded generators for the neuromorphic streams (crossbar sampling, input spikes).

Uses :func:`creditlab.seeding.seeded_generator` (the one seed-mixing helper of the trainer protocol);
until that module is on this branch a local splitmix64 chain with the same definition stands in.
"""

from __future__ import annotations

import zlib

import torch

try:
    from creditlab.seeding import seeded_generator
except ImportError:  # pragma: no cover - removed once the protocol lands
    _MASK64, _MASK63 = 0xFFFFFFFFFFFFFFFF, 0x7FFFFFFFFFFFFFFF

    def _mix(seed: int, part: int) -> int:
        z = (seed * 0x9E3779B97F4A7C15 + part + 1) & _MASK64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        return (z ^ (z >> 31)) & _MASK63

    def seeded_generator(seed: int, *parts: int | str, device: torch.device | str = "cpu") -> torch.Generator:
        """A generator seeded by chaining splitmix64 over ``parts`` (strings by crc32)."""
        value = seed & _MASK63 if not parts else seed
        for part in parts:
            value = _mix(value, zlib.crc32(part.encode()) if isinstance(part, str) else int(part))
        return torch.Generator(device=device).manual_seed(value)

__all__ = ["seeded_generator"]
