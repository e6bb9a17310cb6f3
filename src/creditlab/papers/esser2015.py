"""Esser, Appuswamy, Merolla, Arthur & Modha (NeurIPS 2015): MNIST on TrueNorth, ensembles of 1 and 64.

Read as ``shared/research/wave2_additions.md`` (TrueNorth) settles them: the paper's PDF text and IBM
Research's publication page both give 92.7 % at 0.268 µJ per image (one network) and 99.42 % at
108 µJ (an ensemble of 64), **verified**. The proceedings web abstract gives the other published
energy pair, 0.408 / 121 µJ, with the same accuracies (kept as ``ABSTRACT_ENERGY_UJ``, status
verified as what that page says, not the pair reproduced). The deterministic open re-implementation
of a 5-core network (UA-RCL/RANC ``software/tealayers``: no sampling, no ensembles) reaches 91.4 %:
a secondary lower anchor, not the paper's. The paper's topologies (cores per network) were not
recovered: not available.
"""

from __future__ import annotations

from creditlab.papers.value import PaperValue

SOURCE = "Esser et al. 2015, PDF text and IBM Research's publication page; wave2_additions.md (TrueNorth)"
ABSTRACT_SOURCE = "Esser et al. 2015, proceedings web abstract (papers.nips.cc); spiking.md §3.1"
SETTING = "sparsely connected TrueNorth network; SGD, batch 100, momentum; epochs and topology not known"

#: ensemble size -> the paper's MNIST test accuracy (%)
TEST_ACCURACY: dict[int, PaperValue] = {
    1: PaperValue(92.7, None, "verified", SOURCE, "high-efficiency network, one sampled copy", SETTING),
    64: PaperValue(99.42, None, "verified", SOURCE, "high-accuracy network, ensemble of 64 sampled copies", SETTING),
}

#: ensemble size -> the paper's energy per image (µJ), the pair reproduced here
ENERGY_UJ: dict[int, PaperValue] = {
    1: PaperValue(0.268, None, "verified", SOURCE, "the abstract page says 0.408 µJ", SETTING),
    64: PaperValue(108.0, None, "verified", SOURCE, "the abstract page says 121 µJ", SETTING),
}

#: the other published energy pair (proceedings web abstract), not the one reproduced
ABSTRACT_ENERGY_UJ: dict[int, PaperValue] = {
    1: PaperValue(0.408, None, "verified", ABSTRACT_SOURCE, "differs from the PDF's 0.268 µJ"),
    64: PaperValue(121.0, None, "verified", ABSTRACT_SOURCE, "differs from the PDF's 108 µJ"),
}

#: a deterministic 5-core re-implementation (no sampling, no ensembles): a floor, not the paper's number
RANC_5CORE_ACCURACY = PaperValue(91.4, None, "secondary", "UA-RCL/RANC software/tealayers; wave2_additions.md",
                                 "4 window cores of 64 neurons + 1 output core of 250; Adam, batch 128, 5 epochs")

#: cores per network of the paper's two networks
CORES_PER_NETWORK = PaperValue(None, None, "not available", SOURCE,
                               "the wiring and core counts of the paper's networks were not recovered")


def paper_row(ensemble: int) -> tuple[PaperValue | None, PaperValue | None]:
    """(accuracy %, energy µJ per image) of the paper for an ensemble size, None where it reports none."""
    return TEST_ACCURACY.get(ensemble), ENERGY_UJ.get(ensemble)


__all__ = ["ABSTRACT_ENERGY_UJ", "CORES_PER_NETWORK", "ENERGY_UJ", "RANC_5CORE_ACCURACY", "SOURCE", "TEST_ACCURACY",
           "paper_row"]
