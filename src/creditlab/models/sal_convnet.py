"""The SAL paper's deep network (Gierlich et al. 2025, arXiv v2 "SymmNet"; adapted from Guerguiev 2020).

conv 64@5x5 (no bias, no padding) -> ReLU -> BN -> maxpool 2 -> conv 64@5x5 (no bias) -> ReLU -> BN ->
maxpool 2 -> FC 384 -> ReLU -> BN -> FC 192 -> ReLU -> BN -> FC classes (logits; softmax in the loss).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from creditlab.models import register_model


class SALConvNet(nn.Module):
    """x: (batch, C, H, W) with H = W in {28, 32} -> logits (batch, num_classes)."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int, channels: int = 64) -> None:
        super().__init__()
        side = ((image_size - 4) // 2 - 4) // 2
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, channels, 5, bias=False), nn.ReLU(), nn.BatchNorm2d(channels), nn.MaxPool2d(2),
            nn.Conv2d(channels, channels, 5, bias=False), nn.ReLU(), nn.BatchNorm2d(channels), nn.MaxPool2d(2),
            nn.Flatten())
        self.classifier = nn.Sequential(
            nn.Linear(channels * side * side, 384), nn.ReLU(), nn.BatchNorm1d(384),
            nn.Linear(384, 192), nn.ReLU(), nn.BatchNorm1d(192),
            nn.Linear(192, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.classifier(self.features(x))


@register_model("sal-convnet", "the SAL paper's conv net: 2 conv 64@5x5 + BN, FC 384-192-classes + BN",
                default_dataset="fashion-mnist", epochs=100, lr=0.01, optimizer="sgd", momentum=0.9,
                batch_size=128)
def build_sal_convnet(input_shape: tuple[int, ...], num_classes: int) -> SALConvNet:
    """For (C, 28, 28) or (C, 32, 32) inputs (the authors' SGD lr 0.01, momentum 0.9, batch 128)."""
    channels, height, width = input_shape
    if height != width or height not in (28, 32):
        raise ValueError(f"model 'sal-convnet' takes 28x28 or 32x32 images, got {height}x{width}")
    return SALConvNet(channels, num_classes, height)
