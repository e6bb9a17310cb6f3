"""Kolen-Pollack learning (Kolen & Pollack 1994, as used by Akrout et al. 2019): feedback that learns W.

A member of the feedback-alignment family (:mod:`creditlab.rules.fa`): every ``nn.Linear``,
``nn.Conv2d`` and locally connected layer sends its error to its input through a feedback tensor
``B`` of the weight's shape (``grad_input = grad_output . B``, so ``B`` stands where backprop uses
``W``), and ``B`` starts as FA's fixed random one (U(-sqrt(3) sigma, sqrt(3) sigma), seeded; the same
draw as ``fa`` for the same seed). Unlike FA, ``B`` is *learned*: it receives the same update as
``W``, the outer product of the layer's output error ``delta`` (batch, out) and its presynaptic
activity ``h`` (batch, in), plus weight decay. In Akrout et al.'s convention (B of W^T's shape)::

    dW = -eta delta^T h - lambda W          dB = -eta h^T delta - lambda B = dW^T - lambda (B - W^T)
                                          (Akrout et al. 2019, the Kolen-Pollack algorithm)

so ``W - B^T`` shrinks by ``(1 - lambda)`` every step whatever the data: B converges to W^T without
ever reading W (no weight transport: both updates use only the signals local to the synapse).

Here ``W``'s update is the optimizer's: the rule writes FA's gradient ``W.grad = delta^T h`` (bit for
bit what ``fa`` writes for the same B). ``B``'s update is applied by the rule inside its step, as
plain SGD with momentum on the same gradient (PyTorch's SGD form, with ``g = W.grad``)::

    v_B <- feedback_momentum * v_B + (g + decay * B)          (v_B = 0 before the first step)
    B   <- B - feedback_lr * v_B

Trained with ``--optimizer sgd --lr FEEDBACK_LR --momentum FEEDBACK_MOMENTUM --weight-decay DECAY``
(the rule's default optimizer settings, for the default options)
both updates have the same form, and ``D = W - B`` obeys ``v_D <- m v_D + decay D``,
``D <- D - lr v_D``: it decays geometrically (without momentum ``D_t = (1 - lr decay)^t D_0``). With
another optimizer (Adam) ``B`` still follows the local rule, but ``W``'s steps differ, so B aligns with
W only as far as both are dominated by the accumulated gradient. Defaults are the SAL authors'
Kolen-Pollack configuration (SGD, lr 0.01, momentum 0.9, weight decay 1e-3; their ``akrout`` variant).

State: ``B`` (``feedback_weight``) and its velocity (``feedback_velocity``) are buffers of each
converted layer, so checkpoints carry them and a resumed run continues bit for bit. Frozen weights
(no ``.grad``) leave their ``B`` unchanged. Under ``torch.distributed`` with more than one rank the
rule refuses to run: each rank would update its ``B`` from its own batch and the copies would drift.

Accepts every model the FA family accepts (``check_convertible``).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from creditlab.optim import OptimizerRequirement
from creditlab.rules import register_rule
from creditlab.rules.base import DemoSetting, LossFn, StepOutput
from creditlab.rules.fa import (
    FeedbackAlignmentRule,
    FeedbackLayerMixin,
    RandomFeedback,
    feedback_layers,
    register_scheme,
)


@register_scheme
class KolenPollackFeedback(RandomFeedback):
    """KP: B starts as FA's random draw and is then learned (by :class:`KolenPollack`); a velocity buffer."""

    mode = "kp"

    def setup(self, layer: FeedbackLayerMixin, generator: torch.Generator, seed: int) -> None:  # noqa: D102
        super().setup(layer, generator, seed)
        layer.register_buffer("feedback_velocity", torch.zeros_like(layer.feedback_weight))


def _check_option(name: str, value: float, upper: float | None = None) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0 or (upper is not None and value >= upper):
        bound = f"in [0, {upper})" if upper is not None else ">= 0"
        raise ValueError(f"kp option {name} must be a finite number {bound}, got {value}")
    return value


@register_rule("kp")
class KolenPollack(FeedbackAlignmentRule):
    """Kolen-Pollack: FA whose feedback B gets W's update (same gradient, plus decay), so B -> W."""

    name = "kp"
    mode = "kp"
    description = ("Kolen-Pollack (1994; Akrout 2019): feedback B receives W's update plus decay, "
                   "so B converges to W^T")
    demo = DemoSetting(floor=0.60, model="mlp", epochs=2)  # its default SGD: measured 0.78 (0.52 after 1 epoch)
    #: W's optimizer by default matches B's own update (the constructor's defaults), so B - W decays
    optimizer_requirement = OptimizerRequirement(
        "rule 'kp'", fixed={}, defaults={"optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-3},
        reason="with these W steps the same as B's (feedback_lr, feedback_momentum, decay), B converges to W")

    def __init__(self, model: nn.Module, loss_fn: LossFn = F.cross_entropy, seed: int = 0,
                 feedback_lr: float = 0.01, feedback_momentum: float = 0.9, decay: float = 1e-3) -> None:
        feedback_lr = _check_option("feedback_lr", feedback_lr)
        feedback_momentum = _check_option("feedback_momentum", feedback_momentum, upper=1.0)
        decay = _check_option("decay", decay)
        if torch.distributed.is_available() and torch.distributed.is_initialized() \
                and torch.distributed.get_world_size() > 1:
            raise ValueError("rule 'kp' updates its feedback from each rank's own gradient, so under "
                             "--distributed the ranks' feedback matrices would drift apart; train it in one "
                             "process")
        super().__init__(model, loss_fn, seed)
        self.feedback_lr, self.feedback_momentum, self.decay = feedback_lr, feedback_momentum, decay

    def compute_update(self, inputs: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        """FA's backward (W.grad = delta^T h through the current B), then B's own update."""
        out = super().compute_update(inputs, targets)
        self.update_feedback()
        return out

    @torch.no_grad()
    def update_feedback(self) -> None:
        """v_B <- momentum v_B + (W.grad + decay B); B <- B - feedback_lr v_B, for every layer with a W.grad."""
        for _, layer in feedback_layers(self.model):
            grad = layer.weight.grad
            if grad is None:
                continue
            feedback, velocity = layer.feedback_weight, layer.feedback_velocity
            step = grad.to(feedback.dtype) + self.decay * feedback
            if self.feedback_momentum:
                velocity.mul_(self.feedback_momentum).add_(step)
                step = velocity
            feedback.add_(step, alpha=-self.feedback_lr)
