"""Readers for the official binary formats: IDX (MNIST family) and the CIFAR-10 binary batches."""

from __future__ import annotations

import numpy as np

from creditlab.errors import DatasetError

IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049
CIFAR_RECORD_BYTES = 1 + 3 * 32 * 32


def read_idx(content: bytes, source: str) -> np.ndarray:
    """Parse an IDX file (images: magic 2051, labels: magic 2049) into a uint8 array.

    Images come back as ``(count, rows, cols)``, labels as ``(count,)``. ``source`` names the
    file in error messages. A bad magic number or truncated content raises DatasetError.
    """
    if len(content) < 8:
        raise DatasetError(f"{source}: too short to be an IDX file ({len(content)} bytes)")
    magic = int.from_bytes(content[0:4], "big")
    count = int.from_bytes(content[4:8], "big")
    if magic == IDX_IMAGES_MAGIC:
        if len(content) < 16:
            raise DatasetError(f"{source}: truncated IDX image header")
        rows = int.from_bytes(content[8:12], "big")
        cols = int.from_bytes(content[12:16], "big")
        header, shape = 16, (count, rows, cols)
    elif magic == IDX_LABELS_MAGIC:
        header, shape = 8, (count,)
    else:
        raise DatasetError(
            f"{source}: bad magic number {magic} (expected {IDX_IMAGES_MAGIC} for images or "
            f"{IDX_LABELS_MAGIC} for labels); the file is not an IDX file or is corrupt"
        )
    expected = header + int(np.prod(shape))
    if len(content) != expected:
        raise DatasetError(
            f"{source}: {len(content)} bytes where the header promises {expected} "
            f"({'truncated' if len(content) < expected else 'trailing data'})"
        )
    return np.frombuffer(content, dtype=np.uint8, offset=header).reshape(shape)


def read_cifar_binary(content: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse one CIFAR-10 binary batch: records of 1 label byte + 3072 pixel bytes (R, G, B planes).

    Returns ``images (count, 3, 32, 32)`` and ``labels (count,)``, both uint8.
    """
    if len(content) == 0 or len(content) % CIFAR_RECORD_BYTES != 0:
        raise DatasetError(
            f"{source}: {len(content)} bytes is not a whole number of {CIFAR_RECORD_BYTES}-byte "
            "CIFAR-10 records (truncated or not a CIFAR-10 binary batch)"
        )
    records = np.frombuffer(content, dtype=np.uint8).reshape(-1, CIFAR_RECORD_BYTES)
    labels = records[:, 0].copy()
    if labels.max() > 9:
        raise DatasetError(f"{source}: label byte {labels.max()} out of range 0-9; not a CIFAR-10 batch")
    images = records[:, 1:].reshape(-1, 3, 32, 32)
    return images, labels
