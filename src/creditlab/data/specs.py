"""What each dataset is: its files, their official checksums, where to download them, its statistics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from creditlab.registry import Registry


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset.

    ``raw_md5`` is the md5 of the decompressed content (checked whatever the container);
    ``gz_md5`` is the md5 of the official gzip file (a faster check when it matches).
    """

    name: str
    raw_md5: str | None
    gz_md5: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: folder name, files, download sources and the statistics used to normalize it."""

    name: str
    folder: str
    format: str  # "idx", "cifar-binary" or "generated"
    train_files: tuple[FileSpec, ...]
    test_files: tuple[FileSpec, ...]
    image_shape: tuple[int, int, int]
    num_classes: int
    train_size: int
    test_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    mirrors: tuple[str, ...] = field(default=())
    archive: tuple[str, str] | None = None  # (file name, md5) of a tar.gz holding the files
    classes: tuple[str, ...] = field(default=())
    #: a dataset the library builds (format "generated"): its generator (creditlab.data.generated)
    generator: Any = None


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def _register(spec: DatasetSpec) -> None:
    DATASETS.register(spec.name)(spec)


_DIGITS = tuple(str(d) for d in range(10))

_register(
    DatasetSpec(
        name="mnist",
        folder="mnist",
        format="idx",
        train_files=(
            FileSpec("train-images-idx3-ubyte", "6bbc9ace898e44ae57da46a324031adb",
                     "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            FileSpec("train-labels-idx1-ubyte", "a25bea736e30d166cdddb491f175f624",
                     "d53e105ee54ea40749a09fcbcd1e9432"),
        ),
        test_files=(
            FileSpec("t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea",
                     "9fb629c4189551a2d022fa330f9573f3"),
            FileSpec("t10k-labels-idx1-ubyte", "27ae3e4e09519cfbb04c329615203637",
                     "ec29112dd5afa0611ce80d1b7f02629c"),
        ),
        image_shape=(1, 28, 28),
        num_classes=10,
        train_size=60000,
        test_size=10000,
        mean=(0.1307,),
        std=(0.3081,),
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        classes=_DIGITS,
    )
)

_register(
    DatasetSpec(
        name="fashion-mnist",
        folder="fashion-mnist",
        format="idx",
        train_files=(
            FileSpec("train-images-idx3-ubyte", "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                     "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            FileSpec("train-labels-idx1-ubyte", "9018921c3c673c538a1fc5bad174d6f9",
                     "25c81989df183df01b3e8a0aad5dffbe"),
        ),
        test_files=(
            FileSpec("t10k-images-idx3-ubyte", "8181f5470baa50b63fa0f6fddb340f0a",
                     "bef4ecab320f06d8554ea6380940ec79"),
            FileSpec("t10k-labels-idx1-ubyte", "15d484375f8d13e6eb1aabb0c3f46965",
                     "bb300cfdad3c16e7a12a480ee83cd310"),
        ),
        image_shape=(1, 28, 28),
        num_classes=10,
        train_size=60000,
        test_size=10000,
        mean=(0.2860,),
        std=(0.3530,),
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                 "Bag", "Ankle boot"),
    )
)

# KMNIST: only the official gzip checksums are published, so an uncompressed copy is checked
# structurally (magic number, counts, size) rather than by checksum.
_register(
    DatasetSpec(
        name="kmnist",
        folder="kmnist",
        format="idx",
        train_files=(
            FileSpec("train-images-idx3-ubyte", None, "bdb82020997e1d708af4cf47b453dcf7"),
            FileSpec("train-labels-idx1-ubyte", None, "e144d726b3acfaa3e44228e80efcd344"),
        ),
        test_files=(
            FileSpec("t10k-images-idx3-ubyte", None, "5c965bf0a639b31b8f53240b1b52f4d7"),
            FileSpec("t10k-labels-idx1-ubyte", None, "7320c461ea6c1c855c0b718fb2a4b134"),
        ),
        image_shape=(1, 28, 28),
        num_classes=10,
        train_size=60000,
        test_size=10000,
        mean=(0.1918,),
        std=(0.3483,),
        mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
    )
)

_register(
    DatasetSpec(
        name="cifar10",
        folder="cifar-10",
        format="cifar-binary",
        train_files=tuple(
            FileSpec(f"data_batch_{i}.bin", md5)
            for i, md5 in enumerate(
                (
                    "5dd7e06a14cb22eb9f671a540d1b7c25",
                    "5ea93a67294ea407fff1d09f752e9692",
                    "942cd6a4bcdd0dd3c604fbe906cb4421",
                    "ae636b3ba5c66a11e91e8cb52e771fcb",
                    "53f37980c15c3d472c316c40844f3f0d",
                ),
                start=1,
            )
        ),
        test_files=(FileSpec("test_batch.bin", "803d5f7f4d78ea53de84dbe85f74fb6d"),),
        image_shape=(3, 32, 32),
        num_classes=10,
        train_size=50000,
        test_size=10000,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        archive=("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530"),
        classes=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    )
)


# -- datasets the library builds (seeded, no files): sequences (time, channels) of spikes -----------

def _register_generated(name: str, generator: Any, train_size: int, test_size: int) -> None:
    _register(DatasetSpec(name=name, folder="", format="generated", train_files=(), test_files=(),
                          image_shape=(generator.steps, 40), num_classes=2, train_size=train_size,
                          test_size=test_size, mean=(0.0,), std=(1.0,), classes=("left", "right"),
                          generator=generator))


def _generated() -> None:
    from creditlab.data.generated import EVIDENCE, EVIDENCE_SHORT

    _register_generated("evidence", EVIDENCE, 1024, 256)  # e-prop's cue task, 2250 steps
    _register_generated("evidence-short", EVIDENCE_SHORT, 4096, 512)  # the same task in 235 steps


_generated()
