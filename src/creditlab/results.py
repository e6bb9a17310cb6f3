"""The results store: one JSON object per line, one schema for training, reproduction and performance.

A record::

    {"kind": "train" | "reproduce" | "perf",
     "name": str,                # e.g. "bp/mlp/mnist" or "fa-theory-alignment"
     "config": {...},            # everything needed to rerun it
     "epochs": [{...}, ...],     # per-epoch metrics (may be empty)
     "final": {...},             # final metrics (accuracies are fractions in [0, 1])
     "wall_time_s": float, "device": str, "commit": str, "dirty": bool,
     "versions": {"python", "torch", "numpy", "creditlab"}, "timestamp": ISO-8601 UTC}
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import creditlab


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent, capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_commit() -> str:
    """Short commit hash of the creditlab checkout, or ``unknown`` outside a git checkout."""
    return _git("rev-parse", "--short=10", "HEAD") or "unknown"


#: tracked paths whose changes do not make a checkout dirty: the results store (appending a record
#: must not mark the next one) and the README's generated section (see :func:`git_dirty`)
RESULTS_PATHS = ("results",)
README = "README.md"


def git_dirty() -> bool:
    """True when the checkout has uncommitted changes to tracked files that can change a result.

    Changes under ``results/`` are ignored (the store itself, written by the runs), and so is a
    README.md whose only changes are inside its generated results section (rewritten by
    ``creditlab report --readme``).
    """
    top = _git("rev-parse", "--show-toplevel")
    if top is None:
        return False
    excluded = [f":(exclude){path}" for path in (*RESULTS_PATHS, README)]
    if _git("-C", top, "status", "--porcelain", "--untracked-files=no", "--", ".", *excluded):
        return True
    if not _git("-C", top, "status", "--porcelain", "--untracked-files=no", "--", README):
        return False
    from creditlab.report.readme import without_generated_section

    committed = _git("-C", top, "show", f"HEAD:{README}")
    try:
        current = (Path(top) / README).read_text(encoding="utf-8")
    except OSError:
        return True
    return committed is None or without_generated_section(committed) != without_generated_section(current.strip())


def versions() -> dict[str, str]:
    """Versions of the software a result depends on."""
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "creditlab": creditlab.__version__}


def device_description(device: str | torch.device) -> str:
    """A human-readable device label: the GPU's name, or the CPU with its thread count."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.machine()}x{torch.get_num_threads()}threads"


def config_key(config: dict[str, Any]) -> str:
    """A stable hash of a config, used to skip work that already has a record."""
    return hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def make_record(kind: str, name: str, config: dict[str, Any], final: dict[str, Any],
                epochs: list[dict[str, Any]] | None = None, wall_time_s: float = 0.0,
                device: str | torch.device = "cpu") -> dict[str, Any]:
    """Build a results record with provenance (commit, versions, device, time)."""
    return {
        "kind": kind,
        "name": name,
        "config": config,
        "config_key": config_key(config),
        "epochs": epochs or [],
        "final": final,
        "wall_time_s": round(float(wall_time_s), 3),
        "device": device_description(device),
        "commit": git_commit(),
        "dirty": git_dirty(),
        "versions": versions(),
        "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def append_record(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append one record as a JSON line (flushed and synced, so an interrupted run keeps it).

    The file is locked while the line is written, so concurrent runs (e.g. ``--parallel`` table rows)
    can share one results file without interleaving their lines.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, default=_json_default, allow_nan=True)
    with open(path, "a", encoding="utf-8") as handle:
        _lock(handle)
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _lock(handle: Any) -> None:
    """Exclusive advisory lock on an open file until it is closed (no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # Windows: appends of one line are still made by one write call
        return
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)


def device_type(device: str) -> str:
    """``cuda`` for a record made on a GPU, else ``cpu`` (records store e.g. ``cuda:NVIDIA H100``)."""
    return "cuda" if str(device).startswith("cuda") else "cpu"


RECORD_KINDS = ("train", "reproduce", "perf")
#: JSON-lines files under a results directory that are not record files: a run's per-epoch log
#: (``metrics.jsonl``, e.g. in ``checkpoints/``) and an experiment's progress log
NOT_RECORD_FILES = ("metrics.jsonl",)
NOT_RECORD_SUFFIX = "-progress.jsonl"
NOT_RECORD_DIRS = ("checkpoints",)


def is_record(value: Any) -> bool:
    """A results record: a JSON object with a known ``kind`` and a ``name``."""
    return isinstance(value, dict) and value.get("kind") in RECORD_KINDS and "name" in value


def record_files(directory: str | os.PathLike) -> list[Path]:
    """The record files in a results directory: ``*.jsonl`` below it, except run logs (``metrics.jsonl``,
    ``*-progress.jsonl``) and anything inside a ``checkpoints`` folder."""
    root = Path(directory)
    return [f for f in sorted(root.rglob("*.jsonl"))
            if f.name not in NOT_RECORD_FILES and not f.name.endswith(NOT_RECORD_SUFFIX)
            and not any(part in NOT_RECORD_DIRS for part in f.relative_to(root).parts[:-1])]


def read_records(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[dict[str, Any]]:
    """All records in one or more JSON-lines files or directories (:func:`record_files` inside); lines
    that are not records (:func:`is_record`) or are cut short are skipped."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    files: list[Path] = []
    for p in map(Path, paths):
        files += record_files(p) if p.is_dir() else [p]
    records: list[dict[str, Any]] = []
    for file in files:
        if not file.is_file():
            continue
        for line in file.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by an interruption
            if is_record(value):
                records.append(value)
    return records


def _json_default(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, np.generic | np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, tuple | set):
        return list(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")
