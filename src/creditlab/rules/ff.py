"""Forward-Forward (Hinton 2022, "The Forward-Forward Algorithm: Some Preliminary Investigations").

Each layer of an :class:`~creditlab.models.ff_mlp.FFMLP` is trained by its own objective; no
gradient crosses a layer (its input is detached). For a batch of B images with labels y, the
positive data embed y, the negative data the same images with a wrong label ŷ ≠ y drawn uniformly
from the K − 1 others (§3.3), and for layer l of width D_l (activities z_l, see the model)::

    G_l = Σ_j z_l,j²                                   goodness (§2, eq. 1's sum of squares)
    p(positive) = σ(G_l − θ·D_l)                        eq. 1 with threshold θ·D_l
    L_ff,l = BCE(σ(G_l⁺ − θ D_l), 1) + BCE(σ(G_l⁻ − θ D_l), 0), averaged over the 2B samples

Peer normalisation (the reference code loeweX/Forward-Forward, ``_calc_peer_normalization_loss``):
a running mean m_l of each unit's activity on positive data, m_l ← μ m_l + (1 − μ) mean_batch(z_l⁺),
with the gradient through the batch term only, and

    L_peer,l = mean_j (mean(m_l) − m_l,j)²,         L_l = L_ff,l + λ_peer L_peer,l

The softmax read-out (the model's ``classifier``) learns from the cross-entropy of the neutral
input's features, which are detached: it never trains the layers. What ``.grad`` holds::

    W_l.grad = ∂L_l/∂W_l + wd · W_l                      (the same for b_l)
    classifier.grad = s · (∂CE/∂C + wd_c · C)             s = readout_lr_scale

so plain SGD with lr η (momentum μ_opt) moves the layers with η and the read-out with s·η: the
reference code's two parameter groups (lr 1e-3 / 1e-2, weight decay 3e-4 / 3e-3, momentum 0.9) exactly.
The rule applies the decay itself, so the trainer's ``--weight-decay`` is fixed at 0.

``relu_gradient``: ``straight-through`` (default) passes the gradient through the ReLU whatever its
input (the reference code's ``ReLU_full_grad``); ``exact`` uses the ReLU's derivative.

State: the running means (``peer_mean_<l>`` buffers) and the negative-label stream (a seed and a
draw counter, ``negative_label_seed`` / ``negative_draws``: draw t comes from
``seeded_generator(seed, "ff-negative-labels", t)``) live in the rule's state dict, so a resumed run
continues bit for bit. The seed defaults to the run's (``torch.initial_seed()`` at construction).

Alignment (``--track-alignment``): :meth:`ForwardForward.true_gradients` is the gradient of the
softmax read-out's cross-entropy through every layer (exact ReLU derivative), the supervised loss FF's
local objectives stand in for. Accepted models: ``ff-mlp`` only.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from creditlab.models.ff_mlp import FFMLP, length_normalize
from creditlab.optim import OptimizerRequirement
from creditlab.rules import register_rule
from creditlab.rules.base import DemoSetting, LossFn, Rule, StepOutput, require
from creditlab.seeding import seeded_generator

RELU_GRADIENTS = ("straight-through", "exact")


def straight_through_relu(pre: torch.Tensor) -> torch.Tensor:
    """relu(pre) in the forward pass, the identity's gradient in the backward pass."""
    return pre + (pre.clamp(min=0) - pre).detach()


def ff_layer_loss(activity: torch.Tensor, is_positive: torch.Tensor, threshold: float) -> torch.Tensor:
    """BCE of σ(G − θ·D) against positive (1) / negative (0), averaged over the rows of ``activity`` (N, D)."""
    logits = activity.pow(2).sum(dim=1) - threshold * activity.shape[1]
    return F.binary_cross_entropy_with_logits(logits, is_positive)


