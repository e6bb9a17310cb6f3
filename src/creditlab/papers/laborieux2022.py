"""Holomorphic EP (Laborieux & Zenke 2022), Table 1 (MNIST, MLP 784-256-256-10): the authors' committed
logs, final-epoch test accuracy per seed, read from Laborieux-Axel/holomorphic_eqprop
``results/table1/{no_noise,noise}/{hep,classic_ep_1e-1,classic_ep_4e-1}/*_run{1,2,3}/log.txt`` (the last
"Val accuracy" line: their ``val_loader`` is the 10,000-image MNIST test set). Protocol (each run's
``hyperparameters.json``): batch 20, 50 epochs, plain SGD lr 0.05 for every layer with cosine annealing
to lr·1e-7 per epoch, ``my_sigmoid`` a = −4, b = 2, s = 0 at every batch, inputs x/255; hEP N = 10,
β = 0.4, T1 = 200, T2 = 50; classic EP T1 = T2 = 350 at β = 0.1 and 0.4; noise 0.04 in the noisy rows.

Scellier & Bengio 2017 (784-500-10): the protocol is from their code's defaults (bscellier,
``train_model.py``: 25 epochs, batch 20, n_it_neg 20, n_it_pos 4, ε 0.5, β 0.5, α = 0.1, 0.05); the
test error of the paper's text could not be read here, so it is "not available".
"""

from __future__ import annotations

from creditlab.papers.value import PaperValue

SOURCE = "Laborieux-Axel/holomorphic_eqprop results/table1 log.txt (last epoch, 10,000 test images)"

#: (arm, noise) -> correct test images of 10,000 per seed (run1, run2, run3), from the logs
_CORRECT = {
    ("hep", 0.0): (9776, 9793, 9732), ("ep-0.1", 0.0): (9814, 9794, 9800), ("ep-0.4", 0.0): (9756, 9766, 9772),
    ("hep", 0.04): (9812, 9774, 9755), ("ep-0.1", 0.04): (1135, 980, 1032), ("ep-0.4", 0.04): (9599, 9684, 9641),
}

#: arm label (``hep``, ``ep-0.1``, ... with ``-noise`` for noise 0.04) -> per-seed test accuracies (fractions)
TEST_ACCURACY: dict[str, tuple[PaperValue, ...]] = {
    f"{arm}{'-noise' if noise else ''}": tuple(
        PaperValue(count / 10000, source=SOURCE, note=f"run{seed + 1}",
                   setting=f"784-256-256-10, 50 epochs, batch 20, noise {noise:g}")
        for seed, count in enumerate(counts))
    for (arm, noise), counts in _CORRECT.items()
}

SCELLIER_BENGIO_2017 = PaperValue(None, status="not available",
                                  source="Scellier & Bengio 2017, Front. Comput. Neurosci. 11:24",
                                  note="the experimental section's numbers could not be read offline",
                                  setting="784-500-10, 25 epochs, batch 20, 20 free / 4 nudged steps, β = 0.5")

__all__ = ["SCELLIER_BENGIO_2017", "SOURCE", "TEST_ACCURACY"]
