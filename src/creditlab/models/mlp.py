"""Multilayer perceptron with configurable widths and activation."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from creditlab.models import check_widths, register_model

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
    "identity": nn.Identity,
}


def make_activation(name: str) -> nn.Module:
    """A fresh activation module by name (``relu``, ``tanh``, ``sigmoid``, ``gelu``, ...)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(sorted(ACTIVATIONS))}") from None


class MLP(nn.Sequential):
    """Flatten -> [Linear -> activation] * len(hidden) -> Linear.

    x: (batch, *input_shape) -> logits (batch, num_classes).
    """

    def __init__(self, in_features: int, hidden: tuple[int, ...], num_classes: int,
                 activation: str = "relu") -> None:
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), make_activation(activation)]
            width = h
        layers.append(nn.Linear(width, num_classes))
        super().__init__(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return super().forward(x)


@register_model("mlp", "MLP 784-512-512-10, ReLU (widths and activation configurable)",
                epochs=10, lr=2e-3, optimizer="adam", batch_size=64, schedule="cosine")
def build_mlp(input_shape: tuple[int, ...], num_classes: int, hidden: tuple[int, ...] = (512, 512),
              activation: str = "relu") -> MLP:
    """MLP over flattened inputs; ValueError for widths below 1 or an unknown activation."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"option 'activation' takes one of {', '.join(sorted(ACTIVATIONS))}, got {activation!r}")
    return MLP(math.prod(input_shape), check_widths("hidden", hidden), num_classes, activation)
