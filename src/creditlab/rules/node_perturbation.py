"""Node perturbation: REINFORCE with a reward baseline (Williams 1992; Fiete & Seung 2006; Miconi 2017).

Every module that owns trainable parameters directly (``nn.Linear``, ``nn.Conv2d``, BatchNorm, a
user's own layer, ...) gets Gaussian noise added to its output (the pre-activation of the units it
feeds) during a training step::

    a_l = f_l(x_l; theta_l) + xi_l,      xi_l ~ N(0, sigma^2 I),  drawn from the rule's own generator

and, with the per-example loss L_i of that noisy forward pass and a baseline Lbar, the update of
the layer's parameters is the vector-Jacobian product of its own output with the eligibility
``(L_i - Lbar) xi_l,i / sigma^2`` (descent convention, mean over the batch)::

    grad theta_l = 1/B sum_i (L_i - Lbar) / sigma^2 * (d a_l,i / d theta_l)^T xi_l,i
    linear layer:  grad W_l = 1/B sum_i (L_i - Lbar) / sigma^2 * xi_l,i x_l,i^T

E over xi of this is the gradient of the Gaussian-smoothed loss, which equals the true gradient to
first order in sigma (exactly, in a linear-Gaussian model: E[dW] = Sigma D^T e x^T / sigma^2 with
reward = -loss; tested by Monte Carlo). No error travels between layers: each layer's input is
detached, and one scalar per example (the loss) is the only learning signal: no credit-assignment
model, no weight transport.

Baseline (``baseline``):
- ``clean`` (default): the per-example loss of an extra noise-free forward pass (exactly unbiased;
  one more forward pass per step). The advantage is then only the noise's effect on each example;
- ``running``: a running average of the batch-mean loss, a buffer updated *after* each step with
  time constant ``baseline_tau`` steps (independent of this step's noise, so unbiased; the first step
  uses its own batch mean, an O(1/B) bias on one step only). One scalar for every example, so the
  advantage also carries the examples' own loss differences (O(1) on a classifier, against the
  noise's O(sigma) effect) and the estimate's variance is far larger; it needs a much smaller
  learning rate. It is the textbook REINFORCE baseline, kept for the linear-Gaussian comparisons.

Randomness: a ``torch.Generator`` from ``seeding.seeded_generator(seed, PERTURBATION_SEED_SALT)``, kept
in the rule's state dict (``_extra_state``), so ``--resume`` continues bit-identically on CPU. Noise is
drawn on the CPU and moved to the layer's device, so the trajectory does not depend on the device's
generator. Under ``torch.no_grad()`` (evaluation) nothing is perturbed and nothing is drawn.

Accepts any model backprop trains whose parameters all live in modules called in the forward pass
(it refuses a model with no trainable parameters, and a model with a custom exact backward
``backprop_update``, e.g. the vectorized networks, whose layers are not called as modules).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from creditlab.rules import register_rule
from creditlab.rules.base import DemoSetting, LossFn, Rule, StepOutput, require
from creditlab.seeding import seeded_generator

#: mixed into the rule's seed so perturbations never repeat the weight-init stream of the same seed
PERTURBATION_SEED_SALT = 0x9E7B0
BASELINES = ("running", "clean")


def perturbed_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(path, module) of every module owning trainable parameters directly, in registration order."""
    return [(path, module) for path, module in model.named_modules()
            if any(p.requires_grad for p in module.parameters(recurse=False))]


