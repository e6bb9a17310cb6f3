"""What the target-propagation rules share: one top-down target loop, and (on invertible MLPs) the
output target, the layer-local updates and the orthogonality regularizer.

:class:`TargetRule` holds **the** target loop of ``tp``, ``gaitprop`` and ``dtp``: from the target of a
top layer it walks down, one :meth:`TargetRule.lower_target` call per layer (the rule's own step:
TP's exact inverse, GAIT-prop's gradient-adjusted nudge, DTP's learned inverse with the difference
correction), carrying an optional per-sample error scale (GAIT-prop's 1/γ bookkeeping).

:class:`LocalTargetRule` (``gaitprop``, ``tp``) trains an :class:`~creditlab.models.invertible.InvertibleMLP`
(and nothing else) by giving every layer l a target t_l and descending the local loss ½‖t_l − h_l‖²
times a per-sample scale s_l::

    ΔW_l = mean_n s_l[n] (f'(a_l) ⊙ (h_l − t_l))[n] h_{l-1}[n]^T,   Δb_l = mean_n s_l[n] (f'(a_l) ⊙ (h_l − t_l))[n]

written into ``.grad`` (the optimizer subtracts it), plus lambda dR/dW of the orthogonality
regularizer on every square layer. The output target moves the readout units down the gradient of
the per-sample loss and leaves the auxiliary units at their own activity::

    t_L = h_L − ∂ℓ_n/∂h_L     (MSE ℓ_n = ½‖y − h_L[:K]‖²: t_L[:K] = y, the one-hot label, as in the
                               2020 code; cross-entropy: t_L[:K] = h − (softmax(h) − y), the follow-up's
                               y_out − ½∂L/∂y_out with its squared local loss)

so the top layer's update is exactly the gradient of the batch-mean loss. (``dtp`` trains an ordinary
MLP with its own learned feedback mappings: :mod:`creditlab.rules.dtp`.)
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from creditlab.models.invertible import (
    ORTHOGONALITY_FORMS,
    ForwardPass,
    InvertibleMLP,
    is_invertible_mlp,
    leaky_relu_derivative,
)
from creditlab.rules.base import LossFn, Rule, StepOutput, require

OUTPUT_LOSSES = ("mse", "cross-entropy")


def one_hot_mse(output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Batch mean of ½‖onehot(y) − output‖² (the 2020 GAIT-prop code's readout loss). output: (B, K)."""
    one_hot = F.one_hot(targets, output.shape[1]).to(output.dtype)
    return 0.5 * ((output - one_hot) ** 2).sum(dim=1).mean()


def per_sample_output_gradient(readout: torch.Tensor, targets: torch.Tensor, output_loss: str) -> torch.Tensor:
    """∂ℓ_n/∂h_L[:K] of the per-sample loss (not divided by the batch size). readout: (B, K)."""
    one_hot = F.one_hot(targets, readout.shape[1]).to(readout.dtype)
    if output_loss == "mse":
        return readout - one_hot
    return torch.softmax(readout, dim=1) - one_hot


