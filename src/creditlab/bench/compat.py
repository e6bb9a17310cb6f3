"""Which registered models each rule can train: found by constructing the rule, never hard-coded.

The answer is the one construction gives (``build_rule`` on the model built for its natural
dataset), so ``creditlab rules`` and ``creditlab train`` can never disagree: every check a rule runs
at construction (static checks, DFA's probe forward pass, ...) is the check this table runs.
"""

from __future__ import annotations

import copy
from functools import cache

import torch
import torch.nn as nn

from creditlab.data.specs import DATASETS
from creditlab.errors import IncompatibleModelError
from creditlab.models import MODELS, build_model
from creditlab.rules import build_rule

#: the order in which a rule's "natural" model is chosen for demos and quick benchmarks
PREFERRED_MODELS = ("mlp", "vnn-fc", "lenet", "arelu-fc")


@cache
def _example_model(name: str) -> nn.Module:
    entry = MODELS.get(name)
    spec = DATASETS.get(entry.default_dataset)
    with torch.random.fork_rng():
        return build_model(name, spec.image_shape, spec.num_classes)


@cache
def refusal(rule: str, model: str) -> str | None:
    """Why ``rule`` cannot train ``model`` (the IncompatibleModelError of its construction), or None."""
    with torch.random.fork_rng():
        try:
            build_rule(rule, copy.deepcopy(_example_model(model)))
        except IncompatibleModelError as error:
            return str(error)
    return None


def can_train(rule: str, model: str) -> bool:
    """True when constructing ``rule`` on ``model`` (built for its natural dataset) succeeds."""
    return refusal(rule, model) is None


def compatible_models(rule: str) -> list[str]:
    """Every registered model that ``rule`` can train."""
    return [m for m in MODELS.names() if can_train(rule, m)]


def natural_model(rule: str) -> str:
    """The model a rule is shown on by default: the first compatible one in PREFERRED_MODELS."""
    compatible = compatible_models(rule)
    for name in PREFERRED_MODELS:
        if name in compatible:
            return name
    if not compatible:
        raise IncompatibleModelError(f"rule {rule!r} accepts none of the registered models")
    return compatible[0]
