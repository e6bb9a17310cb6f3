"""GEVB: global error-vector broadcasting (Clark, Abbott & Chung, NeurIPS 2021).

In a vectorized network every hidden weight is updated by a three-factor rule

    dW_ij = sum_b G_bi (e_b . a_bj),        db_ki = sum_b G_bi e_bk,

with G_i the unit's own gate, a_j the presynaptic vector activation and e = dL/dz the output
error (softmax(z) - onehot(y), over the batch), broadcast to every layer. Convolutional layers sum
the product over the positions that share a weight (a convolutional outer product); locally
connected layers do not share. The readout keeps its exact gradient. Nothing propagates backward
through the network: GEVB replaces the backpropagated scalar credit delta_i with G_i, and in a
nonnegative VNN delta_i >= 0 with delta_i > 0 only where G_i = 1, so every per-example update has
the sign of the true gradient wherever the true credit is nonzero.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from creditlab.models.vnn import VNN_MODEL_NAMES, VectorizedNet, output_error
from creditlab.rules import register_rule
from creditlab.rules.base import DemoSetting, Rule, StepOutput, require


@register_rule("gevb")
class GEVB(Rule):
    """Global error-vector broadcasting; trains vectorized networks only (vnn-fc, vnn-conv, vnn-lc)."""

    name = "gevb"
    description = "global error-vector broadcasting (Clark et al. 2021): gate x (presynaptic . error vector)"
    demo = DemoSetting(floor=0.60, model="vnn-fc")  # measured 0.74
    accepts = f"vectorized networks only: {', '.join(VNN_MODEL_NAMES)} (optionally mixed_sign)"

    @classmethod
    def check_model(cls, model: nn.Module) -> None:  # noqa: D102
        require(isinstance(model, VectorizedNet), cls, model,
                "GEVB needs vector units with per-unit gates and a vector readout")

    def compute_update(self, inputs: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        """Forward once, then write G_i (e . a_j) (and the readout's exact gradient) into ``.grad``."""
        model: VectorizedNet = self.model  # type: ignore[assignment]
        record = model.record_forward(inputs)
        loss, error = output_error(record.logits, targets, self.loss_fn)
        readout_credit = error.new_ones(len(error), 1)  # delta^L = 1: exact for the readout
        weight_layers = model.weight_layers()
        with torch.no_grad():
            for position, (index, layer) in enumerate(weight_layers):
                if position == len(weight_layers) - 1:
                    credit = readout_credit
                else:
                    credit = record.gate_masks[index + 1]  # the unit's own gate G_i replaces delta_i
                grad_weight, grad_bias = layer.parameter_grads(record.layer_inputs[index], credit, error)
                layer.weight.grad, layer.bias.grad = grad_weight, grad_bias
        return StepOutput(loss, record.logits)

    def true_gradients(self, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """The exact gradient by backprop on the scalar credit (equal to autograd, K times cheaper)."""
        model: VectorizedNet = self.model  # type: ignore[assignment]
        grads, _, _ = model.exact_gradients(inputs, targets, self.loss_fn)
        return {name: grads[name] for name, param in model.named_parameters() if param.requires_grad}
