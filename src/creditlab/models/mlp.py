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


MLP_INITS = ("default", "orthogonal")


class MLP(nn.Sequential):
    """Flatten -> [Linear -> activation] * len(hidden) -> Linear.

    x: (batch, *input_shape) -> logits (batch, num_classes).
    """

    def __init__(self, in_features: int, hidden: tuple[int, ...], num_classes: int,
                 activation: str = "relu", init: str = "default") -> None:
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), make_activation(activation)]
            width = h
        layers.append(nn.Linear(width, num_classes))
        super().__init__(*layers)
        if init == "orthogonal":  # Lee et al. 2015's code (util.rand_ortho): (semi-)orthogonal W, zero biases
            for layer in self:
                if isinstance(layer, nn.Linear):
                    nn.init.orthogonal_(layer.weight)
                    nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return super().forward(x)


@register_model("mlp", "MLP 784-512-512-10, ReLU (widths and activation configurable)",
                epochs=10, lr=2e-3, optimizer="adam", batch_size=64, schedule="cosine")
def build_mlp(input_shape: tuple[int, ...], num_classes: int, hidden: tuple[int, ...] = (512, 512),
              activation: str = "relu", init: str = "default") -> MLP:
    """MLP over flattened inputs; ValueError for widths below 1, an unknown activation or init.

    ``init``: ``default`` (torch's Linear init) or ``orthogonal`` (random (semi-)orthogonal weights by
    ``torch.nn.init.orthogonal_``, zero biases; Lee et al. 2015's deep tanh networks)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"option 'activation' takes one of {', '.join(sorted(ACTIVATIONS))}, got {activation!r}")
    if init not in MLP_INITS:
        raise ValueError(f"option 'init' takes one of {', '.join(MLP_INITS)}, got {init!r}")
    return MLP(math.prod(input_shape), check_widths("hidden", hidden), num_classes, activation, init)
