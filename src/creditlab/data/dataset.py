"""A dataset held whole as tensors on the training device, with index-permutation batching."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from creditlab.data.formats import read_cifar_binary, read_idx
from creditlab.data.specs import DATASETS, DatasetSpec
from creditlab.data.store import load_files
from creditlab.errors import DatasetError
from creditlab.spiking.coding import latency_code
from creditlab.tasks import CLASSIFICATION, Task

NORMALIZATIONS = ("standard", "unit", "symmetric", "latency")


@dataclass
class Dataset:
    """Train / validation / test tensors on one device.

    Images are float32 ``(N, C, H, W)``; targets are what ``task`` scores: int64 class indices ``(N,)``
    for classification (the registered image datasets), float ``(N,)`` or ``(N, dims)`` for
    regression. ``val_x`` is empty when no validation split was requested.
    """

    spec: DatasetSpec
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    task: Task = CLASSIFICATION

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return self.spec.num_classes

    def to(self, device: torch.device | str) -> Dataset:
        """The same dataset on another device."""
        moved = {k: getattr(self, k).to(device) for k in ("train_x", "train_y", "val_x", "val_y",
                                                           "test_x", "test_y")}
        return Dataset(spec=self.spec, **moved, task=self.task)

    def subset(self, train: int | None = None, test: int | None = None) -> Dataset:
        """The first ``train`` training and ``test`` test examples (for quick runs and tests)."""
        return Dataset(self.spec, self.train_x[:train], self.train_y[:train], self.val_x, self.val_y,
                       self.test_x[:test], self.test_y[:test], self.task)


def _raw_arrays(spec: DatasetSpec, data_dir: str | os.PathLike | None, allow_download: bool
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    files = load_files(spec, data_dir, allow_download)
    if spec.format == "idx":
        arrays = []
        for group in (spec.train_files, spec.test_files):
            (img_path, img_bytes), (lab_path, lab_bytes) = (files[f.name] for f in group)
            images = read_idx(img_bytes, str(img_path))
            labels = read_idx(lab_bytes, str(lab_path))
            if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
                raise DatasetError(f"{img_path} / {lab_path}: image and label files do not match")
            arrays += [images[:, None], labels]
        train_x, train_y, test_x, test_y = arrays
    elif spec.format == "cifar-binary":
        parts = [read_cifar_binary(files[f.name][1], str(files[f.name][0])) for f in spec.train_files]
        train_x = np.concatenate([p[0] for p in parts])
        train_y = np.concatenate([p[1] for p in parts])
        test_path, test_bytes = files[spec.test_files[0].name]
        test_x, test_y = read_cifar_binary(test_bytes, str(test_path))
    else:  # pragma: no cover - specs are fixed in code
        raise DatasetError(f"unknown format {spec.format}")
    for split, x, n in (("train", train_x, spec.train_size), ("test", test_x, spec.test_size)):
        if len(x) != n or tuple(x.shape[1:]) != spec.image_shape:
            raise DatasetError(f"dataset {spec.name!r}: {split} split has shape {x.shape}, expected "
                               f"({n}, {', '.join(map(str, spec.image_shape))}); refusing a partial dataset")
    if train_y.max() >= spec.num_classes or test_y.max() >= spec.num_classes:
        raise DatasetError(f"dataset {spec.name!r}: label out of range 0-{spec.num_classes - 1}")
    return train_x, train_y, test_x, test_y


def _to_float(images: np.ndarray, spec: DatasetSpec, normalization: str, device: torch.device) -> torch.Tensor:
    x = torch.from_numpy(np.array(images, copy=True)).to(device=device).float().div_(255.0)
    if normalization == "standard":
        mean = torch.tensor(spec.mean, device=device).view(1, -1, 1, 1)
        std = torch.tensor(spec.std, device=device).view(1, -1, 1, 1)
        x = (x - mean) / std
    elif normalization == "symmetric":
        x = (x - 0.5) / 0.5
    elif normalization == "latency":  # time-to-first-spike inputs of the spiking models
        x = latency_code(x)
    elif normalization != "unit":
        raise ValueError(f"unknown normalization {normalization!r}; valid: {', '.join(NORMALIZATIONS)}")
    return x


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
    val_fraction: float = 0.0,
    seed: int = 0,
    normalization: str = "standard",
    allow_download: bool = True,
) -> Dataset:
    """Load a verified dataset as tensors on ``device``.

    Args:
        name: ``mnist``, ``fashion-mnist``, ``kmnist`` or ``cifar10``; or a dataset the library builds
            (``evidence``, ``evidence-short``: :mod:`creditlab.data.generated`, seeded by ``seed``).
        data_dir: searched first; then ``$CREDITLAB_DATA``; then ``~/.cache/creditlab``.
        val_fraction: share of the training set held out as a validation split (seeded).
        normalization: ``standard`` (dataset mean/std), ``unit`` ([0, 1]), ``symmetric`` ([-1, 1]) or
            ``latency`` (spike times ``t = 1 - x`` in [0, 1] of the [0, 1] intensities, 1 = no spike;
            :func:`creditlab.spiking.coding.latency_code`). The model decides which: its registered
            ``normalization`` default is the input encoding it needs.
    """
    spec = DATASETS.get(name)
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    device = torch.device(device)
    if spec.generator is not None:  # built by the library (spike sequences: no normalization applies)
        from creditlab.data.generated import build_generated

        return build_generated(name, spec.generator, spec.train_size, spec.test_size, seed, val_fraction, device)
    train_x, train_y, test_x, test_y = _raw_arrays(spec, data_dir, allow_download)
    x = _to_float(train_x, spec, normalization, device)
    y = torch.from_numpy(train_y.astype(np.int64)).to(device)
    n_val = int(round(val_fraction * len(x)))
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed)).to(device)
    val_idx, train_idx = order[:n_val], order[n_val:]
    if n_val == 0:
        train_idx = torch.arange(len(x), device=device)
    return Dataset(
        spec=spec,
        train_x=x[train_idx],
        train_y=y[train_idx],
        val_x=x[val_idx],
        val_y=y[val_idx],
        test_x=_to_float(test_x, spec, normalization, device),
        test_y=torch.from_numpy(test_y.astype(np.int64)).to(device),
    )


def batch_indices(n: int, batch_size: int, generator: torch.Generator | None, device: torch.device | str,
                  shuffle: bool = True) -> Iterator[torch.Tensor]:
    """Index tensors of consecutive batches over a (seeded) permutation of ``range(n)``.

    The permutation is drawn on the CPU so CPU and GPU runs see the same batches.
    """
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    order = order.to(device)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def random_crop_flip(images: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Standard CIFAR augmentation on a batch: random crop after zero padding, random horizontal flip.

    images: (batch, channels, height, width); randomness drawn from ``generator`` on the CPU.
    """
    n, c, h, w = images.shape
    device = images.device
    padded = F.pad(images, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(device)
    flip = (torch.rand(n, generator=generator) < 0.5).to(device)
    rows = torch.arange(h, device=device)[None, :] + dy[:, None]  # (n, h)
    cols = torch.arange(w, device=device)[None, :]
    cols = torch.where(flip[:, None], w - 1 - cols, cols) + dx[:, None]  # (n, w)
    batch_index = torch.arange(n, device=device)[:, None, None, None]
    channel_index = torch.arange(c, device=device)[None, :, None, None]
    return padded[batch_index, channel_index, rows[:, None, :, None], cols[:, None, None, :]]
