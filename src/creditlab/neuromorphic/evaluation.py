"""Accuracy, cores, event counts and energy per image of ensembles of sampled networks, through the trainer.

:func:`ensemble_sweep` evaluates a trained model's ``expectation`` and ``ensemble-N`` variants for
every N in ``sizes`` with the trainer's own :func:`creditlab.train.evaluate_variants`: variant
``ensemble-N`` of epoch ``epoch`` draws from ``seeded_generator(seed, "eval", "ensemble-N", epoch)``
(its crossbars from that seed, its input spikes from the generator), so a size the trainer also
evaluated in that epoch gets exactly the trainer's numbers. Beside each accuracy: the cores the
ensemble occupies, its energy per image under each model (:mod:`creditlab.neuromorphic.energy`) and its events per
image (``SpikeCounts``, from the model's tally).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from creditlab.neuromorphic.energy import energy_table, per_event_energy_uj

if TYPE_CHECKING:
    from creditlab.rules import Rule


@torch.no_grad()
def ensemble_sweep(rule: Rule, images: torch.Tensor, labels: torch.Tensor, sizes: tuple[int, ...], seed: int,
                   epoch: int, batch_size: int = 250) -> dict[str, dict[str, Any]]:
    """{"expectation": {test_accuracy, test_loss}, "ensemble-N": {..., cores, <model>_uj, events_per_image}}.

    ``rule.model`` is a ``truenorth`` network (``ensemble_sizes``, ``take_event_counts``, ``cores``);
    its ``ensemble_sizes`` are set to ``sizes`` for the sweep and restored afterwards.
    """
    from creditlab.train import evaluate_variants

    model = rule.model
    per_epoch = model.ensemble_sizes
    model.ensemble_sizes = tuple(sizes)
    model.take_event_counts()  # start the tally from zero
    try:
        variants = evaluate_variants(rule, {"test": (images, labels)}, seed, epoch, batch_size)
        events = model.take_event_counts()
    finally:
        model.ensemble_sizes = per_epoch
        model.release_samples()
    energy = energy_table(model.cores, tuple(sizes))
    for n in sizes:
        counted = events[f"ensemble-{n}"]
        variants[f"ensemble-{n}"].update({**energy[n], "per_event_uj": per_event_energy_uj(counted),
                                          "events_per_image": counted})
    return variants
