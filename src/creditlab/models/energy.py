"""Energy-based layered networks relaxed to a fixed point, for equilibrium propagation (EP).

State layers s_1..s_K (s_0 = x, the flattened input) interact through the primitive function of
Laborieux et al. 2021 / Laborieux & Zenke 2022 (``xphi`` in Laborieux-Axel/holomorphic_eqprop)::

    Φ(x, s) = Σ_{k=1..K} (W_k s_{k-1} + b_k) · s_k                             (primitive function)
    F(x, s, β) = Φ(x, s) − β ℓ(o, y)                                          (total, nudged by β)

with the output o either a linear **readout** of the last state layer, o = W_{K+1} s_K + b_{K+1}
(``output="readout"``: the authors' MLP, whose logits are read out and enter only through ℓ), or
the last state layer itself, o = s_K (``output="neurons"``: Scellier & Bengio 2017's output units).
The loss ℓ is per sample: ``ce`` (cross-entropy of softmax(o)) or ``mse`` (½‖o − y‖², y one-hot).

Relaxation is the authors' synchronous fixed-point iteration (their ``fwd``)::

    s_k ← σ(∂F/∂s_k) = σ(W_k s_{k-1} + b_k + W_{k+1}ᵀ s_{k+1} − β ∂ℓ/∂s_k)    for all k at once

from s = 0, with σ = ``my-sigmoid`` σ(u) = 1 / (1 + exp(−4u + 2)) (the authors' ``my_sigmoid`` with
a = −4, b = 2; holomorphic, so complex β works, which holomorphic EP needs) or ``hard-sigmoid``
clamp(u, 0, 1) (Scellier & Bengio 2017's ρ). Weights are symmetric by construction: W_{k+1} couples
s_k and s_{k+1} both ways. Every function here takes the parameters as a list so that the same code
runs in complex arithmetic (hEP casts them to complex).

``forward(x)`` relaxes for ``steps`` iterations at β = 0 and returns o, differentiably: ``bp`` on this
model is backprop through time (the authors' BPTT baseline). :func:`fixed_point_gradients` is the
gradient of the loss at the free fixed point by implicit differentiation (recurrent backprop /
Almeida–Pineda): the quantity EP estimates, used for ``--track-alignment``.

Initialization (``init``): ``haiku`` (the authors': truncated normal, std 1/sqrt(fan_in), cut at 2
std; zero biases) or ``glorot`` (uniform ±sqrt(6 / (fan_in + fan_out)), Scellier & Bengio's code).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn

from creditlab.models import check_widths, register_model
from creditlab.models.vnn import init_generator
from creditlab.options import Option

ACTIVATIONS = ("my-sigmoid", "hard-sigmoid")
HOLOMORPHIC_ACTIVATIONS = ("my-sigmoid",)
OUTPUTS = ("readout", "neurons")
LOSSES = ("ce", "mse")
INITS = ("haiku", "glorot")
DTYPES = {"float32": torch.float32, "float64": torch.float64}
COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}

Params = list[torch.Tensor]
#: the rules that train an energy MLP (bp: backprop through the relaxation, the authors' BPTT baseline)
TRAINED_BY = ("ep", "ep-sym", "hep", "bp")


def activate(name: str, u: torch.Tensor) -> torch.Tensor:
    """σ(u) by name (module docstring); ``my-sigmoid`` also takes complex u."""
    if name == "my-sigmoid":
        return 1.0 / (1.0 + torch.exp(2.0 - 4.0 * u))
    if name == "hard-sigmoid":
        return u.clamp(0.0, 1.0)
    raise ValueError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}")


def loss_derivative(loss: str, output: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
    """∂ℓ/∂o per sample, (batch, classes); holomorphic (complex o gives the complex derivative)."""
    if loss == "ce":
        shifted = output - output.real.amax(dim=1, keepdim=True)
        exp = torch.exp(shifted)
        return exp / exp.sum(dim=1, keepdim=True) - onehot
    if loss == "mse":
        return output - onehot
    raise ValueError(f"unknown loss {loss!r}; valid: {', '.join(LOSSES)}")


def batch_loss(loss: str, output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ℓ(o, y): cross-entropy, or ½‖o − onehot(y)‖² summed over classes."""
    if loss == "ce":
        return nn.functional.cross_entropy(output, targets)
    onehot = nn.functional.one_hot(targets, output.shape[1]).to(output.dtype)
    return 0.5 * ((output - onehot) ** 2).sum(dim=1).mean()


