"""Predictive coding: inference learning on an MLP (Rao & Ballard 1999; Whittington & Bogacz 2017).

On the ``mlp`` model (L linear layers, activation f between them) for a batch: the input is clamped,
h_0 = x; the value nodes h_1..h_{L-1} start at the feedforward pass h_l = f(a_l), a_l = W_l h_{l-1} + b_l;
the output is clamped to the label. The energy (per sample, summed over the batch) is::

    E = Σ_{l<L} ½‖ε_l‖²,  ε_l = h_l − f(W_l h_{l-1} + b_l)          hidden prediction errors
      + E_out(u_L, y),     u_L = W_L h_{L-1} + b_L                   se: ½‖y − u_L‖²; ce: −Σ y log softmax(u_L)

Inference (T steps, rate γ, optional momentum μ as optax's SGD; Whittington & Bogacz eq. 9)::

    ∂E/∂h_l = ε_l − W_{l+1}ᵀ (ε_{l+1} ⊙ f'(a_{l+1}))      l < L−1
    ∂E/∂h_{L−1} = ε_{L−1} + W_Lᵀ g,   g = ∂E_out/∂u_L (se: u_L − y; ce: softmax(u_L) − y)
    v ← μ v + ∂E/∂h;   h ← h − γ v

then one local weight step from the relaxed errors (eq. 10), written into ``.grad`` as the batch mean::

    W_l.grad = −(ε_l ⊙ f'(a_l)) h_{l-1}ᵀ,   W_L.grad = g h_{L-1}ᵀ      (biases: the same without h)

``fixed_prediction`` (Millidge, Tschantz & Buckley 2022, the fixed-prediction assumption): the
predictions f(a_l), the derivatives f'(a_l) and the presynaptic activities keep their feedforward
values during inference; with γ = 1 and T ≥ L − 1 the errors are then exactly backprop's deltas and
the weight update *is* the gradient of the output loss (the equivalence Z-IL, Song et al. 2020,
reaches with its layer-wise schedule). ``variant="ipc"`` (incremental PC, Salvatori et al. 2024):
the weights also take a step at every inference step, W ← W − η ∂E/∂W for steps 1..T−1 with the
trainer's lr η, the last step's update left in ``.grad``; that needs plain SGD (no momentum, no decay),
which the rule then fixes.

Shapes: x (B, D); h_l, ε_l (B, width_l). Options: ``T`` (int ≥ 1), ``inference_rate`` γ > 0,
``inference_momentum`` μ in [0, 1), ``energy`` se/ce, ``variant`` pc/ipc, ``fixed_prediction``.
The value nodes are rebuilt from each batch's feedforward pass, so the rule keeps no state between
steps. Accepted models: ``mlp`` with activation relu, tanh, sigmoid, leaky_relu or identity (any depth
and width).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from creditlab.hooks import FitContext
from creditlab.models.mlp import MLP
from creditlab.optim import OptimizerRequirement
from creditlab.rules import register_rule
from creditlab.rules.base import DemoSetting, LossFn, Rule, StepOutput, require

ENERGIES = ("se", "ce")
VARIANTS = ("pc", "ipc")


def activation_derivative(activation: nn.Module, pre: torch.Tensor) -> torch.Tensor:
    """f'(pre) for the activations ``pc`` supports (ReLU, tanh, sigmoid, leaky ReLU, identity)."""
    if isinstance(activation, nn.ReLU):
        return (pre > 0).to(pre.dtype)
    if isinstance(activation, nn.Tanh):
        return 1 - torch.tanh(pre) ** 2
    if isinstance(activation, nn.Sigmoid):
        s = torch.sigmoid(pre)
        return s * (1 - s)
    if isinstance(activation, nn.LeakyReLU):
        return torch.where(pre > 0, 1.0, activation.negative_slope).to(pre.dtype)
    if isinstance(activation, nn.Identity):
        return torch.ones_like(pre)
    raise TypeError(f"no derivative for {type(activation).__name__}")


SUPPORTED = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.Identity)


