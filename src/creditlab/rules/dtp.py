"""Difference target propagation (Lee, Zhang, Fischer & Bengio, ECML-PKDD 2015, arXiv 1412.7525) on an
ordinary MLP, as their paper's Algorithm 1 and their code (``donghyunlee/dtp``, ``conti_dtp.py``) define it.

Forward layers l = 1..L (L − 1 hidden layers of the ``mlp`` model, any elementwise activation f; Lee
et al.: 7 × 240 tanh): h_l = f(W_l h_{l-1} + b_l), softmax readout on layer L. Each hidden layer
l >= 2 has a learned feedback mapping, the rule's own parameters (not the model's)::

    g_l(h_l) = f(V_l h_l + c_l)        V_l: (N_{l-1}, N_l), c_l: (N_{l-1},)   (the nonlinearity after V_l,
                                                                               their code's ``G_l``)

Targets (Algorithm 1; their code's ``H7_``, ``H6_`` ...)::

    t_{L-1} = h_{L-1} − η̂ ∂L/∂h_{L-1}              the top target: a step η̂ (``target_step``) down the
                                                    gradient of the batch-mean cross-entropy L (their
                                                    ``H7 − lr0·∂cost/∂H7``, so η̂ = 0.328 at batch 100)
    t_{l-1} = h_{l-1} + g_l(t_l) − g_l(h_l)         the difference correction (paper eq. 15)

Updates written into ``.grad`` (each layer's input held fixed)::

    layer L:        ∂L/∂W_L, ∂L/∂b_L                 the output layer by its own gradient
    layer l < L:    ∂/∂W_l mean_n ‖f(W_l h_{l-1} + b_l) − t_l‖²     (paper eq. 11 / their ``mse``)

Feedback training (their ``train_inv``; the paper's L_inv): before the targets of every batch,
``feedback_steps`` steps (theirs: one per batch, as one pass over the data per epoch) of
``feedback_optimizer`` (``rmsprop-centered``: their ``rms_prop``, momentum 0.9; or ``adam``) with
learning rate ``feedback_lr`` on::

    L_inv,l = mean_n ‖g_l(f_l(h̃_{l-1})) − h̃_{l-1}‖²,    h̃_{l-1} = h_{l-1} + ε,  ε ~ N(0, σ²),  σ = ``feedback_noise``

(gradient into V_l, c_l only; f_l(h̃) held fixed). Defaults are their MNIST setting: η̂ = 0.327736,
feedback lr 0.005011, σ = 0.359830; the forward optimizer's defaults (``optimizer_requirement``)
are their centered RMSprop with lr 0.014889 and momentum 0.9 (an explicit ``--optimizer``/``--lr`` wins).

State (``state_dict``): V_l, c_l, the feedback optimizer's state (``_extra_state``) and the noise
draw count; noise draw k comes from ``seeded_generator(seed, "dtp", "noise", k)`` and V_l's initial
(Haar-orthogonal, as their ``rand_ortho``) draw from ``seeded_generator(seed, "dtp", "feedback-init")``,
so a resumed run continues bit-identically. Accepted models: ``mlp`` with at least 2 hidden layers.
Refused settings: η̂, σ and the feedback lr must be > 0, ``feedback_steps`` >= 1, an unknown
``feedback_optimizer``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from creditlab.models.invertible import ForwardPass, haar_orthogonal
from creditlab.models.mlp import MLP
from creditlab.optim import OptimizerRequirement, centered_rmsprop
from creditlab.rules import register_rule
from creditlab.rules._local_targets import TargetRule
from creditlab.rules.base import DemoSetting, LossFn, StepOutput, require
from creditlab.seeding import seeded_generator

#: Lee et al.'s MNIST hyperparameters (conti_dtp.py: ``exp(0.327736332653, 0.0148893490317,
#: 0.00501149118237, 0.359829566008)`` = lr0 (η̂), lr_f (forward), lr_b (feedback), c (σ))
LEE_TARGET_STEP = 0.327736332653
LEE_FORWARD_LR = 0.0148893490317
LEE_FEEDBACK_LR = 0.00501149118237
LEE_NOISE = 0.359829566008
LEE_MOMENTUM = 0.9
FEEDBACK_OPTIMIZERS = ("rmsprop-centered", "adam")


def mlp_layers(model: MLP) -> list[tuple[nn.Linear, nn.Module]]:
    """[(Linear, the activation after it)] of an ``mlp`` model, the output layer's activation Identity."""
    linears = [(i, m) for i, m in enumerate(model) if isinstance(m, nn.Linear)]
    modules = list(model)
    pairs = []
    for position, (i, linear) in enumerate(linears):
        last = position == len(linears) - 1
        pairs.append((linear, nn.Identity() if last else modules[i + 1]))
    return pairs


