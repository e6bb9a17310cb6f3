"""``creditlab rules``' table, built by construction (:mod:`creditlab.bench.compat`) and cached.

Building every rule on every model takes seconds (most of it importing torch and constructing), so
the table is kept in ``$CREDITLAB_CACHE`` (default ``~/.cache/creditlab``) under a key of everything
that decides it: creditlab's version, the installed torch's version file, Python's version and the text
of every source file of the package. Any edit or upgrade changes the key and the table is built
again; a cached table is read without importing torch. A cache that cannot be read is rebuilt, one
that cannot be written is skipped.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

CACHE_ENV = "CREDITLAB_CACHE"
PREFIX = "rules-table-"


def cache_dir() -> Path:
    """Where cached tables live: ``$CREDITLAB_CACHE``, else ``~/.cache/creditlab``."""
    return Path(os.environ.get(CACHE_ENV) or "~/.cache/creditlab").expanduser()


def source_key() -> str:
    """A hash of creditlab's version, torch's and Python's versions and every package source file."""
    import creditlab

    digest = hashlib.sha256()
    digest.update(f"{creditlab.__version__}|{sys.version}|".encode() + _torch_version_file())
    root = Path(creditlab.__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:24]


def _torch_version_file() -> bytes:
    """The installed torch's ``version.py`` (its version and git commit), found without importing torch
    (``importlib.metadata`` would scan every installed distribution: most of a second)."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return b"no torch"
    path = Path(next(iter(spec.submodule_search_locations))) / "version.py"
    return path.read_bytes() if path.is_file() else str(path.parent).encode()


def build_table() -> dict[str, dict[str, Any]]:
    """{rule: {"description", "models"}}: every rule constructed on every model (no cache)."""
    from creditlab.bench.compat import compatible_models
    from creditlab.rules import RULES

    return {name: {"description": RULES.get(name).description, "models": compatible_models(name)}
            for name in RULES.names()}


def rules_table(refresh: bool = False) -> dict[str, dict[str, Any]]:
    """The table of :func:`build_table`, from the cache when it holds one for :func:`source_key`
    (``refresh``: build it again regardless)."""
    key = source_key()
    path = cache_dir() / f"{PREFIX}{key}.json"
    if not refresh:
        try:
            cached = json.loads(path.read_text(encoding="utf-8"))
            if cached.get("key") == key and isinstance(cached.get("rules"), dict):
                return cached["rules"]
        except (OSError, ValueError, AttributeError):
            pass  # missing or unreadable: build it
    table = build_table()
    _write(path, {"key": key, "rules": table})
    return table


def _write(path: Path, content: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for old in path.parent.glob(f"{PREFIX}*.json"):  # tables of other sources are stale
            old.unlink(missing_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(content), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs the next run the build


__all__ = ["CACHE_ENV", "build_table", "cache_dir", "rules_table", "source_key"]
