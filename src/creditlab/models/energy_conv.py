"""Convolutional energy-based network for EP on CIFAR-10 (Laborieux et al. 2021's P-CNN).

Primitive function (their ``P_CNN``; Laborieux & Zenke 2022's ``xent_phi``), states s_1..s_K of shape
(batch, C_k, H_k, W_k), s_0 = x::

    Φ(x, s) = Σ_{k=1..K} P(conv_k(s_{k-1})) · s_k,   o = W_r vec(s_K) + b_r,   F = Φ − β Σ_n ℓ(o_n, y_n)

with 3×3 convolutions (padding 1, 1, 1, 0: the authors' ``--paddings``) and 2×2 pooling P of stride 2
(``max``, the 2021 paper's, or
``avg``, which keeps the dynamics holomorphic so that ``hep`` can train the net). The relaxation is
s ← σ(∂F/∂s); ∂F/∂s and ∂F/∂θ come from autograd on Φ (the authors' ``grad(phi)`` too), in complex
arithmetic for hEP (torch returns the conjugate of the holomorphic derivative, which is undone).
Default channels (128, 256, 512, 512) on 32×32 inputs: 32 → 16 → 8 → 4 → 1, readout 512 → 10
(Laborieux-Axel/Equilibrium-Propagation's CIFAR-10 command: ``--channels 128 256 512 512 --pools mmmm
--paddings 1 1 1 0 --act my_hard_sig``; ``hard-sigmoid`` here is their my_hard_sig).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as functional

from creditlab.models import check_widths, register_model
from creditlab.models.energy import ACTIVATIONS, DTYPES, TRAINED_BY, EnergyNetwork, Params
from creditlab.models.vnn import init_generator
from creditlab.options import Option

POOLINGS = ("max", "avg")


def _holomorphic_grad(output: torch.Tensor, inputs: Sequence[torch.Tensor], create_graph: bool
                      ) -> list[torch.Tensor]:
    """d output / d inputs (output summed), the holomorphic derivative for complex tensors."""
    seed = torch.ones_like(output) if output.is_complex() else None
    grads = torch.autograd.grad(output, list(inputs), seed, create_graph=create_graph, allow_unused=True)
    out = [torch.zeros_like(i) if g is None else g for g, i in zip(grads, inputs, strict=True)]
    return [g.conj() if g.is_complex() else g for g in out]


class EnergyConvNet(EnergyNetwork):
    """Conv states with pooling and a linear readout (module docstring). x: (batch, C, H, W) -> (batch, classes)."""

    def __init__(self, input_shape: tuple[int, int, int], channels: Sequence[int], num_classes: int,
                 activation: str = "my-sigmoid", pooling: str = "max", steps: int = 30,
                 paddings: Sequence[int] | None = None,
                 dtype: torch.dtype = torch.float32, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"option 'activation' takes one of {', '.join(ACTIVATIONS)}, got {activation!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"option 'pooling' takes one of {', '.join(POOLINGS)}, got {pooling!r}")
        paddings = [1] * len(channels) if paddings is None else [int(p) for p in paddings]
        if len(paddings) != len(channels) or any(p not in (0, 1) for p in paddings):
            raise ValueError(f"option 'paddings' takes one 0 or 1 per conv layer ({len(channels)}), got {paddings}")
        size = min(input_shape[1], input_shape[2])
        for padding in paddings:
            size = (size + 2 * padding - 2) // 2
        if size < 1:
            raise ValueError(f"{len(channels)} pooled conv layers with paddings {paddings} leave no pixel of an "
                             f"input of shape {tuple(input_shape)}")
        self.paddings = paddings
        self.activation, self.pooling, self.steps, self.output_kind = activation, pooling, int(steps), "readout"
        self.holomorphic_pooling = pooling == "avg"
        self.num_classes, self.trained_by = num_classes, TRAINED_BY
        generator = generator if generator is not None else init_generator(None)
        self.state_shapes: list[tuple[int, int, int]] = []
        self.layers = nn.ModuleList()
        height, width, below = input_shape[1], input_shape[2], input_shape[0]
        for count, padding in zip(channels, paddings, strict=True):
            conv = nn.Conv2d(below, count, 3, padding=padding, dtype=dtype)
            self.layers.append(conv)
            height, width = (height + 2 * padding - 2) // 2, (width + 2 * padding - 2) // 2
            below = count
            self.state_shapes.append((count, height, width))
        self.layers.append(nn.Linear(below * height * width, num_classes, dtype=dtype))
        with torch.no_grad():
            for layer in self.layers:  # the authors' VarianceScaling(fan_avg) analogue: Glorot uniform
                fan_in = layer.weight[0].numel()
                fan_out = layer.weight.shape[0] * (layer.weight[0, 0].numel() if layer.weight.dim() == 4 else 1)
                bound = math.sqrt(6.0 / (fan_in + fan_out))
                nn.init.uniform_(layer.weight, -bound, bound, generator=generator)
                layer.bias.zero_()

    def flatten_input(self, x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The image batch itself, in ``dtype`` (the model's by default)."""
        return x.to(dtype or self.dtype)

    def initial_state(self, batch: int, dtype: torch.dtype, device: torch.device) -> list[torch.Tensor]:
        """s = 0 in every state layer."""
        return [torch.zeros(batch, *shape, dtype=dtype, device=device) for shape in self.state_shapes]

    def _pool(self, u: torch.Tensor) -> torch.Tensor:
        if self.pooling == "avg":
            if u.is_complex():
                return torch.complex(functional.avg_pool2d(u.real, 2), functional.avg_pool2d(u.imag, 2))
            return functional.avg_pool2d(u, 2)
        return functional.max_pool2d(u, 2)

    def _conv(self, params: Params, k: int, below: torch.Tensor) -> torch.Tensor:
        weight, bias, pad = params[2 * k], params[2 * k + 1], self.paddings[k]
        if below.is_complex():  # conv2d has no complex kernel on every backend: four real convolutions
            real = functional.conv2d(below.real, weight.real, bias.real, padding=pad) - functional.conv2d(
                below.imag, weight.imag, None, padding=pad)
            imag = functional.conv2d(below.real, weight.imag, bias.imag, padding=pad) + functional.conv2d(
                below.imag, weight.real, None, padding=pad)
            return torch.complex(real, imag)
        return functional.conv2d(below, weight, bias, padding=pad)

    def phi(self, params: Params, x: torch.Tensor, states: Sequence[torch.Tensor]) -> torch.Tensor:
        """Φ summed over the batch (module docstring)."""
        below, total = x, 0.0
        for k, state in enumerate(states):
            total = total + (self._pool(self._conv(params, k, below)) * state).sum()
            below = state
        return total

    def output(self, params: Params, states: Sequence[torch.Tensor]) -> torch.Tensor:
        """o = W_r vec(s_K) + b_r."""
        return states[-1].reshape(states[-1].shape[0], -1) @ params[-2].T + params[-1]

    def _total(self, params: Params, x: torch.Tensor, states: Sequence[torch.Tensor], beta: complex | float,
               onehot: torch.Tensor | None, loss: str) -> torch.Tensor:
        total = self.phi(params, x, states)
        if beta != 0:
            output = self.output(params, states)
            if loss == "ce":
                shift = output.real.amax(dim=1, keepdim=True).detach()
                log_norm = shift + torch.log(torch.exp(output - shift).sum(dim=1, keepdim=True))
                per_sample = -(onehot * (output - log_norm)).sum(dim=1)
            else:
                per_sample = 0.5 * ((output - onehot) ** 2).sum(dim=1)
            total = total - beta * per_sample.sum()
        return total

    def drive(self, params: Params, x: torch.Tensor, states: Sequence[torch.Tensor], beta: complex | float = 0.0,
              onehot: torch.Tensor | None = None, loss: str = "ce") -> list[torch.Tensor]:
        """∂F/∂s_k by autograd (differentiable itself when grad mode is on: implicit differentiation)."""
        graph = torch.is_grad_enabled()
        with torch.enable_grad():
            tracked = [s if s.requires_grad else s.detach().requires_grad_(True) for s in states]
            return _holomorphic_grad(self._total(params, x, tracked, beta, onehot, loss), tracked, graph)

    def energy_gradients(self, params: Params, x: torch.Tensor, states: Sequence[torch.Tensor],
                         beta: complex | float = 0.0, onehot: torch.Tensor | None = None, loss: str = "ce"
                         ) -> Params:
        """∂F/∂θ at the given state, batch mean (local: each layer's own pre- and post-synaptic states)."""
        with torch.enable_grad():
            tracked = [p.detach().requires_grad_(True) for p in params]
            grads = _holomorphic_grad(self._total(tracked, x, [s.detach() for s in states], beta, onehot, loss),
                                      tracked, False)
        return [g / x.shape[0] for g in grads]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """o after ``steps`` free iterations from s = 0 (differentiable: BPTT through the relaxation)."""
        params = list(self.parameters())
        inputs = self.flatten_input(x)
        return self.output(params, self.relax(params, inputs, self.initial_state(x.shape[0], self.dtype, x.device),
                                              self.steps))