def _check(name: str, value: object, low: float, high: float = math.inf, low_open: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(float(value)) \
        and (float(value) > low if low_open else float(value) >= low) and float(value) <= high
    if not ok:
        bound = f"{'>' if low_open else '>='} {low:g}" + (f" and <= {high:g}" if math.isfinite(high) else "")
        raise ValueError(f"rule 'ff': option {name} must be a finite number {bound}, got {value!r}")
    return float(value)


@register_rule("ff")
class ForwardForward(Rule):
    """Forward-Forward: each layer pushes its goodness above θ·D for positive data, below for negative."""

    name = "ff"
    description = "Forward-Forward (Hinton 2022): layer-local goodness objectives on positive/negative labels"
    accepts = "model 'ff-mlp' (length-normalised ReLU layers with the label embedded in the input)"
    optimizer_requirement = OptimizerRequirement(
        "rule 'ff'", fixed={"weight_decay": 0.0}, defaults={"optimizer": "sgd", "lr": 1e-3, "momentum": 0.9},
        reason="the rule applies its own weight decay (rule options weight_decay, readout_weight_decay)")
    demo = DemoSetting(floor=0.65, model="ff-mlp", model_options={"hidden": (256, 256)}, epochs=2,
                       training={"schedule": "none"})

    def __init__(self, model: nn.Module, loss_fn: LossFn | None = None, threshold: float = 1.0,
                 peer_normalization: float = 0.03, peer_momentum: float = 0.9, weight_decay: float = 3e-4,
                 readout_lr_scale: float = 10.0, readout_weight_decay: float = 3e-3,
                 relu_gradient: str = "straight-through", seed: int | None = None) -> None:
        threshold = _check("threshold", threshold, 0.0)
        peer_normalization = _check("peer_normalization", peer_normalization, 0.0)
        peer_momentum = _check("peer_momentum", peer_momentum, 0.0, 1.0)
        weight_decay = _check("weight_decay", weight_decay, 0.0)
        readout_lr_scale = _check("readout_lr_scale", readout_lr_scale, 0.0)
        readout_weight_decay = _check("readout_weight_decay", readout_weight_decay, 0.0)
        if relu_gradient not in RELU_GRADIENTS:
            raise ValueError(f"rule 'ff': option relu_gradient must be one of {', '.join(RELU_GRADIENTS)}, "
                             f"got {relu_gradient!r}")
        super().__init__(model, loss_fn)
        self.threshold, self.peer_normalization, self.peer_momentum = threshold, peer_normalization, peer_momentum
        self.weight_decay, self.readout_lr_scale = weight_decay, readout_lr_scale
        self.readout_weight_decay, self.relu_gradient = readout_weight_decay, relu_gradient
        device = next(self.model.parameters()).device
        for index, layer in enumerate(self.model.layers):
            self.register_buffer(f"peer_mean_{index}", torch.full((layer.out_features,), 0.5, device=device))
        seed = (torch.initial_seed() if seed is None else int(seed)) % 2**63  # fits the int64 buffer
        self.register_buffer("negative_label_seed", torch.tensor(seed, dtype=torch.int64))
        self.register_buffer("negative_draws", torch.zeros((), dtype=torch.int64))

    @classmethod
    def check_model(cls, model: nn.Module) -> None:  # noqa: D102
        require(isinstance(model, FFMLP), cls, model, "Forward-Forward needs label-embedded inputs, length "
                "normalisation between layers and a read-out on the normalised activities")

    def negative_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """(B,) wrong labels, uniform over the K − 1 others, from draw ``negative_draws`` (then counted)."""
        k = self.model.num_classes
        generator = seeded_generator(int(self.negative_label_seed), "ff-negative-labels", int(self.negative_draws))
        offsets = torch.randint(1, k, (labels.shape[0],), generator=generator).to(labels.device)
        self.negative_draws += 1
        return (labels + offsets) % k

    def compute_update(self, inputs: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        """Per layer: goodness + peer loss on its detached input; read-out: CE on neutral features."""
        model = self.model
        batch = inputs.shape[0]
        negatives = self.negative_labels(targets)
        h = torch.cat([model.embed_label(inputs, targets), model.embed_label(inputs, negatives)])
        is_positive = torch.cat([torch.ones(batch), torch.zeros(batch)]).to(h)
        relu = straight_through_relu if self.relu_gradient == "straight-through" else torch.relu
        total = torch.zeros((), device=h.device, dtype=h.dtype)
        for index, layer in enumerate(model.layers):
            with torch.enable_grad():
                z = relu(layer(length_normalize(h.detach(), model.eps)))
                loss = ff_layer_loss(z, is_positive, self.threshold)
                if self.peer_normalization > 0:
                    running = getattr(self, f"peer_mean_{index}")
                    mean = running * self.peer_momentum + z[:batch].mean(dim=0) * (1 - self.peer_momentum)
                    loss = loss + self.peer_normalization * (mean.mean() - mean).pow(2).mean()
                    running.copy_(mean.detach())
                grads = torch.autograd.grad(loss, [layer.weight, layer.bias])
            layer.weight.grad = grads[0] + self.weight_decay * layer.weight.detach()
            layer.bias.grad = grads[1] + self.weight_decay * layer.bias.detach()
            total = total + loss.detach()
            h = z.detach()
        with torch.no_grad():
            features = model.readout_features(model.activities(model.embed_neutral(inputs)))
        weight = model.classifier.weight
        with torch.enable_grad():
            logits = model.classifier(features)
            readout_loss = self.loss_fn(logits, targets)
            (grad,) = torch.autograd.grad(readout_loss, [weight])
        weight.grad = self.readout_lr_scale * (grad + self.readout_weight_decay * weight.detach())
        return StepOutput(total + readout_loss.detach(), logits.detach())

    def true_gradients(self, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """Autograd of the softmax read-out's cross-entropy (neutral input) through every layer."""
        return super().true_gradients(inputs, targets)  # the model's forward is that read-out
