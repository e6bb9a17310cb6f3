"""Backpropagation: the exact gradient, by autograd. The baseline every other rule is measured against."""

from __future__ import annotations

import torch

from creditlab.rules import register_rule
from creditlab.rules.base import DemoSetting, Rule, StepOutput


@register_rule("bp")
class Backprop(Rule):
    """Exact gradient of the loss by reverse-mode autograd."""

    name = "bp"
    description = "backpropagation (autograd): the exact gradient"
    demo = DemoSetting(floor=0.75, model="mlp")  # measured 0.86 (1 epoch x 3000 images, seed 0)

    def compute_update(self, inputs: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        """Autograd backward pass; a model with its own exact backward (``backprop_update``) uses that.

        Vectorized nonnegative networks provide ``backprop_update(inputs, targets, loss_fn)``: the
        exact gradient computed on the scalar credit, K times cheaper than autograd through vector units.
        """
        custom = getattr(self.model, "backprop_update", None)
        if callable(custom):
            return custom(inputs, targets, self.loss_fn)
        output = self.model(inputs)
        loss = self.loss_fn(output, targets)
        loss.backward()
        return StepOutput(loss, output)
