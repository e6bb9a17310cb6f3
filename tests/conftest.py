"""Shared fixtures: the real datasets from $CREDITLAB_DATA (CI sets it to ../shared/data)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from creditlab.data import Dataset, load_dataset

REPO = Path(__file__).resolve().parents[1]


def _data_root() -> Path:
    if os.environ.get("CREDITLAB_DATA"):
        return Path(os.environ["CREDITLAB_DATA"])
    return REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_root() -> Path:
    """Directory holding the verified datasets (mnist/, fashion-mnist/, cifar-10/)."""
    root = _data_root()
    if not (root / "mnist").is_dir():
        pytest.fail(f"datasets not found in {root}: set CREDITLAB_DATA to the shared data directory")
    return root


@pytest.fixture(scope="session")
def mnist(data_root: Path) -> Dataset:
    """Full MNIST, standard normalization, on the CPU (loaded once per test session)."""
    return load_dataset("mnist", data_root)


@pytest.fixture(scope="session")
def mnist_small(mnist: Dataset) -> Dataset:
    """2000 training and 500 test images of MNIST, for fast training tests."""
    return mnist.subset(train=2000, test=500)