def per_example_loss(loss_fn: LossFn, output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The loss of each example (batch,), from a batch-mean ``loss_fn`` (vmapped over examples)."""
    if loss_fn is F.cross_entropy:
        return F.cross_entropy(output, targets, reduction="none")
    if loss_fn is F.mse_loss:
        return F.mse_loss(output, targets, reduction="none").reshape(len(output), -1).mean(1)
    single: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = lambda o, t: loss_fn(o[None], t[None])  # noqa: E731
    return torch.func.vmap(single)(output, targets)


@register_rule("node-perturbation")
class NodePerturbation(Rule):
    """REINFORCE / node perturbation with a reward baseline: one scalar per example trains every layer."""

    name = "node-perturbation"
    description = "node perturbation (REINFORCE with a reward baseline): noise on pre-activations x loss"
    # one scalar per example is the only learning signal, so the estimate's variance grows with the number of
    # perturbed units: the demo uses one hidden layer of 100 and more, smaller steps (measured 0.74)
    demo = DemoSetting(floor=0.60, model="mlp", epochs=3, train_limit=5000, model_options={"hidden": [100]},
                       training={"batch_size": 32})
    accepts = ("any model built from modules that own their parameters and are called in the forward "
               "pass (MLP, LeNet, ResNet-20, user models); not models with a custom backward")

    def __init__(self, model: nn.Module, loss_fn: LossFn = F.cross_entropy, seed: int = 0, sigma: float = 0.1,
                 baseline: str = "clean", baseline_tau: float = 10.0) -> None:
        if not (isinstance(sigma, int | float) and math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"node-perturbation: sigma (the perturbation std) must be a positive number, "
                             f"got {sigma!r}")
        if baseline not in BASELINES:
            raise ValueError(f"node-perturbation: unknown baseline {baseline!r}; valid: {', '.join(BASELINES)}")
        if not baseline_tau >= 1.0:
            raise ValueError(f"node-perturbation: baseline_tau must be >= 1 step, got {baseline_tau!r}")
        super().__init__(model, loss_fn)
        self.seed, self.sigma, self.baseline, self.baseline_tau = int(seed), float(sigma), baseline, float(baseline_tau)
        self.generator = seeded_generator(int(seed), PERTURBATION_SEED_SALT)
        self.register_buffer("loss_baseline", torch.zeros(()))
        self.register_buffer("baseline_ready", torch.zeros((), dtype=torch.bool))
        self._modules_to_perturb = perturbed_modules(self.model)

    @classmethod
    def check_model(cls, model: nn.Module) -> None:  # noqa: D102
        require(any(p.requires_grad for p in model.parameters()), cls, model, "it has no trainable parameter")
        require(not callable(getattr(model, "backprop_update", None)), cls, model,
                "its layers compute with a custom backward (backprop_update), so their outputs cannot be "
                "perturbed as modules")

    # the generator's state travels in the rule's state dict
    def get_extra_state(self) -> dict[str, Any]:  # noqa: D102
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state: dict[str, Any]) -> None:  # noqa: D102
        self.generator.set_state(state["generator"].cpu())

    def _noisy_forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Forward with detached layer inputs and noise on every perturbed module's output."""
        sites: list[tuple[torch.Tensor, torch.Tensor]] = []

        def detach_inputs(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
            return tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args)

        def add_noise(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
            noise = torch.randn(output.shape, generator=self.generator, dtype=output.dtype).to(output.device)
            noise = noise * self.sigma
            sites.append((output, noise))
            return output + noise  # the next layer's input is detached: no error travels back

        handles = []
        for _, module in self._modules_to_perturb:
            handles.append(module.register_forward_pre_hook(detach_inputs))
            handles.append(module.register_forward_hook(add_noise))
        try:
            output = self.model(inputs)
        finally:
            for handle in handles:
                handle.remove()
        return output, sites

    def compute_update(self, inputs: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        """One noisy forward; eligibility (L_i - Lbar) xi / sigma^2 into each layer's local VJP."""
        if self.baseline == "clean":
            with torch.no_grad():
                clean = per_example_loss(self.loss_fn, self.model(inputs), targets)
        output, sites = self._noisy_forward(inputs)
        with torch.no_grad():
            losses = per_example_loss(self.loss_fn, output, targets)
            batch_mean = losses.mean()
            if self.baseline == "clean":
                advantage = losses - clean
            else:
                if not bool(self.baseline_ready):
                    self.loss_baseline.copy_(batch_mean)
                    self.baseline_ready.fill_(True)
                advantage = losses - self.loss_baseline
                self.loss_baseline.add_((batch_mean - self.loss_baseline) / self.baseline_tau)
            scale = advantage / (self.sigma ** 2 * len(inputs))
        if sites:
            outs = [out for out, _ in sites if out.requires_grad]
            cotangents = [noise * scale.reshape(-1, *([1] * (noise.dim() - 1))).to(noise.dtype)
                          for out, noise in sites if out.requires_grad]
            if outs:
                torch.autograd.backward(outs, cotangents)
        return StepOutput(batch_mean.detach(), output.detach())
