"""GAIT-prop (Ahmad, van Gerven & Ambrogioni 2020) and its scaling follow-up (Dalm et al. 2021): the
papers' numbers. None could be read (only abstracts, reviews and the authors' code were reachable;
``shared/research/gaitprop_tp_slrl.md`` §1.6-1.7), so every entry is "not available" and the
reproduction reports BP measured on the same network beside each rule instead.
"""

from __future__ import annotations

from creditlab.papers.value import PaperValue

_AHMAD = "Ahmad, van Gerven & Ambrogioni, NeurIPS 2020 (arXiv 2006.06438)"
_DALM = "Dalm, Ahmad, Ambrogioni & van Gerven 2021 (arXiv 2102.11598)"
_NOT_READ = "results table/figure not retrievable; only the qualitative claim of the abstract is verified"

#: (dataset, rule) -> test accuracy (fraction); the 2020 paper's 4 hidden x 784 invertible MLP
TEST_ACCURACY: dict[tuple[str, str], PaperValue] = {
    (dataset, rule): PaperValue(None, status="not available", source=_AHMAD, note=_NOT_READ,
                                setting="4 hidden x 784 leaky-ReLU, 100 epochs")
    for dataset in ("mnist", "fashion-mnist", "kmnist") for rule in ("bp", "gaitprop", "tp")
}
#: CIFAR-10, 3072 -> 6 x 1024 -> 10, 200 epochs (Dalm et al.): BP, FA, vanilla and adaptive GAIT-prop
CIFAR10_TEST_ACCURACY: dict[str, PaperValue] = {
    rule: PaperValue(None, status="not available", source=_DALM, note=_NOT_READ,
                     setting="3072 -> 6 x 1024 -> 10, batch 256, 200 epochs, float64")
    for rule in ("bp", "fa", "gaitprop-vanilla", "gaitprop-adaptive")
}
#: the claims that are verified (abstracts) and are what the reproduction checks
CLAIMS = {
    "gaitprop-equals-bp": "backpropagation and GAIT-prop give identical updates when synaptic weight "
                          "matrices are orthogonal; near-identical performance with a soft orthogonality "
                          "regularizer (2020 abstract)",
    "tp-early-stopping": "target propagation often does best when early-stopping is implemented to 'catch' "
                         "this peak (2020 supplement)",
    "adaptive-rescaling": "adaptively rescaling the locally-computed errors significantly increases the "
                          "performance and stability on CIFAR-10 (2021 abstract)",
}
KMNIST_NOTE = "KMNIST is not available offline (no verified copy in the shared data), so it is not run"

__all__ = ["CIFAR10_TEST_ACCURACY", "CLAIMS", "KMNIST_NOTE", "PaperValue", "TEST_ACCURACY"]
