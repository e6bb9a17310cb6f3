"""Sanfiz & Akrout (2021), BioTorch: top-1 test errors (%) of its ``Benchmarks.md`` (single runs).

Read from ``jsalbert/biotorch`` @ 74fad0d (``shared/research/gevb_fa.md`` §3.5): verified against the
repository; whether ``Benchmarks.md`` matches the paper's tables is not known.
"""

from __future__ import annotations

from creditlab.papers.value import PaperValue

SOURCE = "Sanfiz & Akrout 2021 (BioTorch), Benchmarks.md at 74fad0d; gevb_fa.md §3.5"
MNIST_SETTING = ("LeNet on 32x32 MNIST, SGD momentum 0.9, wd 1e-3, batch 64, 100 epochs, "
                 "lr /10 at 50/75; best test error over epochs (test set also selects); single run")
CIFAR_SETTING = ("CIFAR-10, 45k/5k split, crop+flip, 250 epochs, batch 128, wd 1e-4, "
                 "lr /10 at 100/150/200; best-validation model on test; single run")
LENET_NOTE = "BioTorch LeNet takes 32x32 inputs; ours 28x28 (padded convs)"

_MNIST = {"bp": (0.91, 9.2), "fa": (1.7, 13.06), "usf": (0.94, 9.69), "brsf": (0.91, 10.02),
          "frsf": (0.97, 9.61), "dfa": (1.61, 12.81)}            # (MNIST, Fashion-MNIST), LeNet, SGD
_CIFAR = {"bp": (14.23, 15.92, 8.63, 10.01), "fa": (46.69, 40.67, 32.16, 29.59),
          "dfa": (54.21, 37.59, 45.94, 32.16), "usf": (16.22, 16.34, 10.05, 10.59),
          "brsf": (16.02, 17.08, 11.02, 11.08), "frsf": (16.86, 16.83, 11.2, 11.22)}
_CIFAR_COLUMNS = (("lenet", "sgd"), ("lenet", "adam"), ("resnet20", "sgd"), ("resnet20", "adam"))

#: (dataset, model, optimizer, rule) -> BioTorch's test error %
TEST_ERROR: dict[tuple[str, str, str, str], PaperValue] = {}
for _rule, (_mnist, _fashion) in _MNIST.items():
    for _dataset, _error in (("mnist", _mnist), ("fashion-mnist", _fashion)):
        TEST_ERROR[(_dataset, "lenet", "sgd", _rule)] = PaperValue(_error, None, "verified", SOURCE, LENET_NOTE,
                                                                   MNIST_SETTING, 1)
for _rule, _errors in _CIFAR.items():
    for (_model, _optimizer), _error in zip(_CIFAR_COLUMNS, _errors, strict=True):
        TEST_ERROR[("cifar10", _model, _optimizer, _rule)] = PaperValue(
            _error, None, "verified", SOURCE, "", CIFAR_SETTING + f"; {_optimizer.upper()}", 1)


def test_error(dataset: str, model: str, rule: str, optimizer: str = "sgd") -> PaperValue | None:
    """BioTorch's test error for a cell, or None where its table has none."""
    return TEST_ERROR.get((dataset, model, optimizer, rule))


__all__ = ["SOURCE", "TEST_ERROR", "test_error"]
