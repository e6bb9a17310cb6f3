"""LeNet-5-style CNN for 28x28 (and 32x32) inputs."""

from __future__ import annotations

import torch
import torch.nn as nn

from creditlab.models import register_model


class LeNet5(nn.Module):
    """conv 6@5x5 (pad 2) -> pool -> conv 16@5x5 -> pool -> fc 120 -> fc 84 -> fc classes.

    x: (batch, C, 28, 28) or (batch, C, 32, 32) -> logits (batch, num_classes).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> None:
        super().__init__()
        padding = 2 if image_size == 28 else 0
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=padding), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.classifier(self.features(x))


@register_model("lenet", "LeNet-5-style CNN (2 conv + 3 fc) for 28x28 inputs",
                epochs=12, lr=1e-3, optimizer="adam", batch_size=64, schedule="cosine")
def build_lenet(input_shape: tuple[int, ...], num_classes: int) -> LeNet5:
    """LeNet-5 for (C, 28, 28) or (C, 32, 32) inputs."""
    channels, height, width = input_shape
    if height != width or height not in (28, 32):
        raise ValueError(f"lenet takes 28x28 or 32x32 inputs, got {height}x{width}")
    return LeNet5(channels, num_classes, height)
