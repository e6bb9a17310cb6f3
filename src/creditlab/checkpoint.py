"""Run checkpoints: written atomically, read with ``weights_only=True`` so a file never runs code.

A checkpoint is a dict of tensors and plain containers (dicts, lists, tuples, numbers, strings,
``collections.Counter`` of a step schedule); ``torch.load(..., weights_only=True)`` reads exactly
that and refuses anything else unread. A corrupt, truncated or foreign file is a CreditlabError that
names the file and says what was expected: a file that is not a torch.save archive at all (random
bytes, a truncated write) is "not a checkpoint"; an archive holding code is refused unread.
"""

from __future__ import annotations

import copy
import os
import pickle
import re
import zipfile
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
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else was never one
        raise CreditlabError(f"{path} is not a checkpoint: it is not a torch.save archive (a damaged or truncated "
                             f"file, or another kind of file); {expected}. Delete it or use another --out")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        if CODE_REFUSAL.search(str(exc)) is None:  # not a named global: pickle bytes that make no sense
            raise CreditlabError(f"checkpoint {path} cannot be read, it is corrupt or truncated (its pickled "
                                 f"data is damaged: {_unpickler_reason(exc)}); {expected}. Delete it or use "
                                 "another --out") from None
        raise CreditlabError(f"checkpoint {path} was refused unread: it holds objects other than tensors and "
                             f"plain containers, which could run code when loaded ({_unpickler_reason(exc)}); "
                             f"{expected}") from None
    except Exception as exc:  # noqa: BLE001 - torch's readers raise many types for a damaged file
        raise CreditlabError(f"checkpoint {path} cannot be read, it is corrupt or truncated "
                             f"({first_line(exc)}); {expected}. Delete it or use another --out") from None
    missing = [key for key in REQUIRED_KEYS if key not in state] if isinstance(state, dict) else list(REQUIRED_KEYS)
    if missing:
        found = f"a dict missing {', '.join(missing)}" if isinstance(state, dict) else type(state).__name__
        raise CreditlabError(f"{path} is not a creditlab checkpoint: found {found}; {expected}")
    return state


#: the weights-only unpickler refusing a real (importable-looking) name: what code in a pickle looks like
CODE_REFUSAL = re.compile(r"Unsupported global: GLOBAL [A-Za-z_][\w.]* was not an allowed global")


def _unpickler_reason(exc: BaseException) -> str:
    """The weights-only unpickler's own reason (``Unsupported global: GLOBAL x.y``), not torch's preamble."""
    text = str(exc)
    found = CODE_REFUSAL.search(text) or re.search(r"Unsupported [^\n]{0,80}", text)
    return ascii(found.group(0))[1:-1] if found else first_line(exc)


def clone_state(state: dict[str, Any]) -> dict[str, Any]:
    """A copy of a state dict that later training cannot change (tensors cloned, the rest deep-copied)."""
    return {key: (value.detach().clone() if isinstance(value, torch.Tensor) else copy.deepcopy(value))
            for key, value in state.items()}


__all__ = ["CHECKPOINT_NAME", "REQUIRED_KEYS", "clone_state", "load_checkpoint", "save_checkpoint"]
