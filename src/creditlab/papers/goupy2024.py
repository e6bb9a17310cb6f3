"""Goupy, Tirilly & Bilasco (NeurIPS 2024): Table 1, STDP-CSNN column, mean ± sd % over 10 folds.

Fashion-MNIST and CIFAR-10 rows: the authors' slides and poster (``tables_recovered.md`` §1.2,
verified). MNIST S2-STDP+NCG: a third-party note only (secondary).
"""

from __future__ import annotations

from creditlab.papers.value import PaperValue

SOURCE = "Goupy et al. 2024, Table 1 (STDP-CSNN features), the authors' slides and poster; tables_recovered.md §1.2"
SECONDARY_SOURCE = "a third-party note on Goupy et al. 2024 (not in the slides or poster)"

_TABLE = {
    "fashion-mnist": {"s2stdp": (85.89, 0.27), "s2stdp+ncg": (88.72, 0.23), "sstdp": (85.26, 0.17),
                      "sstdp+ncg": (87.59, 0.11)},
    "cifar10": {"s2stdp": (61.08, 0.17), "s2stdp+ncg": (66.41, 0.17), "sstdp": (60.87, 0.53),
                "sstdp+ncg": (64.05, 0.48)},
}

#: (dataset, method) -> Table 1's test accuracy %, mean and sd over the 10 folds
TEST_ACCURACY: dict[tuple[str, str], PaperValue] = {
    (dataset, method): PaperValue(mean, sd, "verified", SOURCE, runs=10)
    for dataset, methods in _TABLE.items() for method, (mean, sd) in methods.items()}
TEST_ACCURACY[("mnist", "s2stdp+ncg")] = PaperValue(98.92, None, "secondary", SECONDARY_SOURCE, runs=10)

__all__ = ["SECONDARY_SOURCE", "SOURCE", "TEST_ACCURACY"]