@register_rule("dtp")
class DifferenceTargetPropagation(TargetRule):
    """DTP: learned feedback mappings g_l(h) = f(V_l h + c_l), the difference correction, noisy reconstruction."""

    name = "dtp"
    description = "difference target propagation (Lee 2015): learned inverses f(Vh + c) with the difference correction"
    accepts = "an ordinary MLP (`--model mlp`) with at least 2 hidden layers (Lee et al.: hidden=[240]*7, tanh)"
    optimizer_requirement = OptimizerRequirement(
        "rule 'dtp'", fixed={},
        defaults={"optimizer": "rmsprop-centered", "lr": LEE_FORWARD_LR, "momentum": LEE_MOMENTUM, "schedule": "none"},
        reason="Lee et al. 2015's MNIST setting (conti_dtp.py): centered RMSprop, lr 0.0149, momentum 0.9")
    #: measured 0.8375-0.85 over seeds 0-4 (2 epochs of 3000 images, 60 steps)
    demo = DemoSetting(
        floor=0.75, model="mlp", train_limit=3000, test_limit=2000, epochs=2,
        model_options={"hidden": (240, 240, 240), "activation": "tanh", "init": "orthogonal"},
        training={"batch_size": 100})

    def __init__(self, model: nn.Module, loss_fn: LossFn | None = None, target_step: float = LEE_TARGET_STEP,
                 feedback_lr: float = LEE_FEEDBACK_LR, feedback_noise: float = LEE_NOISE, feedback_steps: int = 1,
                 feedback_optimizer: str = "rmsprop-centered", seed: int = 0) -> None:
        for label, value in (("target_step", target_step), ("feedback_lr", feedback_lr),
                             ("feedback_noise", feedback_noise)):
            if not value > 0.0:
                raise ValueError(f"rule 'dtp': {label} must be > 0, got {value}")
        if isinstance(feedback_steps, bool) or int(feedback_steps) != feedback_steps or feedback_steps < 1:
            raise ValueError(f"rule 'dtp': feedback_steps must be an integer >= 1, got {feedback_steps!r}")
        if feedback_optimizer not in FEEDBACK_OPTIMIZERS:
            raise ValueError(f"rule 'dtp': unknown feedback_optimizer {feedback_optimizer!r}; valid: "
                             f"{', '.join(FEEDBACK_OPTIMIZERS)}")
        super().__init__(model, loss_fn)
        self.target_step, self.feedback_lr, self.feedback_noise = float(target_step), float(feedback_lr), \
            float(feedback_noise)
        self.feedback_steps, self.seed = int(feedback_steps), int(seed)
        self.layers = mlp_layers(self.model)
        generator = seeded_generator(self.seed, "dtp", "feedback-init")
        weight = self.layers[0][0].weight
        for index in range(1, len(self.layers) - 1):  # g_l for hidden layers l >= 2 (0-based index >= 1)
            below, width = self.layers[index][0].in_features, self.layers[index][0].out_features
            self.register_parameter(f"feedback_weight_{index}", nn.Parameter(
                haar_orthogonal(below, width, generator, weight.dtype).to(weight.device)))
            self.register_parameter(f"feedback_bias_{index}", nn.Parameter(
                torch.zeros(below, dtype=weight.dtype, device=weight.device)))
        self.register_buffer("noise_draws", torch.zeros((), dtype=torch.int64))
        params = [p for n, p in self.named_parameters() if n.startswith("feedback_")]
        self.feedback_optimizer = (centered_rmsprop(params, self.feedback_lr, LEE_MOMENTUM)
                                   if feedback_optimizer == "rmsprop-centered"
                                   else torch.optim.Adam(params, lr=self.feedback_lr))

    @classmethod
    def check_model(cls, model: nn.Module) -> None:  # noqa: D102
        require(isinstance(model, MLP), cls, model, "it learns feedback mappings for the layers of an MLP")
        hidden = sum(isinstance(m, nn.Linear) for m in model) - 1
        require(hidden >= 2, cls, model, f"it has {hidden} hidden layer(s), so no target passes through a "
                                         "feedback mapping (2 or more are needed)")

    # -- state: the feedback optimizer rides in the rule's state_dict ------------------------------
    def get_extra_state(self) -> dict[str, Any]:  # noqa: D102
        return {"feedback_optimizer": self.feedback_optimizer.state_dict()}

    def set_extra_state(self, state: dict[str, Any]) -> None:  # noqa: D102
        self.feedback_optimizer.load_state_dict(state["feedback_optimizer"])

    # -- the feedback mappings ----------------------------------------------------------------------
    def feedback(self, index: int) -> tuple[nn.Parameter, nn.Parameter]:
        """(V_l, c_l) of hidden layer ``index`` = l − 1 >= 1: g_l maps h_l to h_{l-1}."""
        return getattr(self, f"feedback_weight_{index}"), getattr(self, f"feedback_bias_{index}")

    def apply_feedback(self, index: int, h: torch.Tensor) -> torch.Tensor:
        """g_l(h) = f(V_l h + c_l), f the activation of layer l − 1.  h: (batch, N_l) -> (batch, N_{l-1})."""
        weight, bias = self.feedback(index)
        return self.layers[index - 1][1](nn.functional.linear(h, weight, bias))

    def forward_pass(self, inputs: torch.Tensor) -> ForwardPass:
        """Activities per layer (no graph): inputs[l-1] = h_{l-1}, pre[l-1] = a_l, post[l-1] = h_l (logits last)."""
        h = inputs.flatten(1)
        layer_inputs, pre, post = [], [], []
        with torch.no_grad():
            for linear, activation in self.layers:
                layer_inputs.append(h)
                a = linear(h)
                h = activation(a)
                pre.append(a)
                post.append(h)
        return ForwardPass(layer_inputs, pre, post)

    def reconstruction_errors(self, forward: ForwardPass) -> list[float]:
        """Per hidden layer l >= 2: mean_n ‖g_l(h_l) − h_{l-1}‖² / N_{l-1} (noise-free)."""
        with torch.no_grad():
            return [float(((self.apply_feedback(i, forward.post[i]) - forward.post[i - 1]) ** 2).mean())
                    for i in range(1, len(self.layers) - 1)]

    def train_feedback(self, forward: ForwardPass) -> None:
        """``feedback_steps`` optimizer steps on L_inv (module docstring), all feedback mappings at once."""
        device = forward.output.device
        for _ in range(self.feedback_steps):
            self.noise_draws += 1
            generator = seeded_generator(self.seed, "dtp", "noise", int(self.noise_draws), device=device)
            losses = []
            for index in range(1, len(self.layers) - 1):
                clean = forward.post[index - 1]
                noisy = clean + self.feedback_noise * torch.randn(clean.shape, generator=generator,
                                                                  dtype=clean.dtype, device=device)
                linear, activation = self.layers[index]
                with torch.no_grad():
                    encoded = activation(linear(noisy))  # f_l(h̃), held fixed
                with torch.enable_grad():
                    error = self.apply_feedback(index, encoded) - noisy
                    losses.append((error ** 2).sum(dim=1).mean())
            params = [p for pair in (self.feedback(i) for i in range(1, len(self.layers) - 1)) for p in pair]
            with torch.enable_grad():
                grads = torch.autograd.grad(torch.stack(losses).sum(), params)
            for param, grad in zip(params, grads, strict=True):
                param.grad = grad
            self.feedback_optimizer.step()
            self.feedback_optimizer.zero_grad(set_to_none=True)

    # -- targets and updates --------------------------------------------------------------------------
    def lower_target(self, forward: ForwardPass, index: int, target: torch.Tensor, scale: torch.Tensor | None
                     ) -> tuple[torch.Tensor, None]:
        """t_{l-1} = h_{l-1} + g_l(t_l) − g_l(h_l) (Lee et al. 2015, eq. 15)."""
        with torch.no_grad():
            below = forward.post[index - 1] + self.apply_feedback(index, target) \
                - self.apply_feedback(index, forward.post[index])
        return below, None

    def layer_targets(self, forward: ForwardPass, targets: torch.Tensor
                      ) -> tuple[list[torch.Tensor | None], torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """(targets of hidden layers 1..L−1 (None for the output layer), the batch loss, the output
        layer's gradient (∂L/∂W_L, ∂L/∂b_L)) with the current feedback mappings."""
        output_layer = self.layers[-1][0]
        with torch.enable_grad():
            top = forward.post[-2].detach().requires_grad_(True)
            loss = self.loss_fn(output_layer(top), targets)
            grad_top, grad_weight, grad_bias = torch.autograd.grad(loss, [top, output_layer.weight, output_layer.bias])
        top_target = forward.post[-2] - self.target_step * grad_top  # t_{L-1} = h_{L-1} − η̂ ∂L/∂h_{L-1}
        layer_targets, _ = self.propagate_targets(forward, len(self.layers) - 2, top_target)
        return layer_targets, loss.detach(), (grad_weight, grad_bias)

    def compute_update(self, inputs: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        """Feedback step(s) on this batch, then the difference targets and the local updates into ``.grad``."""
        forward = self.forward_pass(inputs)
        self.train_feedback(forward)
        layer_targets, loss, (grad_weight, grad_bias) = self.layer_targets(forward, targets)
        output_layer = self.layers[-1][0]
        output_layer.weight.grad, output_layer.bias.grad = grad_weight, grad_bias
        with torch.enable_grad():
            local_losses = []
            for index, (linear, activation) in enumerate(self.layers[:-1]):
                h = activation(linear(forward.inputs[index]))  # the layer's input is held fixed
                local_losses.append(((h - layer_targets[index]) ** 2).sum(dim=1).mean())
            params = [p for linear, _ in self.layers[:-1] for p in (linear.weight, linear.bias)]
            grads = torch.autograd.grad(torch.stack(local_losses).sum(), params)
        for param, grad in zip(params, grads, strict=True):
            param.grad = grad
        return StepOutput(loss, forward.output)


__all__ = ["FEEDBACK_OPTIMIZERS", "LEE_FEEDBACK_LR", "LEE_FORWARD_LR", "LEE_MOMENTUM", "LEE_NOISE", "LEE_TARGET_STEP",
           "DifferenceTargetPropagation", "mlp_layers"]
