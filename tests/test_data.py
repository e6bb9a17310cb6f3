"""Dataset readers against known facts, and every way a dataset can be bad."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
import torch

from creditlab.data import load_dataset, random_crop_flip
from creditlab.data import store as store_module
from creditlab.data.formats import read_cifar_binary, read_idx
from creditlab.errors import DatasetError

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_mnist_shapes_and_label_histograms(mnist):
    assert mnist.train_x.shape == (60000, 1, 28, 28) and mnist.test_x.shape == (10000, 1, 28, 28)
    assert mnist.train_x.dtype == torch.float32 and mnist.train_y.dtype == torch.int64
    assert torch.bincount(mnist.train_y).tolist() == MNIST_TRAIN_COUNTS
    assert torch.bincount(mnist.test_y).tolist() == MNIST_TEST_COUNTS
    # standard normalization: mean ~0, std ~1 over the training set
    assert abs(mnist.train_x.mean().item()) < 0.01 and abs(mnist.train_x.std().item() - 1) < 0.01


def test_fashion_mnist_balanced(data_root):
    data = load_dataset("fashion-mnist", data_root, normalization="unit")
    assert torch.bincount(data.train_y).tolist() == [6000] * 10
    assert torch.bincount(data.test_y).tolist() == [1000] * 10
    assert 0.0 <= data.train_x.min().item() and data.train_x.max().item() <= 1.0


def test_cifar10_balanced_and_first_batch_counts(data_root):
    data = load_dataset("cifar10", data_root)
    assert data.train_x.shape == (50000, 3, 32, 32)
    assert torch.bincount(data.train_y).tolist() == [5000] * 10
    assert torch.bincount(data.test_y).tolist() == [1000] * 10
    first_batch = [1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981]
    assert torch.bincount(data.train_y[:10000]).tolist() == first_batch


def test_validation_split_is_disjoint_and_seeded(data_root):
    a = load_dataset("mnist", data_root, val_fraction=0.1, seed=3)
    b = load_dataset("mnist", data_root, val_fraction=0.1, seed=3)
    assert len(a.val_x) == 6000 and len(a.train_x) == 54000
    assert torch.equal(a.val_y, b.val_y) and torch.equal(a.train_x[:50], b.train_x[:50])
    # train + validation is a partition of the full training set
    full = load_dataset("mnist", data_root)
    projection = torch.randn(784, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def keys(x: torch.Tensor) -> torch.Tensor:
        return torch.sort(x.flatten(1).double() @ projection).values

    torch.testing.assert_close(keys(torch.cat([a.val_x, a.train_x])), keys(full.train_x), rtol=0, atol=1e-9)


def _idx_images(count: int, rows: int = 2, cols: int = 2) -> bytes:
    header = (2051).to_bytes(4, "big") + count.to_bytes(4, "big") + rows.to_bytes(4, "big") + cols.to_bytes(4, "big")
    return header + bytes(range(count * rows * cols))


def test_read_idx_by_hand():
    images = read_idx(_idx_images(3), "x")
    assert images.shape == (3, 2, 2) and images[1, 0, 1] == 5
    labels = read_idx((2049).to_bytes(4, "big") + (2).to_bytes(4, "big") + bytes([7, 1]), "y")
    assert labels.tolist() == [7, 1]


def test_read_idx_bad_magic_and_truncation_name_the_file():
    with pytest.raises(DatasetError, match="weird.idx.*bad magic"):
        read_idx((1234).to_bytes(4, "big") + bytes(12), "weird.idx")
    with pytest.raises(DatasetError, match="cut.idx.*truncated"):
        read_idx(_idx_images(3)[:-1], "cut.idx")


def test_read_cifar_record_layout():
    record = bytes([3]) + bytes([10]) * 1024 + bytes([20]) * 1024 + bytes([30]) * 1024
    images, labels = read_cifar_binary(record * 2, "b")
    assert labels.tolist() == [3, 3] and images.shape == (2, 3, 32, 32)
    assert images[0, :, 5, 7].tolist() == [10, 20, 30]
    with pytest.raises(DatasetError, match="not a whole number"):
        read_cifar_binary(record[:-5], "b")


def _copy_mnist(data_root: Path, target: Path) -> Path:
    shutil.copytree(data_root / "mnist", target / "mnist")
    for f in (target / "mnist").iterdir():
        f.chmod(0o644)
    return target / "mnist"


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No environment data directory, an empty cache, and no reachable mirror."""
    monkeypatch.delenv("CREDITLAB_DATA", raising=False)
    monkeypatch.delenv("CREDITLAB_MIRROR", raising=False)
    monkeypatch.setattr(store_module, "DEFAULT_CACHE", tmp_path / "cache")
    monkeypatch.setattr(store_module, "_mirrors", lambda spec: [(tmp_path / "no-mirror").as_uri() + "/"])
    return tmp_path


