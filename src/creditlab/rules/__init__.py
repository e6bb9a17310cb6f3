"""Learning rules, one file each, registered by command-line name.

``build_rule(name, model)`` returns a :class:`~creditlab.rules.base.Rule`; ``RULES.names()`` lists
them. A rule given a model it cannot train raises IncompatibleModelError at construction.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn

from creditlab.registry import Registry, import_submodules
from creditlab.rules.base import DemoSetting, Rule, StepOutput

RULES: Registry[type[Rule]] = Registry("rule")


def register_rule(name: str) -> Callable[[type[Rule]], type[Rule]]:
    """Class decorator registering a Rule subclass under its command-line ``name``."""
    return RULES.register(name)


def build_rule(name: str, model: nn.Module, **options: object) -> Rule:
    """Instantiate the rule registered as ``name`` for ``model`` (options go to its constructor)."""
    return RULES.get(name)(model, **options)


import_submodules(__name__)

__all__ = ["RULES", "DemoSetting", "Rule", "StepOutput", "build_rule", "register_rule"]