@register_rule("pc")
class PredictiveCoding(Rule):
    """Inference learning: relax the value nodes T steps on the energy, then one local weight step."""

    name = "pc"
    description = "Predictive coding (inference learning): T relaxation steps, then local updates"
    accepts = "model 'mlp' with activation relu, tanh, sigmoid, leaky_relu or identity (any depth and width)"
    demo = DemoSetting(floor=0.75, model="mlp", model_options={"hidden": (128, 128)}, rule_options={"T": 5})

    def __init__(self, model: nn.Module, loss_fn: LossFn | None = None, T: int = 5, inference_rate: float = 0.1,
                 inference_momentum: float = 0.0, energy: str = "ce", variant: str = "pc",
                 fixed_prediction: bool = False) -> None:
        if isinstance(T, bool) or not isinstance(T, int) or T < 1:
            raise ValueError(f"rule 'pc': option T (inference steps) must be an integer >= 1, got {T!r}")
        if isinstance(inference_rate, bool) or not isinstance(inference_rate, int | float) \
                or not math.isfinite(inference_rate) or inference_rate <= 0:
            raise ValueError(f"rule 'pc': option inference_rate must be a finite number > 0, got {inference_rate!r}")
        if isinstance(inference_momentum, bool) or not isinstance(inference_momentum, int | float) \
                or not 0 <= inference_momentum < 1:
            raise ValueError(f"rule 'pc': option inference_momentum must lie in [0, 1), got {inference_momentum!r}")
        if energy not in ENERGIES:
            raise ValueError(f"rule 'pc': option energy must be one of {', '.join(ENERGIES)} (output energy: "
                             f"squared error or cross-entropy), got {energy!r}")
        if variant not in VARIANTS:
            raise ValueError(f"rule 'pc': option variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        if not isinstance(fixed_prediction, bool):
            raise ValueError(f"rule 'pc': option fixed_prediction must be true or false, got {fixed_prediction!r}")
        if variant == "ipc" and fixed_prediction:
            raise ValueError("rule 'pc': variant=ipc updates the weights during inference, which the "
                             "fixed-prediction assumption excludes; use one or the other")
        super().__init__(model, loss_fn)
        self.T, self.inference_rate, self.inference_momentum = T, float(inference_rate), float(inference_momentum)
        self.energy, self.variant, self.fixed_prediction = energy, variant, fixed_prediction
        self.weight_lr: float | None = None
        if variant == "ipc":  # an instance attribute: fit() checks it (the class default stays None)
            self.optimizer_requirement = OptimizerRequirement(
                "rule 'pc' (variant=ipc)", fixed={"optimizer": "sgd", "momentum": 0.0, "weight_decay": 0.0},
                reason="iPC's weight steps inside inference are plain SGD with the trainer's lr")
        modules = list(self.model)
        self.linears = [m for m in modules if isinstance(m, nn.Linear)]
        self.activations = [m for m in modules if isinstance(m, SUPPORTED)]

    @classmethod
    def check_model(cls, model: nn.Module) -> None:  # noqa: D102
        require(isinstance(model, MLP), cls, model, "predictive coding here relaxes the value nodes of a "
                "plain Linear/activation chain")
        bad = [type(m).__name__ for m in model if not isinstance(m, (nn.Linear, nn.Flatten, *SUPPORTED))]
        require(not bad, cls, model, f"activation {', '.join(bad)} has no derivative here")

    def on_fit_start(self, context: FitContext) -> None:
        """iPC's inner weight steps use the trainer's learning rate."""
        self.weight_lr = float(context.config.lr)

    def _output_gradient(self, output: torch.Tensor, one_hot: torch.Tensor) -> torch.Tensor:
        """g = ∂E_out/∂u_L per sample (B, K), for the clamped label ``one_hot`` (B, K)."""
        return (output - one_hot) if self.energy == "se" else (torch.softmax(output, dim=1) - one_hot)

    def _weight_updates(self, pres: list[torch.Tensor], scaled: list[torch.Tensor], g: torch.Tensor
                        ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Batch-mean (dW, db) of every layer: −(ε ⊙ f')ᵀ h_{l-1} for hidden layers, gᵀ h_{L-1} at the output."""
        n = g.shape[0]
        deltas = [-s for s in scaled] + [g]
        return [(d.T @ p / n, d.sum(dim=0) / n) for d, p in zip(deltas, pres, strict=True)]

    def _pre_activations(self, x: torch.Tensor, values: list[torch.Tensor], feedforward: list[torch.Tensor]
                         ) -> list[torch.Tensor]:
        """a_l = W_l h_{l-1} + b_l of the hidden layers at the current value nodes. a_1 reads only the
        clamped input, so it keeps its feedforward value while the weights do (not under iPC)."""
        first = self.linears[0](x) if self.variant == "ipc" else feedforward[0]
        return [first, *(linear(h) for linear, h in zip(self.linears[1:-1], values[:-1], strict=True))]

    @torch.no_grad()
    def compute_update(self, inputs: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        """Feedforward init, T inference steps, local weight updates into ``.grad`` (module docstring)."""
        linears, acts = self.linears, self.activations
        x = inputs.flatten(1)
        # feedforward pass: a_l, h_l (the fixed predictions under fixed_prediction)
        hs, pres = [x], []
        for linear, act in zip(linears[:-1], acts, strict=True):
            pres.append(linear(hs[-1]))
            hs.append(act(pres[-1]))
        feedforward_output = linears[-1](hs[-1])
        one_hot = F.one_hot(targets, feedforward_output.shape[1]).to(feedforward_output.dtype)
        fixed_g = self._output_gradient(feedforward_output, one_hot) if self.fixed_prediction else None
        values = [h.clone() for h in hs[1:]]                       # h_1..h_{L-1}, the free value nodes
        velocity = [torch.zeros_like(h) for h in values]
        rate, momentum = self.inference_rate, self.inference_momentum
        for step in range(1, self.T + 1):
            below = [x, *values]
            if self.fixed_prediction:
                pre, presyn = pres, hs
                errors = [v - h for v, h in zip(values, hs[1:], strict=True)]
                g = fixed_g
            else:
                pre = self._pre_activations(x, values, pres)
                presyn = below
                errors = [v - act(a) for v, act, a in zip(values, acts, pre, strict=True)]
                g = self._output_gradient(linears[-1](values[-1]), one_hot)
            scaled = [e * activation_derivative(act, a) for e, act, a in zip(errors, acts, pre, strict=True)]
            if self.variant == "ipc" and step < self.T:  # weights move with the value nodes (iPC)
                lr = self.weight_lr if self.weight_lr is not None else 0.0
                updates = self._weight_updates(presyn, scaled, g)
            else:
                updates = None
            # ∂E/∂h_l: own error minus what it explains above (chain rule through layer l+1)
            above = [-(s @ linear.weight) for s, linear in zip(scaled[1:], linears[1:-1], strict=True)]
            above.append(g @ linears[-1].weight)
            for index, value in enumerate(values):
                grad = errors[index] + above[index]
                if momentum:
                    velocity[index].mul_(momentum).add_(grad)
                    grad = velocity[index]
                value.sub_(rate * grad)
            if updates is not None:
                for linear, (dw, db) in zip(linears, updates, strict=True):
                    linear.weight.sub_(lr * dw)
                    linear.bias.sub_(lr * db)
        # the weight step from the relaxed errors
        if self.fixed_prediction:
            errors = [v - h for v, h in zip(values, hs[1:], strict=True)]
            pre, presyn, g = pres, hs, fixed_g
        else:
            presyn = [x, *values]
            pre = self._pre_activations(x, values, pres)
            errors = [v - act(a) for v, act, a in zip(values, acts, pre, strict=True)]
            g = self._output_gradient(linears[-1](values[-1]), one_hot)
        scaled = [e * activation_derivative(act, a) for e, act, a in zip(errors, acts, pre, strict=True)]
        for linear, (dw, db) in zip(linears, self._weight_updates(presyn, scaled, g), strict=True):
            linear.weight.grad = dw
            linear.bias.grad = db
        return StepOutput(self.loss_fn(feedforward_output, targets), feedforward_output)
