"""Extracted features cached on disk, keyed by the extractor's fingerprint and the data they cover.

A file holds its own key; a file whose key differs from the one asked for is stale and refused, and
a file that cannot be read is reported as corrupt (delete it to re-extract). Writes are atomic.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import torch

from creditlab.errors import CreditlabError


class FeatureCacheError(CreditlabError):
    """A feature cache file is corrupt, truncated or stale."""


def cache_key(extractor_fingerprint: str, dataset: str, split: str, count: int, data_digest: str) -> str:
    """The key of the features of ``count`` examples of ``dataset``'s ``split``."""
    text = f"{extractor_fingerprint}|{dataset}|{split}|{count}|{data_digest}"
    return hashlib.sha1(text.encode()).hexdigest()[:20]


def tensor_digest(tensor: torch.Tensor) -> str:
    """A short hash of a tensor's contents (the images a cache entry was extracted from)."""
    return hashlib.sha1(tensor.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


def load_or_extract(directory: str | os.PathLike, key: str, extract: Callable[[], torch.Tensor]) -> torch.Tensor:
    """The cached features under ``key``, or ``extract()`` saved there first."""
    path = Path(directory) / f"features-{key}.pt"
    if path.is_file():
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            features, stored_key = stored["features"], stored["key"]
        except Exception as error:  # noqa: BLE001 - any unreadable file is reported the same way
            reason = f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"
            raise FeatureCacheError(f"feature cache {path} is corrupt or truncated ({reason}); delete it to "
                                    "extract the features again") from error
        if stored_key != key:
            raise FeatureCacheError(f"feature cache {path} is stale: it holds features for key {stored_key!r}, "
                                    f"not {key!r}; delete it to extract the features again")
        return features
    features = extract()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"key": key, "features": features.cpu()}, tmp)
    os.replace(tmp, path)
    return features