def test_corrupt_file_is_refused_with_its_name(data_root, tmp_path, offline):
    folder = _copy_mnist(data_root, tmp_path / "data")
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    content = bytearray(gzip.decompress(labels.read_bytes()))
    content[100] = (content[100] + 1) % 10
    labels.write_bytes(gzip.compress(bytes(content)))
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte.gz: checksum mismatch"):
        load_dataset("mnist", tmp_path / "data")


def test_truncated_gzip_is_refused(data_root, tmp_path, offline):
    folder = _copy_mnist(data_root, tmp_path / "data")
    images = folder / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[: 100_000])
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte.gz"):
        load_dataset("mnist", tmp_path / "data")


def test_uncompressed_files_are_accepted(data_root, tmp_path, offline):
    folder = _copy_mnist(data_root, tmp_path / "data")
    for gz in folder.glob("*.gz"):
        gz.with_suffix("").write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    data = load_dataset("mnist", tmp_path / "data")
    assert torch.bincount(data.test_y).tolist() == MNIST_TEST_COUNTS


def test_missing_data_offline_says_where_it_looked(offline, tmp_path):
    with pytest.raises(DatasetError) as info:
        load_dataset("mnist", tmp_path / "nowhere")
    message = str(info.value)
    assert str(tmp_path / "nowhere" / "mnist") in message
    assert str(tmp_path / "cache" / "mnist") in message
    assert "--data-dir" in message and "CREDITLAB_DATA" in message and "Download failed" in message


def test_download_is_verified(data_root, tmp_path, monkeypatch, offline):
    mirror = tmp_path / "mirror" / "mnist"
    mirror.mkdir(parents=True)
    for f in (data_root / "mnist").glob("*.gz"):
        shutil.copy(f, mirror / f.name)
    monkeypatch.setattr(store_module, "_mirrors", lambda spec: [mirror.as_uri() + "/"])
    data = load_dataset("mnist", tmp_path / "empty")
    assert torch.bincount(data.train_y).tolist() == MNIST_TRAIN_COUNTS
    assert (tmp_path / "cache" / "mnist" / "train-images-idx3-ubyte.gz").is_file()

    # a corrupt mirror: the download is refused and nothing usable is left behind
    bad = tmp_path / "bad" / "mnist"
    shutil.copytree(mirror, bad)
    (bad / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"garbage"))
    monkeypatch.setattr(store_module, "DEFAULT_CACHE", tmp_path / "cache2")
    monkeypatch.setattr(store_module, "_mirrors", lambda spec: [bad.as_uri() + "/"])
    with pytest.raises(DatasetError, match="checksum mismatch"):
        load_dataset("mnist", tmp_path / "empty")
    assert not (tmp_path / "cache2" / "mnist" / "t10k-labels-idx1-ubyte.gz").exists()


def test_random_crop_flip_is_a_shifted_window():
    images = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6)
    generator = torch.Generator().manual_seed(0)
    out = random_crop_flip(images, generator, padding=2)
    assert out.shape == images.shape
    replay = torch.Generator().manual_seed(0)
    dy = torch.randint(0, 5, (2,), generator=replay)
    dx = torch.randint(0, 5, (2,), generator=replay)
    flip = torch.rand(2, generator=replay) < 0.5
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for i in range(2):
        window = padded[i, :, dy[i]:dy[i] + 6, dx[i]:dx[i] + 6]
        expected = window.flip(-1) if flip[i] else window
        assert torch.equal(out[i], expected)