class EnergyNetwork(nn.Module):
    """What the EP rules need of an energy-based network: states, ∂F/∂s (``drive``), the relaxation,
    the output and the local ∂F/∂θ (``energy_gradients``), all on parameter lists (real or complex)."""

    activation: str
    num_classes: int
    holomorphic_pooling: bool = True

    @property
    def dtype(self) -> torch.dtype:
        """The parameters' dtype (inputs are cast to it)."""
        return next(self.parameters()).dtype

    @property
    def holomorphic(self) -> bool:
        """Whether the dynamics are holomorphic (complex nudging, hEP, is possible)."""
        return self.activation in HOLOMORPHIC_ACTIVATIONS and self.holomorphic_pooling

    def params(self, dtype: torch.dtype | None = None) -> Params:
        """The parameters in the order of ``parameters()``, detached and cast to ``dtype``."""
        return [p.detach().to(dtype or p.dtype) for p in self.parameters()]

    def flatten_input(self, x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """(batch, *input_shape) -> (batch, in_features) in ``dtype`` (the model's by default)."""
        return x.reshape(x.shape[0], -1).to(dtype or self.dtype)

    def drive(self, params: Params, x: torch.Tensor, states: Sequence[torch.Tensor], beta: complex | float = 0.0,
              onehot: torch.Tensor | None = None, loss: str = "ce") -> list[torch.Tensor]:
        """∂F/∂s_k for every state layer k."""
        raise NotImplementedError

    def relax(self, params: Params, x: torch.Tensor, states: Sequence[torch.Tensor], steps: int,
              beta: complex | float = 0.0, onehot: torch.Tensor | None = None, loss: str = "ce",
              noise: float = 0.0, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """``steps`` synchronous iterations s ← σ(∂F/∂s + ξ), ξ ~ N(0, noise²) from ``generator``."""
        states = list(states)
        for _ in range(steps):
            drives = self.drive(params, x, states, beta, onehot, loss)
            if noise > 0.0:
                drives = [u + noise * torch.randn(u.shape, generator=generator, dtype=u.real.dtype).to(u.device)
                          for u in drives]
            states = [activate(self.activation, u) for u in drives]
        return states


class EnergyMLP(EnergyNetwork):
    """Layered Hopfield-like network (module docstring). x: (batch, *input_shape) -> o (batch, classes).

    ``layers[k]`` (an ``nn.Linear``) maps state k to state k + 1 (state 0 is the input); with
    ``output="readout"`` the last one is the readout. ``state_widths`` are the widths of s_1..s_K.
    """

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int, activation: str = "my-sigmoid",
                 output: str = "readout", steps: int = 30, init: str = "haiku", dtype: torch.dtype = torch.float32,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"option 'activation' takes one of {', '.join(ACTIVATIONS)}, got {activation!r}")
        if output not in OUTPUTS:
            raise ValueError(f"option 'output' takes one of {', '.join(OUTPUTS)}, got {output!r}")
        if init not in INITS:
            raise ValueError(f"option 'init' takes one of {', '.join(INITS)}, got {init!r}")
        if steps < 1:
            raise ValueError(f"option 'steps' takes a whole number >= 1, got {steps}")
        self.activation, self.output_kind, self.steps, self.init = activation, output, int(steps), init
        self.trained_by = TRAINED_BY
        self.num_classes = num_classes
        self.state_widths = [*map(int, hidden)] + ([num_classes] if output == "neurons" else [])
        widths = [in_features, *self.state_widths] + ([num_classes] if output == "readout" else [])
        generator = generator if generator is not None else init_generator(None)
        self.layers = nn.ModuleList()
        for fan_in, fan_out in zip(widths, widths[1:], strict=False):
            layer = nn.Linear(fan_in, fan_out, dtype=dtype)
            with torch.no_grad():
                if init == "haiku":
                    std = 1.0 / math.sqrt(fan_in)
                    nn.init.trunc_normal_(layer.weight, 0.0, std, -2 * std, 2 * std, generator=generator)
                else:
                    bound = math.sqrt(6.0 / (fan_in + fan_out))
                    nn.init.uniform_(layer.weight, -bound, bound, generator=generator)
                layer.bias.zero_()
            self.layers.append(layer)

    def initial_state(self, batch: int, dtype: torch.dtype, device: torch.device) -> list[torch.Tensor]:
        """s = 0 in every state layer (the authors' ``init_neurons``)."""
        return [torch.zeros(batch, width, dtype=dtype, device=device) for width in self.state_widths]

    def output(self, params: Params, states: Sequence[torch.Tensor]) -> torch.Tensor:
        """o: the readout W_{K+1} s_K + b_{K+1}, or s_K itself (``output="neurons"``)."""
        if self.output_kind == "neurons":
            return states[-1]
        return states[-1] @ params[-2].T + params[-1]

    def drive(self, params: Params, x: torch.Tensor, states: Sequence[torch.Tensor], beta: complex | float = 0.0,
              onehot: torch.Tensor | None = None, loss: str = "ce") -> list[torch.Tensor]:
        """∂F/∂s_k for every state layer k: W_k s_{k-1} + b_k + W_{k+1}ᵀ s_{k+1} − β ∂ℓ/∂s_k."""
        count = len(states)
        below = [x, *states[:-1]]
        drives = []
        for k in range(count):
            u = below[k] @ params[2 * k].T + params[2 * k + 1]
            if k + 1 < count:
                u = u + states[k + 1] @ params[2 * k + 2]
            drives.append(u)
        if beta != 0:
            error = loss_derivative(loss, self.output(params, states), onehot)
            if self.output_kind == "readout":
                drives[-1] = drives[-1] - beta * (error @ params[-2])
            else:
                drives[-1] = drives[-1] - beta * error
        return drives

    def energy_gradients(self, params: Params, x: torch.Tensor, states: Sequence[torch.Tensor],
                         beta: complex | float = 0.0, onehot: torch.Tensor | None = None, loss: str = "ce"
                         ) -> Params:
        """∂F/∂θ at the given state (batch mean), in the order of ``parameters()``: the local terms

        ∂Φ/∂W_k = s_k s_{k-1}ᵀ, ∂Φ/∂b_k = s_k, and for the readout −β ∂ℓ/∂o s_Kᵀ, −β ∂ℓ/∂o.
        """
        batch = x.shape[0]
        below = [x, *states[:-1]]
        grads: Params = []
        for k, state in enumerate(states):
            grads += [state.T @ below[k] / batch, state.mean(dim=0)]
        if self.output_kind == "readout":
            if beta != 0:
                error = loss_derivative(loss, self.output(params, states), onehot)
                grads += [-beta * (error.T @ states[-1]) / batch, -beta * error.mean(dim=0)]
            else:
                grads += [torch.zeros_like(params[-2]), torch.zeros_like(params[-1])]
        return grads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """o after ``steps`` free iterations from s = 0 (differentiable: BPTT through the relaxation)."""
        params = list(self.parameters())
        flat = self.flatten_input(x)
        states = self.initial_state(flat.shape[0], self.dtype, flat.device)
        return self.output(params, self.relax(params, flat, states, self.steps))


def fixed_point_gradients(model: EnergyNetwork, x: torch.Tensor, targets: torch.Tensor, loss: str, steps: int
                          ) -> list[torch.Tensor]:
    """dL/dθ at the free fixed point s* (L = batch mean of ℓ), by implicit differentiation.

    s* = G(s*, θ) with G = σ(∂Φ/∂s) is found by ``steps`` free iterations; the adjoint solves
    λ = ∂L/∂s + (∂G/∂s)ᵀ λ by ``steps`` fixed-point iterations (recurrent backprop, Almeida 1987 /
    Pineda 1987), and dL/dθ = ∂L/∂θ + (∂G/∂θ)ᵀ λ (vector-Jacobian products by autograd).
    """
    with torch.no_grad():
        flat = model.flatten_input(x)
        free = model.relax(model.params(), flat, model.initial_state(flat.shape[0], model.dtype, flat.device), steps)
    params = list(model.parameters())
    with torch.enable_grad():
        states = [s.clone().requires_grad_(True) for s in free]
        direct = batch_loss(loss, model.output(params, states), targets)
        loss_wrt_state = [g if g is not None else torch.zeros_like(s) for g, s in
                          zip(torch.autograd.grad(direct, states, retain_graph=True, allow_unused=True), states,
                              strict=True)]
        loss_wrt_params = (torch.autograd.grad(direct, params, retain_graph=True, allow_unused=True)
                           if model.output_kind == "readout" else [None] * len(params))
        mapped = [activate(model.activation, u) for u in model.drive(params, flat, states)]
        adjoint = [g.clone() for g in loss_wrt_state]
        for _ in range(steps):
            pulled = torch.autograd.grad(mapped, states, adjoint, retain_graph=True, allow_unused=True)
            adjoint = [g if p is None else g + p for g, p in zip(loss_wrt_state, pulled, strict=True)]
        through_state = torch.autograd.grad(mapped, params, adjoint, allow_unused=True)
    return [(a if a is not None else torch.zeros_like(p)) + (b if b is not None else torch.zeros_like(p))
            for a, b, p in zip(loss_wrt_params, through_state, params, strict=True)]


def is_energy_network(model: nn.Module) -> bool:
    """True for an :class:`EnergyNetwork` (``energy-mlp``, ``energy-convnet``: the models the EP rules train)."""
    return isinstance(model, EnergyNetwork)


ENERGY_MLP_OPTIONS = {
    "hidden": Option([256, 256], "widths of the hidden state layers", minimum=1),
    "activation": Option("my-sigmoid", "σ of the state layers", choices=ACTIVATIONS),
    "output": Option("readout", "output: a linear readout (authors' MLP) or output neurons in the energy "
                     "(Scellier & Bengio 2017)", choices=OUTPUTS),
    "steps": Option(30, "free relaxation steps of forward() (BP through time on this model, and the default "
                    "evaluation of models trained by bp)", minimum=1),
    "init": Option("haiku", "weight init: haiku (authors') or glorot (Scellier & Bengio)", choices=INITS),
    "dtype": Option("float32", "parameter dtype", choices=tuple(DTYPES)),
    "seed": Option(-1, "init seed (-1: from torch's global RNG, which the trainer seeds)", minimum=-1),
}


@register_model("energy-mlp", "layered energy-based net (EP): 784-256-256 states, my-sigmoid, linear readout",
                options=ENERGY_MLP_OPTIONS, epochs=10, lr=0.05, optimizer="sgd", batch_size=20, schedule="cosine",
                normalization="unit")
def build_energy_mlp(input_shape: tuple[int, ...], num_classes: int, **options: object) -> EnergyMLP:
    """The energy MLP of the module docstring (options: :data:`ENERGY_MLP_OPTIONS`)."""
    unknown = set(options) - set(ENERGY_MLP_OPTIONS)
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(sorted(unknown))}; valid: {', '.join(ENERGY_MLP_OPTIONS)}")
    values = {key: options.get(key, option.default) for key, option in ENERGY_MLP_OPTIONS.items()}
    if values["dtype"] not in DTYPES:
        raise ValueError(f"option 'dtype' takes one of {', '.join(DTYPES)}, got {values['dtype']!r}")
    seed = int(values["seed"])
    return EnergyMLP(math.prod(input_shape), check_widths("hidden", values["hidden"]), num_classes,
                     str(values["activation"]), str(values["output"]), int(values["steps"]), str(values["init"]),
                     DTYPES[str(values["dtype"])], init_generator(None if seed < 0 else seed))


__all__ = ["ACTIVATIONS", "LOSSES", "EnergyMLP", "activate", "batch_loss", "build_energy_mlp",
           "EnergyNetwork", "fixed_point_gradients", "is_energy_network", "loss_derivative"]
