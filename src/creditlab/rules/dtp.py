"""Difference target propagation (Lee, Zhang, Fischer & Bengio 2015) on invertible MLPs: learned
inverses with the difference correction.

Each layer l >= 2 has a learned feedback mapping (rule state, not model parameters)::

    g_l(h) = V_l f^{-1}(h) + c_l        V_l: (N_l, N_l), c_l: (N_l,)

a form that contains the exact inverse (V_l = W_l^{-1}, c_l = −W_l^{-1} b_l), so the learned inverse
can become perfect. Per minibatch ("parallel" training, Meulemans et al. 2020) the rule first takes
``feedback_steps`` Adam steps (``feedback_lr``) on the reconstruction loss of Lee et al. (their eq. for
the inverse loss)::

    L_inv = mean_n ½‖g_l(f_l(h̃)) − h̃‖²,   h̃ = h_{l-1}[:N_l] + ε,  ε ~ N(0, σ²), σ = ``feedback_noise``

(g_l(f_l(h̃)) = V_l a_l(h̃) + c_l since f is a bijection), then propagates targets with the difference
correction (Lee et al. 2015, eq. 15)::

    t_L = h_L − β ∂ℓ_n/∂h_L                        (β = ``target_step``; output-target form, as in
                                                     Meulemans et al.; Lee's own code instead takes a
                                                     gradient step at the penultimate layer)
    t_{l-1} = h_{l-1} + g_l(t_l) − g_l(h_l)

and descends the local losses ½‖t_l − h_l‖² (no γ scaling). With a perfect inverse the correction
vanishes (g_l(h_l) = h_{l-1}) and the target is TP's g_l(t_l); with an imperfect one the difference
term cancels its reconstruction error to first order.

State (``state_dict``): V_l, c_l, their Adam moments, the Adam step count and the noise draw count.
Noise draw k comes from ``seeded_generator(seed, "dtp", "noise", k)`` (``creditlab.seeding``), so a
resumed run continues bit-identically; V_l's initial draw from ``seeded_generator(seed, "dtp", "feedback-init")``.
V_l starts as a random orthogonal matrix (seeded, independent of W), c_l at zero.
Accepted models: ``invertible-mlp`` only. Refused settings: σ, the feedback learning rate and β must be
positive, ``feedback_steps`` >= 1.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from creditlab.models.invertible import ForwardPass, haar_orthogonal, leaky_relu_inverse
from creditlab.rules import register_rule
from creditlab.rules._local_targets import LocalTargetRule
from creditlab.rules.base import LossFn, StepOutput
from creditlab.seeding import seeded_generator

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


@register_rule("dtp")
class DifferenceTargetPropagation(LocalTargetRule):
    """DTP: learned inverses (feedback weights trained on noisy reconstructions) + difference correction."""

    name = "dtp"
    description = "difference target propagation (Lee 2015): learned inverses with the difference correction"

    def __init__(self, model: nn.Module, loss_fn: LossFn | None = None, output_loss: str = "mse",
                 orthogonality: float = 0.0, orthogonality_form: str = "off-diagonal", target_step: float = 1.0,
                 feedback_lr: float = 1e-3, feedback_noise: float = 0.36, feedback_steps: int = 1,
                 seed: int = 0) -> None:
        super().__init__(model, loss_fn, output_loss, orthogonality, orthogonality_form)
        for label, value in (("target_step", target_step), ("feedback_lr", feedback_lr),
                             ("feedback_noise", feedback_noise)):
            if not value > 0.0:
                raise ValueError(f"rule 'dtp': {label} must be > 0, got {value}")
        if int(feedback_steps) < 1:
            raise ValueError(f"rule 'dtp': feedback_steps must be >= 1, got {feedback_steps}")
        self.target_step, self.feedback_lr = float(target_step), float(feedback_lr)
        self.feedback_noise, self.feedback_steps, self.seed = float(feedback_noise), int(feedback_steps), int(seed)
        generator = seeded_generator(self.seed, "dtp", "feedback-init")
        device = self.model.layers[0].weight.device
        for index in range(1, self.model.depth):
            width = self.model.widths[index]
            weight = haar_orthogonal(width, width, generator, self.model.dtype).to(device)
            self.register_buffer(f"feedback_weight_{index}", weight)
            self.register_buffer(f"feedback_bias_{index}", torch.zeros(width, dtype=self.model.dtype, device=device))
            for moment in ("m", "v"):
                self.register_buffer(f"adam_{moment}_weight_{index}", torch.zeros_like(weight))
                self.register_buffer(f"adam_{moment}_bias_{index}", torch.zeros(width, dtype=self.model.dtype,
                                                                                device=device))
        self.register_buffer("adam_steps", torch.zeros((), dtype=torch.int64))
        self.register_buffer("noise_draws", torch.zeros((), dtype=torch.int64))

    # -- the learned inverses ---------------------------------------------------------------------
    def feedback(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(V_l, c_l) of layer ``index`` = l − 1 >= 1."""
        return getattr(self, f"feedback_weight_{index}"), getattr(self, f"feedback_bias_{index}")

    def apply_feedback(self, index: int, h: torch.Tensor) -> torch.Tensor:
        """g_l(h) = V_l f^{-1}(h) + c_l.  h: (batch, N_l) -> (batch, N_l)."""
        weight, bias = self.feedback(index)
        return F.linear(leaky_relu_inverse(h, self.model.slope), weight, bias)

    def set_feedback_to_exact_inverse(self) -> None:
        """V_l = W_l^{-1}, c_l = −W_l^{-1} b_l for every layer (a perfect inverse; for tests and studies)."""
        with torch.no_grad():
            for index in range(1, self.model.depth):
                weight, bias = self.feedback(index)
                inverse = torch.linalg.inv(self.model.layers[index].weight)
                weight.copy_(inverse)
                bias.copy_(-(inverse @ self.model.layers[index].bias))

    def reconstruction_errors(self, forward: ForwardPass) -> list[float]:
        """Per layer l >= 2: mean_n ‖g_l(h_l) − h_{l-1}[:N_l]‖² / N_l on this forward pass (noise-free)."""
        with torch.no_grad():
            return [float(((self.apply_feedback(i, forward.post[i]) - forward.inputs[i]) ** 2).mean())
                    for i in range(1, self.model.depth)]

    @torch.no_grad()
    def train_feedback(self, forward: ForwardPass) -> None:
        """``feedback_steps`` Adam steps on Lee et al.'s noisy reconstruction loss, every layer l >= 2
        (the gradients are written out, so no autograd graph is kept on the feedback weights)."""
        device = forward.output.device
        for _ in range(self.feedback_steps):
            self.noise_draws += 1
            generator = seeded_generator(self.seed, "dtp", "noise", int(self.noise_draws), device=device)
            self.adam_steps += 1
            step = int(self.adam_steps)
            for index in range(1, self.model.depth):
                layer = self.model.layers[index]
                clean = forward.inputs[index]
                noisy = clean + self.feedback_noise * torch.randn(clean.shape, generator=generator,
                                                                  dtype=clean.dtype, device=device)
                pre = F.linear(noisy, layer.weight, layer.bias)  # f^{-1}(f_l(h̃)) = a_l(h̃)
                weight, bias = self.feedback(index)
                error = F.linear(pre, weight, bias) - noisy
                batch = clean.shape[0]
                self._adam(index, "weight", weight, error.T @ pre / batch, step)
                self._adam(index, "bias", bias, error.sum(dim=0) / batch, step)

    def _adam(self, index: int, kind: str, param: torch.Tensor, grad: torch.Tensor, step: int) -> None:
        m, v = getattr(self, f"adam_m_{kind}_{index}"), getattr(self, f"adam_v_{kind}_{index}")
        beta1, beta2 = ADAM_BETAS
        m.mul_(beta1).add_(grad, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        m_hat = m / (1 - beta1 ** step)
        v_hat = v / (1 - beta2 ** step)
        param.sub_(self.feedback_lr * m_hat / (v_hat.sqrt() + ADAM_EPS))

    # -- targets and updates ----------------------------------------------------------------------
    def target_differences(self, forward: ForwardPass, targets: torch.Tensor) -> list[torch.Tensor]:
        """[t_l − h_l for l = 1..L] with the difference correction (current feedback weights)."""
        target = self.output_target(forward, targets, self.target_step)
        differences = [target - forward.output]
        for index in range(self.model.depth - 1, 0, -1):
            partial = (forward.inputs[index] + self.apply_feedback(index, target)
                       - self.apply_feedback(index, forward.post[index]))  # Lee et al. 2015, eq. 15
            target = self.re_append(index - 1, partial, forward)
            differences.insert(0, target - forward.post[index - 1])
        return differences

    def compute_update(self, inputs: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        """Feedback step(s), then difference targets and the local updates into ``.grad``."""
        with torch.no_grad():
            forward = self.model.forward_pass(inputs)
            self.train_feedback(forward)
            differences = self.target_differences(forward, targets)
            self.write_local_updates(forward, list(differences), [None] * len(differences))
            readout = forward.output[:, :self.model.num_classes]
            loss = self.loss_fn(readout, targets)
        return StepOutput(loss, readout)
