"""``ff-mlp``: the fully connected ReLU network Forward-Forward trains (Hinton 2022, §3.3).

Shapes, for a batch of B images of (C, H, W) flattened to D = C·H·W pixels and K classes::

    x_label = x with its first K pixels replaced by a label code      (one-hot: §3.3; uniform 1/K: neutral)
    h_0 = x_label
    z_l = relu(W_l · n(h_{l-1}) + b_l),  n(v) = v / (sqrt(mean(v²)) + eps)   l = 1..L, (B, width_l)
    goodness_l = Σ_j z_l[:, j]²                                                  (B,)

The length normalisation ``n`` (by the root mean square, as the reference code loeweX/Forward-Forward
``_layer_norm``) hides a layer's goodness from the next, so every layer must find new features.

Read-outs (:meth:`FFMLP.evaluation_variants`):

* ``softmax``: a linear classifier (no bias, zero init) on the concatenated normalised activities
  n(z_2) ‖ … ‖ n(z_L) of the *neutral* input (label pixels 1/K); this is also ``forward`` (the
  trainer's ``test_accuracy``), the read-out whose accuracy the reference code reports;
* ``goodness``: for each label c the input with c embedded, scores Σ_{l≥2} goodness_l; the predicted
  label has the highest accumulated goodness (the paper's; K forward passes per image).

With one hidden layer both read-outs use layer 1 (there is no layer 2). Weights start as the reference
code's: W_l ~ N(0, 1/out_features), b_l = 0. Inputs in [0, 1] (``normalization="unit"``, as the
reference's ``ToTensor``). Trained by rule ``ff`` (its local objectives); rule ``bp`` trains the same
network end to end on the softmax read-out (the step-time baseline).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from creditlab.models import check_widths, register_model

#: the reference code's (and the paper's) network: 3 (paper: 4) hidden layers of 1000 (paper: 2000)
DEFAULT_HIDDEN = (1000, 1000, 1000)


def length_normalize(activity: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``activity / (sqrt(mean(activity², -1)) + eps)``: each row scaled to unit root mean square."""
    return activity / (activity.pow(2).mean(dim=-1, keepdim=True).sqrt() + eps)


class FFMLP(nn.Module):
    """Linear + ReLU layers with length normalisation between them and a softmax read-out; see module doc."""

    def __init__(self, in_features: int, hidden: tuple[int, ...], num_classes: int, eps: float = 1e-8) -> None:
        super().__init__()
        if in_features < num_classes:
            raise ValueError(f"ff-mlp embeds the label in the first {num_classes} input pixels, but the input "
                             f"has only {in_features}")
        self.num_classes, self.eps = num_classes, float(eps)
        widths = (in_features, *hidden)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.classifier = nn.Linear(sum(self.readout_widths()), num_classes, bias=False)
        with torch.no_grad():
            for layer in self.layers:  # the reference code's init
                layer.weight.normal_(0.0, 1.0 / math.sqrt(layer.out_features))
                layer.bias.zero_()
            self.classifier.weight.zero_()

    def readout_layers(self) -> list[int]:
        """Indices (from 0) of the layers both read-outs use: 2..L in the paper's numbering (1 if L = 1)."""
        return list(range(1, len(self.layers))) if len(self.layers) > 1 else [0]

    def readout_widths(self) -> list[int]:  # noqa: D102
        return [self.layers[i].out_features for i in self.readout_layers()]

    def embed_label(self, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(B, D) flattened inputs with the first K pixels set to one-hot ``labels`` (B,)."""
        flat = inputs.flatten(1).clone()
        flat[:, :self.num_classes] = F.one_hot(labels, self.num_classes).to(flat.dtype)
        return flat

    def embed_neutral(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, D) flattened inputs with the first K pixels set to 1/K (the neutral label)."""
        flat = inputs.flatten(1).clone()
        flat[:, :self.num_classes] = 1.0 / self.num_classes
        return flat

    def activities(self, embedded: torch.Tensor,
                   relu: Callable[[torch.Tensor], torch.Tensor] = torch.relu) -> list[torch.Tensor]:
        """[z_1, ..., z_L] (each (B, width_l), before normalisation) for (B, D) label-embedded inputs."""
        out, h = [], embedded
        for layer in self.layers:
            h = relu(layer(length_normalize(h, self.eps)))
            out.append(h)
        return out

    def readout_features(self, activities: list[torch.Tensor]) -> torch.Tensor:
        """n(z_2) ‖ … ‖ n(z_L): (B, Σ widths) the softmax read-out sees."""
        return torch.cat([length_normalize(activities[i], self.eps) for i in self.readout_layers()], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax read-out logits (B, K) of the neutral-label input."""
        return self.classifier(self.readout_features(self.activities(self.embed_neutral(x))))

    def goodness_scores(self, x: torch.Tensor) -> torch.Tensor:
        """(B, K): for each label c, Σ over the read-out layers of the goodness with c embedded."""
        scores = []
        for label in range(self.num_classes):
            labels = torch.full((x.shape[0],), label, dtype=torch.long, device=x.device)
            zs = self.activities(self.embed_label(x, labels))
            scores.append(sum(zs[i].pow(2).sum(dim=1) for i in self.readout_layers()))
        return torch.stack(scores, dim=1)

    def evaluation_variants(self) -> dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]]:
        """``goodness`` (highest accumulated goodness over labels) and ``softmax`` (the linear read-out)."""
        return {"goodness": lambda x, _generator: self.goodness_scores(x),
                "softmax": lambda x, _generator: self(x)}


@register_model("ff-mlp", "Forward-Forward MLP 784-3x1000, length-normalised ReLU layers, softmax read-out",
                epochs=100, lr=1e-3, optimizer="sgd", momentum=0.9, batch_size=100, schedule="linear-cooldown",
                normalization="unit")
def build_ff_mlp(input_shape: tuple[int, ...], num_classes: int, hidden: tuple[int, ...] = DEFAULT_HIDDEN,
                 eps: float = 1e-8) -> FFMLP:
    """The FF network over flattened inputs; ValueError for widths below 1 or a non-positive ``eps``."""
    if not (isinstance(eps, int | float) and eps > 0):
        raise ValueError(f"option 'eps' (added to the norm in the length normalisation) must be > 0, got {eps!r}")
    return FFMLP(math.prod(input_shape), check_widths("hidden", hidden), num_classes, eps)
