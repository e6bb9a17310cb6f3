"""Run checkpoints: written atomically, read with ``weights_only=True`` so a file never runs code.

A checkpoint is a dict of tensors and plain containers (dicts, lists, tuples, numbers, strings,
``collections.Counter`` of a step schedule); ``torch.load(..., weights_only=True)`` reads exactly
that and refuses anything else unread. A corrupt, truncated or foreign file is a CreditlabError that
names the file and says what was expected.
"""

from __future__ import annotations

import copy
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from creditlab.errors import CreditlabError, first_line

CHECKPOINT_NAME = "checkpoint.pt"
#: what every creditlab checkpoint holds (``best``, ``hooks``, ``reducer``, ``stopped_early`` are optional)
REQUIRED_KEYS = ("epoch", "model", "rule", "optimizer", "scheduler", "torch_rng", "history", "run_info", "config")


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` to ``path`` atomically (a temporary file, then a rename)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """The checkpoint dict in ``path``, tensors on ``device``; CreditlabError for anything else."""
    expected = (f"expected a creditlab checkpoint (a torch.save file of a dict with keys "
                f"{', '.join(REQUIRED_KEYS)}) as `creditlab train` writes it")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CreditlabError(f"checkpoint {path} was refused unread: it holds objects other than tensors and "
                             f"plain containers, which could run code when loaded ({first_line(exc)}); "
                             f"{expected}") from None
    except Exception as exc:  # noqa: BLE001 - torch's readers raise many types for a damaged file
        raise CreditlabError(f"checkpoint {path} cannot be read, it is corrupt or truncated "
                             f"({first_line(exc)}); {expected}. Delete it or use another --out") from None
    missing = [key for key in REQUIRED_KEYS if key not in state] if isinstance(state, dict) else list(REQUIRED_KEYS)
    if missing:
        found = f"a dict missing {', '.join(missing)}" if isinstance(state, dict) else type(state).__name__
        raise CreditlabError(f"{path} is not a creditlab checkpoint: found {found}; {expected}")
    return state


def clone_state(state: dict[str, Any]) -> dict[str, Any]:
    """A copy of a state dict that later training cannot change (tensors cloned, the rest deep-copied)."""
    return {key: (value.detach().clone() if isinstance(value, torch.Tensor) else copy.deepcopy(value))
            for key, value in state.items()}


__all__ = ["CHECKPOINT_NAME", "REQUIRED_KEYS", "clone_state", "load_checkpoint", "save_checkpoint"]