ENERGY_CONVNET_OPTIONS = {
    "channels": Option([128, 256, 512, 512], "channels of the conv state layers (each pooled 2x2)", minimum=1),
    "activation": Option("my-sigmoid", "σ of the state layers", choices=ACTIVATIONS),
    "paddings": Option([1, 1, 1, 0], "conv padding per layer, 0 or 1 (the authors': 1 1 1 0)", minimum=0, maximum=1),
    "pooling": Option("max", "2x2 pooling: max (Laborieux et al. 2021) or avg (holomorphic: hep)", choices=POOLINGS),
    "steps": Option(30, "free relaxation steps of forward() (bp through time)", minimum=1),
    "dtype": Option("float32", "parameter dtype", choices=tuple(DTYPES)),
    "seed": Option(-1, "init seed (-1: from torch's global RNG, which the trainer seeds)", minimum=-1),
}


@register_model("energy-convnet", "conv energy-based net (EP, Laborieux et al. 2021): 4 pooled conv states, readout",
                default_dataset="cifar10", options=ENERGY_CONVNET_OPTIONS, epochs=120, lr=0.05, optimizer="sgd",
                batch_size=128, schedule="cosine", normalization="standard")
def build_energy_convnet(input_shape: tuple[int, ...], num_classes: int, **options: object) -> EnergyConvNet:
    """The conv energy net of the module docstring (options: :data:`ENERGY_CONVNET_OPTIONS`)."""
    unknown = set(options) - set(ENERGY_CONVNET_OPTIONS)
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(sorted(unknown))}; valid: {', '.join(ENERGY_CONVNET_OPTIONS)}")
    values = {key: options.get(key, option.default) for key, option in ENERGY_CONVNET_OPTIONS.items()}
    if values["dtype"] not in DTYPES:
        raise ValueError(f"option 'dtype' takes one of {', '.join(DTYPES)}, got {values['dtype']!r}")
    seed = int(values["seed"])
    shape = tuple(int(v) for v in input_shape)
    return EnergyConvNet((shape[0], shape[1], shape[2]), check_widths("channels", values["channels"]), num_classes,
                         str(values["activation"]), str(values["pooling"]), int(values["steps"]),
                         [int(p) for p in values["paddings"]],
                         DTYPES[str(values["dtype"])], init_generator(None if seed < 0 else seed))


__all__ = ["POOLINGS", "EnergyConvNet", "build_energy_convnet"]
