"""Equilibrium propagation: classic (``ep``), symmetric (``ep-sym``) and holomorphic (``hep``).

On an energy MLP (:mod:`creditlab.models.energy`; F(θ, s, β) = Φ(x, s) − β ℓ(o, y)) a step relaxes
the free phase from s = 0 for ``T1`` iterations to s⁰ (β = 0), then nudged phases of ``T2``
iterations each, started from s⁰, and writes the descent direction g ≈ dL/dθ into ``.grad``
(the optimizer subtracts lr·g; g is minus the weight change EP prescribes)::

    ep      g = −[∂F/∂θ(s^β, β) − ∂F/∂θ(s⁰, 0)] / β                 Scellier & Bengio 2017, eq. (10)
    ep-sym  g = −[∂F/∂θ(s^β, β) − ∂F/∂θ(s^−β, −β)] / (2β)           Laborieux et al. 2021, eq. (5)
    hep     g = −(1/N) Σ_{t<N} Re[∂F/∂θ(s^{β_t}, β_t) / β_t],  β_t = |β| e^{2πit/N}
                                                                     Laborieux & Zenke 2022, eq. (9)

∂F/∂θ is local: s_k s_{k-1}ᵀ for W_k, s_k for b_k (and −β ∂ℓ/∂o s_Kᵀ for a readout). Bias: ``ep`` is
O(β) off dL/dθ at the free fixed point, ``ep-sym`` O(β²); ``hep`` is the N-point trapezoid rule of
the Cauchy integral f'(0) = (1/2πi)∮ f(β)/β² dβ, exact up to O((|β|/ρ)^N) for f analytic in |β| < ρ
(needs a holomorphic σ: ``my-sigmoid``). Without noise hEP uses the authors' conjugate symmetry
(s^{β̄} = conj(s^β) for real θ, x): points t and N − t give 2 Re of one, so ⌈(N+1)/2⌉ relaxations.
With ``noise`` > 0 (Gaussian ξ of std ``noise`` added to every ∂F/∂s in training relaxations, the
authors' ``noisy_fwd``), the N points are relaxed in sequence around the circle, each from the
previous one's state (their ``noisy_ep_gradN``); classic EP then uses the state after one noisy
free step and the nudged state (departure: the authors average the last 5 steps of each phase).

Options: ``T1`` (≥ 1), ``T2`` (≥ 1), ``beta`` (≠ 0; its sign is the first point's), ``N`` (hep, ≥ 2),
``loss`` (``ce`` / ``mse``), ``noise`` (≥ 0), ``random_sign`` (ep: β's sign drawn per batch,
Scellier & Bengio 2017), ``layer_scales`` (per weight layer, multiplies g: per-layer learning
rates lr·scale_k, e.g. Scellier & Bengio's α = 0.1, 0.05 as lr 0.05 with scales [2, 1]), ``seed``
(the rule's generator: random signs and noise; kept in the state dict, so ``--resume`` is
bit-identical). The relaxation state is recomputed from s = 0 every batch
(the authors' ``init_neurons``), never stored. Evaluation relaxes ``T1`` free iterations.
Accepted models: ``energy-mlp``, ``energy-convnet`` (hep: holomorphic dynamics, i.e. my-sigmoid and,
on the convnet, average pooling).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn as nn

from creditlab.models.energy import COMPLEX, LOSSES, EnergyNetwork, batch_loss, fixed_point_gradients, is_energy_network
from creditlab.rules import register_rule
from creditlab.rules.base import DemoSetting, LossFn, Rule, StepOutput, require
from creditlab.seeding import seeded_generator

#: salt of the rule's generator (random signs, noise)
EP_SEED_SALT = "equilibrium-propagation"

#: demo on MNIST: a narrow net, few relaxation steps, 3000 images; measured 0.772 (ep), 0.761 (ep-sym),
#: 0.764 (hep) in 1.2 / 1.5 / 2.5 s (1 thread, seed 0), floors 0.65
DEMO_MODEL = {"hidden": [64], "steps": 10}
DEMO_TRAINING = {"lr": 0.1, "batch_size": 20}


def _option_error(rule: str, text: str) -> ValueError:
    return ValueError(f"rule {rule!r}: {text}")


class EquilibriumPropagation(Rule):
    """Shared machinery of the three EP variants (module docstring); subclasses pick the estimator."""

    accepts: ClassVar[str] = "energy-based networks: energy-mlp, energy-convnet"
    points: ClassVar[str] = ""

    def __init__(self, model: nn.Module, loss_fn: LossFn | None = None, T1: int = 30, T2: int = 10,  # noqa: N803
                 beta: float = 0.1, N: int = 1, loss: str = "ce", noise: float = 0.0,  # noqa: N803
                 random_sign: bool = False, seed: int = 0, layer_scales: tuple[float, ...] = ()) -> None:
        name = self.name
        if isinstance(T1, bool) or not isinstance(T1, int) or T1 < 1:
            raise _option_error(name, f"T1 (free-phase steps) must be a whole number >= 1, got {T1!r}")
        if isinstance(T2, bool) or not isinstance(T2, int) or T2 < 1:
            raise _option_error(name, f"T2 (nudged-phase steps) must be a whole number >= 1, got {T2!r}")
        if not isinstance(beta, int | float) or isinstance(beta, bool) or not math.isfinite(beta) or beta == 0:
            raise _option_error(name, f"beta (the nudging strength) must be a finite non-zero number, got {beta!r}")
        if loss not in LOSSES:
            raise _option_error(name, f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        if not isinstance(noise, int | float) or not math.isfinite(noise) or noise < 0:
            raise _option_error(name, f"noise (std of the relaxation noise) must be a number >= 0, got {noise!r}")
        super().__init__(model, batch_loss_fn(loss) if loss_fn is None else loss_fn)
        layers = len(self.model.layers)
        scales = tuple(float(v) for v in layer_scales)
        if scales and (len(scales) != layers or not all(math.isfinite(v) and v > 0 for v in scales)):
            raise _option_error(name, f"layer_scales takes {layers} positive numbers (one per weight layer: lr_k = "
                                f"lr x scale_k), got {list(layer_scales)}")
        self.layer_scales = scales
        self.T1, self.T2, self.beta, self.N = int(T1), int(T2), float(beta), int(N)
        self.loss, self.noise, self.random_sign = loss, float(noise), bool(random_sign)
        self.generator = seeded_generator(int(seed), EP_SEED_SALT)

    @classmethod
    def check_model(cls, model: nn.Module) -> None:  # noqa: D102
        require(is_energy_network(model), cls, model, "EP needs an energy-based network relaxed to a fixed point")

    # the generator's state travels in the rule's state dict
    def get_extra_state(self) -> dict[str, Any]:  # noqa: D102
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state: dict[str, Any]) -> None:  # noqa: D102
        self.generator.set_state(state["generator"].cpu())

    # -- phases -----------------------------------------------------------------------------------
    def free_phase(self, flat: torch.Tensor, noise: float = 0.0) -> list[torch.Tensor]:
        """s⁰: ``T1`` free iterations from s = 0."""
        model: EnergyNetwork = self.model
        start = model.initial_state(flat.shape[0], model.dtype, flat.device)
        return model.relax(model.params(), flat, start, self.T1, noise=noise, generator=self.generator)

    def nudged_gradient(self, flat: torch.Tensor, onehot: torch.Tensor, start: list[torch.Tensor],
                        beta: complex | float) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(s^β after ``T2`` iterations from ``start``, ∂F/∂θ there), complex for complex β."""
        model: EnergyNetwork = self.model
        if isinstance(beta, complex):
            dtype = COMPLEX[model.dtype]
            params, flat = model.params(dtype), flat.to(dtype)
            start, onehot = [s.to(dtype) for s in start], onehot.to(dtype)
        else:
            params = model.params()
        states = model.relax(params, flat, start, self.T2, beta, onehot, self.loss, self.noise, self.generator)
        return states, model.energy_gradients(params, flat, states, beta, onehot, self.loss)

    def estimate(self, flat: torch.Tensor, onehot: torch.Tensor, free: list[torch.Tensor]) -> list[torch.Tensor]:
        """The variant's g (module docstring), per parameter."""
        raise NotImplementedError

    # -- the protocol -----------------------------------------------------------------------------
    def compute_update(self, inputs: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        """Free phase, the variant's nudged phases, g into ``.grad``; the loss at the free state."""
        model: EnergyNetwork = self.model
        with torch.no_grad():
            flat = model.flatten_input(inputs)
            onehot = nn.functional.one_hot(targets, model.num_classes).to(model.dtype)
            free = self.free_phase(flat, self.noise)
            estimate = self.estimate(flat, onehot, free)
            for index, (param, direction) in enumerate(zip(model.parameters(), estimate, strict=True)):
                scale = self.layer_scales[index // 2] if self.layer_scales else 1.0  # (weight, bias) per layer
                param.grad = (scale * direction.real).to(param.dtype).clone()
            output = model.output(model.params(), free)
            loss = self.loss_fn(output, targets)
        return StepOutput(loss, output)

    def forward_logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """o at the free state after ``T1`` iterations (no noise: evaluation draws nothing)."""
        model: EnergyNetwork = self.model
        with torch.no_grad():
            flat = model.flatten_input(inputs)
            start = model.initial_state(flat.shape[0], model.dtype, flat.device)
            return model.output(model.params(), model.relax(model.params(), flat, start, self.T1))

    def true_gradients(self, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """dL/dθ at the free fixed point by implicit differentiation (``fixed_point_gradients``, T1 iterations)."""
        grads = fixed_point_gradients(self.model, inputs, targets, self.loss, self.T1)
        return {name: g for (name, _), g in zip(self.model.named_parameters(), grads, strict=True)}


def batch_loss_fn(loss: str) -> LossFn:
    """The batch-mean loss the rule reports and aligns with (``ce`` or ``mse``, see the energy model)."""
    return lambda output, targets: batch_loss(loss, output, targets)


def _combine(terms: list[tuple[complex | float, list[torch.Tensor]]]) -> list[torch.Tensor]:
    """Σ weight · grads, real part (the weights fold in 1/β, 1/N and the conjugate pairs' factor 2)."""
    total = [torch.zeros_like(g.real) for g in terms[0][1]]
    for weight, grads in terms:
        for index, g in enumerate(grads):
            total[index] = total[index] + (weight * g).real
    return total


@register_rule("ep")
class ClassicEP(EquilibriumPropagation):
    """Classic EP: one nudged phase at +β (or a random sign), the one-sided estimate."""

    name = "ep"
    description = "equilibrium propagation (Scellier & Bengio 2017): free and nudged phase, one-sided estimate"
    demo = DemoSetting(floor=0.65, model="energy-mlp", model_options=DEMO_MODEL, training=DEMO_TRAINING,
                       rule_options={"T1": 10, "T2": 4, "beta": 0.5})

    def __init__(self, model: nn.Module, loss_fn: LossFn | None = None, T1: int = 30, T2: int = 10,  # noqa: N803
                 beta: float = 0.1, loss: str = "ce", noise: float = 0.0, random_sign: bool = False,
                 seed: int = 0, layer_scales: tuple[float, ...] = ()) -> None:
        super().__init__(model, loss_fn, T1, T2, beta, 1, loss, noise, random_sign, seed, layer_scales)

    def estimate(self, flat: torch.Tensor, onehot: torch.Tensor, free: list[torch.Tensor]) -> list[torch.Tensor]:
        """g = −[∂F/∂θ(s^β, β) − ∂F/∂θ(s⁰, 0)] / β."""
        model: EnergyNetwork = self.model
        beta = self.beta
        if self.random_sign and torch.randint(0, 2, (), generator=self.generator).item() == 1:
            beta = -beta
        if self.noise > 0.0:  # the authors' noisy EP: free gradient after one more noisy free step
            free = model.relax(model.params(), flat, free, 1, noise=self.noise, generator=self.generator)
        free_grads = model.energy_gradients(model.params(), flat, free)
        _, nudged_grads = self.nudged_gradient(flat, onehot, free, beta)
        return _combine([(-1.0 / beta, nudged_grads), (1.0 / beta, free_grads)])


@register_rule("ep-sym")
class SymmetricEP(EquilibriumPropagation):
    """Symmetric EP: nudged phases at +β and −β, both from the free state."""

    name = "ep-sym"
    description = "symmetric equilibrium propagation (Laborieux et al. 2021): nudging at +β and −β"
    demo = DemoSetting(floor=0.65, model="energy-mlp", model_options=DEMO_MODEL, training=DEMO_TRAINING,
                       rule_options={"T1": 10, "T2": 4, "beta": 0.5})

    def __init__(self, model: nn.Module, loss_fn: LossFn | None = None, T1: int = 30, T2: int = 10,  # noqa: N803
                 beta: float = 0.1, loss: str = "ce", noise: float = 0.0, seed: int = 0,
                 layer_scales: tuple[float, ...] = ()) -> None:
        super().__init__(model, loss_fn, T1, T2, beta, 2, loss, noise, False, seed, layer_scales)

    def estimate(self, flat: torch.Tensor, onehot: torch.Tensor, free: list[torch.Tensor]) -> list[torch.Tensor]:
        """g = −[∂F/∂θ(s^β, β) − ∂F/∂θ(s^−β, −β)] / (2β)."""
        _, plus = self.nudged_gradient(flat, onehot, free, self.beta)
        _, minus = self.nudged_gradient(flat, onehot, free, -self.beta)
        return _combine([(-0.5 / self.beta, plus), (0.5 / self.beta, minus)])


@register_rule("hep")
class HolomorphicEP(EquilibriumPropagation):
    """Holomorphic EP: N nudged phases at β_t = |β| e^{2πit/N}, the Cauchy-integral estimate."""

    name = "hep"
    description = "holomorphic EP (Laborieux & Zenke 2022): N complex nudges on a circle, exact at finite β"
    accepts = ("energy-mlp, energy-convnet with holomorphic dynamics (activation=my-sigmoid, the default; "
               "pooling=avg on the convnet)")
    demo = DemoSetting(floor=0.65, model="energy-mlp", model_options=DEMO_MODEL, training=DEMO_TRAINING,
                       rule_options={"T1": 10, "T2": 4, "beta": 0.5, "N": 4})

    def __init__(self, model: nn.Module, loss_fn: LossFn | None = None, T1: int = 30, T2: int = 10,  # noqa: N803
                 beta: float = 0.4, N: int = 10, loss: str = "ce", noise: float = 0.0,  # noqa: N803
                 seed: int = 0, layer_scales: tuple[float, ...] = ()) -> None:
        if isinstance(N, bool) or not isinstance(N, int) or N < 2:
            raise _option_error(self.name, f"N (points on the circle) must be a whole number >= 2, got {N!r}")
        super().__init__(model, loss_fn, T1, T2, beta, N, loss, noise, False, seed, layer_scales)

    @classmethod
    def check_model(cls, model: nn.Module) -> None:  # noqa: D102
        super().check_model(model)
        require(model.holomorphic, cls, model, "its dynamics are not holomorphic (activation "
                f"{model.activation!r}, or max pooling), so complex nudging is undefined (use --model-opt "
                "activation=my-sigmoid, and pooling=avg on energy-convnet)")

    def points(self) -> list[complex]:
        """β_t = β e^{2πit/N}, t = 0..N−1."""
        return [self.beta * complex(math.cos(2 * math.pi * t / self.N), math.sin(2 * math.pi * t / self.N))
                for t in range(self.N)]

    def estimate(self, flat: torch.Tensor, onehot: torch.Tensor, free: list[torch.Tensor]) -> list[torch.Tensor]:
        """g = −(1/N) Σ_t Re[∂F/∂θ(s^{β_t}, β_t) / β_t] (conjugate pairs folded without noise)."""
        count, terms = self.N, []
        if self.noise > 0.0:  # the authors' noisy hEP: around the circle, each point from the previous state
            state = free
            for point in self.points():
                state, grads = self.nudged_gradient(flat, onehot, state, point)
                terms.append((-1.0 / (count * point), grads))
            return _combine(terms)
        for t, point in enumerate(self.points()):
            if 2 * t > count:
                break  # the conjugate of an earlier point
            real = t == 0 or 2 * t == count
            _, grads = self.nudged_gradient(flat, onehot, free, point.real if real else point)
            factor = 1.0 if real else 2.0
            terms.append((-factor / (count * (point.real if real else point)), grads))
        return _combine(terms)
