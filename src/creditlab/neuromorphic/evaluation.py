"""Accuracy, cores, event counts and energy per image of ensembles of sampled networks on a split.

Each ensemble size N is the evaluation variant ``ensemble-N``, evaluated with the generator the
trainer protocol gives it, ``seeded_generator(seed, "eval", "ensemble-N", epoch)`` (crossbars from
that seed, input spikes from the generator), so this and the trainer report the same numbers.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from creditlab.neuromorphic.energy import energy_table
from creditlab.neuromorphic.seeds import seeded_generator


@torch.no_grad()
def ensemble_report(model: Any, images: torch.Tensor, labels: torch.Tensor, sizes: tuple[int, ...], seed: int,
                    epoch: int, batch_size: int = 500) -> dict[str, dict[str, Any]]:
    """{"expectation": {...}, "ensemble-N": {test_accuracy, test_loss, cores, events per image, energy}}."""
    was_training = model.training
    model.eval()
    report: dict[str, dict[str, Any]] = {}
    correct = loss = 0.0
    for start in range(0, len(images), batch_size):
        logits = model(images[start:start + batch_size])
        y = labels[start:start + batch_size]
        correct += float((logits.argmax(1) == y).sum())
        loss += float(F.cross_entropy(logits, y, reduction="sum"))
    report["expectation"] = {"test_accuracy": correct / len(images), "test_loss": loss / len(images)}
    energy = energy_table(model.cores, sizes)
    for n in sizes:
        name = f"ensemble-{n}"
        generator = seeded_generator(seed, "eval", name, epoch, device=images.device)
        correct = loss = 0.0
        events: dict[str, float] = {}
        for start in range(0, len(images), batch_size):
            x, y = images[start:start + batch_size], labels[start:start + batch_size]
            logits, counts = model.ensemble_run(x, n, generator)
            correct += float((logits.argmax(1) == y).sum())
            loss += float(F.cross_entropy(logits, y, reduction="sum"))
            for key, value in counts.as_dict().items():
                events[key] = events.get(key, 0.0) + value * len(y)
        report[name] = {"test_accuracy": correct / len(images), "test_loss": loss / len(images),
                        **energy[n], "events_per_image": {k: v / len(images) for k, v in events.items()}}
    model._sample_cache = None  # free the sampled copies
    model.train(was_training)
    return report
