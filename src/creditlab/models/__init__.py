"""Model zoo. Every model is registered by its command-line name with a builder

``builder(input_shape: tuple[int, int, int], num_classes: int, **options) -> nn.Module``.

A model's options (``creditlab train --model-opt KEY=VALUE``) are the builder's keyword parameters,
checked against their annotations; a builder that takes ``**options`` declares them instead as a
typed schema, ``register_model(..., options={"window": Option(16, "...", minimum=1)})``
(:class:`creditlab.options.Option`), so that the command line checks them before any data is loaded.

Models that need post-step constraints (nonnegative clamps, clipping) define
``apply_constraints()`` on the module that owns them; the trainer calls
:func:`creditlab.models.apply_constraints` after every optimizer step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any

import torch.nn as nn

from creditlab.registry import Registry, import_submodules


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its builder, the dataset it is natural for, training defaults, and (for a
    builder that takes ``**options``) its options' schema, ``{name: creditlab.options.Option}``."""

    builder: Callable[..., nn.Module]
    description: str
    default_dataset: str = "mnist"
    defaults: dict = field(default_factory=dict)  # epochs, lr, optimizer, batch_size, ...
    options: dict[str, Any] | None = None


MODELS: Registry[ModelEntry] = Registry("model")


def register_model(name: str, description: str, default_dataset: str = "mnist", options: dict[str, Any] | None = None,
                   **defaults: object) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a model builder under ``name`` with its training defaults; ``options`` is
    the schema of a builder that takes ``**options`` (module docstring)."""

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        MODELS.register(name)(ModelEntry(builder, description, default_dataset, dict(defaults),
                                         None if options is None else dict(options)))
        return builder

    return decorator


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int, **options: object) -> nn.Module:
    """Build the model registered as ``name`` for inputs ``(C, H, W)`` and ``num_classes`` outputs."""
    entry = MODELS.get(name)
    model = entry.builder(tuple(input_shape), num_classes, **options)
    model.creditlab_name = name  # type: ignore[assignment]
    model.input_shape = tuple(input_shape)  # type: ignore[assignment]
    return model


def check_widths(option: str, widths: object) -> tuple[int, ...]:
    """``widths`` as a non-empty tuple of integers >= 1 (layer widths); ValueError naming ``option``."""
    values = tuple(widths) if isinstance(widths, (list, tuple)) else None
    if not values or not all(isinstance(w, Integral) and not isinstance(w, bool) and w >= 1 for w in values):
        raise ValueError(f"option {option!r} takes a non-empty list of layer widths, each an integer >= 1 "
                         f"(e.g. {option}=[256,256]), got {widths!r}")
    return tuple(int(w) for w in values)


def apply_constraints(model: nn.Module) -> None:
    """Call ``apply_constraints()`` on every submodule that defines it (after an optimizer step)."""
    for module in model.modules():
        hook = getattr(module, "apply_constraints", None)
        if callable(hook):
            hook()


import_submodules(__name__)