class TargetRule(Rule):
    """Base of the target-propagation rules: the one top-down target loop (:meth:`propagate_targets`)."""

    def lower_target(self, forward: ForwardPass, index: int, target: torch.Tensor, scale: torch.Tensor | None
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One step down: from the target of layer ``index`` (0-based, >= 1) to that of layer ``index`` − 1,
        and the per-sample error scale there (None: unscaled). The rule's own target step."""
        raise NotImplementedError

    def propagate_targets(self, forward: ForwardPass, top: int, target: torch.Tensor,
                          scale: torch.Tensor | None = None
                          ) -> tuple[list[torch.Tensor | None], list[torch.Tensor | None]]:
        """(targets, scales) per layer (list index = 0-based layer) from ``target`` of layer ``top`` down to
        layer 0, one :meth:`lower_target` per step; layers above ``top`` get None."""
        depth = len(forward.post)
        layer_targets: list[torch.Tensor | None] = [None] * depth
        scales: list[torch.Tensor | None] = [None] * depth
        for index in range(top, -1, -1):
            layer_targets[index], scales[index] = target, scale
            if index == 0:
                break
            target, scale = self.lower_target(forward, index, target, scale)
        return layer_targets, scales


class LocalTargetRule(TargetRule):
    """Base of the target rules on invertible MLPs: model check, output target, local updates."""

    accepts = ("the invertible-mlp model (square leaky-ReLU layers with exact inverses: "
               "`--model invertible-mlp`, any width/depth/tower/input_layer option)")

    def __init__(self, model: nn.Module, loss_fn: LossFn | None = None, output_loss: str = "mse",
                 orthogonality: float = 0.0, orthogonality_form: str = "off-diagonal") -> None:
        if output_loss not in OUTPUT_LOSSES:
            raise ValueError(f"rule {self.name!r}: unknown output_loss {output_loss!r}; valid: "
                             f"{', '.join(OUTPUT_LOSSES)}")
        if orthogonality_form not in ORTHOGONALITY_FORMS:
            raise ValueError(f"rule {self.name!r}: unknown orthogonality_form {orthogonality_form!r}; valid: "
                             f"{', '.join(ORTHOGONALITY_FORMS)}")
        if not orthogonality >= 0.0:
            raise ValueError(f"rule {self.name!r}: orthogonality (the regularizer's lambda) must be >= 0, "
                             f"got {orthogonality}")
        if loss_fn is None:
            loss_fn = one_hot_mse if output_loss == "mse" else F.cross_entropy
        super().__init__(model, loss_fn)
        self.output_loss = output_loss
        self.orthogonality = float(orthogonality)
        self.orthogonality_form = orthogonality_form

    model: InvertibleMLP

    @classmethod
    def check_model(cls, model: nn.Module) -> None:  # noqa: D102
        require(is_invertible_mlp(model), cls, model,
                "it needs invertible layers (square weights with an exact inverse and auxiliary output units)")
        require(model.depth >= 2, cls, model, "it has a single weight layer, so no target is propagated")

    # -- pieces the rules combine -----------------------------------------------------------------
    def output_target(self, forward: ForwardPass, targets: torch.Tensor, step: float = 1.0) -> torch.Tensor:
        """t_L = h_L − step ∂ℓ_n/∂h_L on the readout units, auxiliary units at their own activity. (B, N_L)."""
        output = forward.output
        k = self.model.num_classes
        gradient = per_sample_output_gradient(output[:, :k], targets, self.output_loss)
        target = output.clone()
        target[:, :k] = output[:, :k] - step * gradient
        return target

    def write_local_updates(self, forward: ForwardPass, differences: list[torch.Tensor | None],
                            scales: list[torch.Tensor | None]) -> None:
        """``.grad`` of every layer from its target difference (t_l − h_l) and per-sample scale s_l (B,) or None.

        A layer with difference None (no target) gets a zero update besides the regularizer.
        """
        batch = forward.output.shape[0]
        for index, layer in enumerate(self.model.layers):
            difference = differences[index]
            if difference is None:
                layer.weight.grad = torch.zeros_like(layer.weight)
                layer.bias.grad = torch.zeros_like(layer.bias)
                continue
            delta = leaky_relu_derivative(forward.pre[index], self.model.slope) * (-difference)
            if scales[index] is not None:
                delta = delta * scales[index].unsqueeze(1)
            layer.weight.grad = delta.T @ forward.inputs[index] / batch
            layer.bias.grad = delta.sum(dim=0) / batch
        params = dict(self.model.named_parameters())
        for name, gradient in self.model.orthogonality_gradients(self.orthogonality, self.orthogonality_form).items():
            params[name].grad.add_(gradient)

    def initial_scale(self, forward: ForwardPass) -> torch.Tensor | None:
        """The output layer's per-sample error scale (None: unscaled; GAIT-prop: ones)."""
        return None

    def target_differences(self, forward: ForwardPass, targets: torch.Tensor
                           ) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
        """([t_l − h_l for l = 1..L], [s_l]) on one forward pass: the output target, then the target loop."""
        top = self.model.depth - 1
        layer_targets, scales = self.propagate_targets(forward, top, self.output_target(forward, targets),
                                                       self.initial_scale(forward))
        return [t - h for t, h in zip(layer_targets, forward.post, strict=True)], scales

    def compute_update(self, inputs: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        """Targets from the top down, then the (scaled) local updates into ``.grad``."""
        with torch.no_grad():
            forward = self.model.forward_pass(inputs)
            differences, scales = self.target_differences(forward, targets)
            self.write_local_updates(forward, list(differences), scales)
            readout = forward.output[:, :self.model.num_classes]
            loss = self.loss_fn(readout, targets)
        return StepOutput(loss, readout)

    def re_append(self, index: int, partial: torch.Tensor, forward: ForwardPass) -> torch.Tensor:
        """The full target of layer ``index`` (0-based) from the target of its first N units read above;
        the units the layer above does not read keep their own activity (tower nets)."""
        below = forward.post[index]
        if partial.shape[1] == below.shape[1]:
            return partial
        return torch.cat([partial, below[:, partial.shape[1]:]], dim=1)


__all__ = ["OUTPUT_LOSSES", "LocalTargetRule", "TargetRule", "one_hot_mse", "per_sample_output_gradient"]
