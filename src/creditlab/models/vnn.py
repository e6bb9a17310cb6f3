"""Vectorized nonnegative networks (VNNs) and their conventional aReLU baselines.

Clark, Abbott & Chung, "Credit Assignment Through Broadcasting a Global Error Vector" (NeurIPS 2021).
A VNN has vector units of K = num_classes components, scalar weights shared across components, a
gate G_i = 1[t_i . h_i >= 0] per unit, and a one-unit vector readout whose K components are the
logits. The "+" (nonnegative) variant clamps every weight past the first layer to >= 0 after each
optimizer step (``apply_constraints``) and starts from the ON/OFF initialization.

Because gates are piecewise constant and weights are shared across components, the gradient of the
loss w.r.t. any vector unit is ``delta_i * e`` with a *scalar* credit delta_i and the output error
e = dL/dz. :meth:`VectorizedNet.backprop_update` computes the exact gradient on that scalar credit,
K times cheaper than autograd through the vector units (rule ``bp`` uses it).

Registered models: ``vnn-fc``, ``vnn-conv``, ``vnn-lc`` (option ``mixed_sign``) and the conventional
baselines ``arelu-fc``, ``arelu-conv``, ``arelu-lc`` (option ``nonnegative``), all with the authors'
layouts for 1x28x28 (MNIST) and 3x32x32 (CIFAR-10) inputs and their training protocol (Adam 3e-4,
batch 128, inputs in [-1, 1], at most 200 epochs, stop at 100% train accuracy).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

from creditlab.analysis.alignment import mean_example_angle
from creditlab.models import check_widths, register_model
from creditlab.models.vnn_layers import (
    AlternatingReLU,
    LocallyConnected2d,
    VecAvgPool2d,
    VecConv2d,
    VecFlatten,
    VecGate,
    VecInputConv2d,
    VecInputLinear,
    VecInputLocal2d,
    VecLinear,
    VecLocal2d,
    VecShapeLayer,
    VecWeightLayer,
    conv_output_size,
    init_hidden_weight_,
    init_input_weight_,
)

if TYPE_CHECKING:  # rules import this module; importing rules here at run time would be circular
    from creditlab.rules.base import StepOutput

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: a layer of a layout: ("fc", width) | ("conv", channels, kernel, stride, padding)
#: | ("lc", channels, kernel, stride, padding) | ("pool", size). Every fc/conv/lc is followed by a
#: gate (VNN) or an aReLU (conventional); the readout is appended.
LayerSpec = tuple
Layout = tuple[LayerSpec, ...]

LAYOUTS: dict[str, dict[str, Layout]] = {
    "fc": {"mnist": (("fc", 1024), ("fc", 512)),
           "cifar": (("fc", 1024), ("fc", 512), ("fc", 512))},
    "conv": {"mnist": (("conv", 64, 3, 1, 1), ("pool", 2), ("conv", 32, 3, 1, 1), ("pool", 2), ("fc", 1024)),
             "cifar": (("conv", 128, 5, 1, 2), ("pool", 2), ("conv", 64, 5, 1, 2), ("pool", 2),
                       ("conv", 64, 2, 2, 0), ("fc", 1024))},
    "lc": {"mnist": (("lc", 32, 3, 1, 1), ("pool", 2), ("lc", 32, 3, 1, 1), ("pool", 2), ("fc", 1024)),
           "cifar": (("lc", 64, 5, 1, 2), ("pool", 2), ("lc", 32, 5, 1, 2), ("pool", 2),
                     ("lc", 32, 2, 2, 0), ("fc", 256))},
}
#: the conventional CIFAR-10 LC net of the authors' code has a 512-unit dense layer, not 256
CONVENTIONAL_OVERRIDES: dict[tuple[str, str], Layout] = {
    ("lc", "cifar"): LAYOUTS["lc"]["cifar"][:-1] + (("fc", 512),),
}

#: the authors' protocol (train_models.py): Adam 3e-4, batch 128, Normalize(0.5, 0.5), <= 200 epochs,
#: stop at 100% train accuracy
PAPER_DEFAULTS: dict[str, object] = dict(epochs=200, lr=3e-4, optimizer="adam", batch_size=128,
                                         normalization="symmetric", stop_at_train_accuracy=1.0)


def layout_for(kind: str, input_shape: tuple[int, ...]) -> Layout:
    """The authors' layout of ``kind`` (fc, conv, lc) for inputs of shape (C, H, W)."""
    channels, height, width = input_shape
    if (channels, height, width) == (3, 32, 32):
        return LAYOUTS[kind]["cifar"]
    if kind == "fc" or (height % 4 == 0 and width % 4 == 0 and channels == 1):
        return LAYOUTS[kind]["mnist"]
    raise ValueError(f"no {kind} layout for inputs of shape {input_shape}: the paper's layouts take 1x28x28 "
                     f"(MNIST-like) or 3x32x32 (CIFAR-10) images")


def init_generator(seed: int | None) -> torch.Generator:
    """A CPU generator for initialization; ``None`` draws its seed from torch's global RNG (which the
    trainer seeds)."""
    if seed is None:
        seed = int(torch.randint(0, 2**62, ()).item())
    return torch.Generator().manual_seed(int(seed))


# -- the vectorized network --------------------------------------------------------------------------

@dataclass
class ForwardRecord:
    """What a VNN forward pass keeps for the credit-assignment rules.

    logits: (batch, K); layer_inputs[i]: the input of layer i (weight and shape layers);
    gate_masks[i]: G of gate layer i, (batch, units, *spatial).
    """

    logits: torch.Tensor
    layer_inputs: dict[int, torch.Tensor] = field(default_factory=dict)
    gate_masks: dict[int, torch.Tensor] = field(default_factory=dict)


def output_error(logits: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, e) with e = dL/dz (batch, K); for mean cross-entropy e = (softmax(z) - onehot(y)) / batch.

    Mean cross-entropy on class indices (the GEVB protocol) takes that closed form directly; any other
    loss gets e from autograd on the logits alone (no graph through the network either way).
    """
    if loss_fn is F.cross_entropy and logits.dim() == 2 and not targets.is_floating_point():
        log_probs = torch.log_softmax(logits.detach(), dim=1)
        loss = F.nll_loss(log_probs, targets)
        error = log_probs.exp()
        error.scatter_add_(1, targets.view(-1, 1), error.new_full((len(targets), 1), -1.0))
        return loss, error / len(targets)
    with torch.enable_grad():
        z = logits.detach().requires_grad_(True)
        loss = loss_fn(z, targets)
        (error,) = torch.autograd.grad(loss, z)
    return loss.detach(), error


class VectorizedNet(nn.Module):
    """A VNN: input weight layer -> gate -> [pool] -> ... -> readout ``VecLinear(., 1)``.

    x: (batch, *input_shape) -> logits (batch, K). Every weight layer but the readout is followed
    directly by a :class:`VecGate` (the structure GEVB's update needs).
    """

    def __init__(self, layers: Sequence[nn.Module], num_components: int, nonnegative: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.num_components = num_components
        self.nonnegative = nonnegative
        self._check_structure()

    def _check_structure(self) -> None:
        layers = list(self.layers)
        if not layers or not isinstance(layers[0], VecWeightLayer) or not layers[0].is_input_layer:
            raise ValueError("a VectorizedNet starts with an input layer (VecInputLinear/Conv2d/Local2d)")
        readout = layers[-1]
        if not isinstance(readout, VecLinear) or readout.out_features != 1:
            raise ValueError("a VectorizedNet ends with a one-unit vector readout VecLinear(in, 1)")
        for index, layer in enumerate(layers):
            if isinstance(layer, VecWeightLayer):
                if index > 0 and layer.is_input_layer:
                    raise ValueError(f"layer {index}: only the first layer may read the raw input")
                if layer.num_components != self.num_components:
                    raise ValueError(f"layer {index} has {layer.num_components} components, the net "
                                     f"{self.num_components}")
                if index < len(layers) - 1 and not isinstance(layers[index + 1], VecGate):
                    raise ValueError(f"weight layer {index} must be followed by a VecGate")
            elif not isinstance(layer, VecGate | VecShapeLayer):
                raise ValueError(f"layer {index} ({type(layer).__name__}) is not a VNN layer")

    def weight_layers(self) -> list[tuple[int, VecWeightLayer]]:
        """(index, layer) of every weight layer, input layer first, readout last."""
        return [(i, layer) for i, layer in enumerate(self.layers) if isinstance(layer, VecWeightLayer)]

    def _gate_mask(self, index: int, gate: VecGate, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """G of gate ``index``; a first conv layer gives the first gate's scores from the raw input."""
        first = self.layers[0]
        if index == 1 and hasattr(first, "gate_scores"):
            with torch.no_grad():
                return gate.mask_from_scores(first.gate_scores(x, gate.t))
        return gate.gate_mask(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        a = x
        first = 0
        if not torch.is_grad_enabled():  # evaluation: the chunked first block (autograd needs it whole)
            fused = self._fused_first_block(x)
            if fused is not None:
                a, first = fused[1], 3
        for index, layer in enumerate(self.layers):
            if index < first:
                continue
            if isinstance(layer, VecGate):
                a = layer.apply_mask(a, self._gate_mask(index, layer, a, x))
            else:
                a = layer(a)
        return a[..., 0]

    #: examples per chunk of the fused first conv -> gate -> pool block on a CPU (about 16 MB of
    #: activations each for the MNIST Conv-Vec net, so the block stays in cache instead of writing 250 MB
    #: per batch). On a GPU the block runs on the whole batch: chunks there only add kernel launches.
    first_block_chunk = 8
    #: False: always run layer by layer (every layer input then sits in the forward record)
    fuse_first_block = True

    def _fused_first_block(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Size] | None:
        """Input conv -> gate -> 2x2 pool computed chunk by chunk without an autograd graph: (gate mask,
        pooled activation, shape of the gated activation), or None where the net does not start that way.
        The (batch, K, channels, H, W) activation of the first layer is never held whole."""
        if not self.fuse_first_block or len(self.layers) < 4 or not (isinstance(self.layers[0], VecInputConv2d)
                                         and isinstance(self.layers[1], VecGate)
                                         and isinstance(self.layers[2], VecAvgPool2d)):
            return None
        conv, gate, pool = self.layers[0], self.layers[1], self.layers[2]
        masks, pooled = [], []
        gated_shape = None
        chunk_size = self.first_block_chunk if x.device.type == "cpu" else len(x)
        for chunk in x.split(chunk_size):
            h = conv(chunk)
            mask = self._gate_mask(1, gate, h, chunk)
            gated = gate.apply_mask(h, mask)
            gated_shape = gated.shape[1:]
            masks.append(mask)
            pooled.append(pool(gated))
        return torch.cat(masks), torch.cat(pooled), torch.Size((len(x), *gated_shape))

    @torch.no_grad()
    def record_forward(self, x: torch.Tensor) -> ForwardRecord:
        """Forward pass keeping every layer's input and every gate mask (no autograd graph)."""
        record = ForwardRecord(logits=x)
        a = x
        first = 0
        fused = self._fused_first_block(x)
        if fused is not None:
            mask, a, gated_shape = fused
            record.layer_inputs[0], record.gate_masks[1] = x, mask
            record.layer_inputs[2] = x.new_empty(gated_shape, device="meta")  # the pool's input: shape only
            first = 3
        for index, layer in enumerate(self.layers):
            if index < first:
                continue
            if isinstance(layer, VecGate):
                mask = self._gate_mask(index, layer, a, x)
                record.gate_masks[index] = mask
                a = layer.apply_mask(a, mask)
            else:
                record.layer_inputs[index] = a
                a = layer(a)
        record.logits = a[..., 0]
        return record

    @torch.no_grad()
    def backprop_credits(self, record: ForwardRecord
                         ) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
        """Exact scalar credits: delta at every weight layer's output, and the credit before each gate.

        delta^L = 1 at the readout; delta^l_i = G^l_i sum_m W^{l+1}_mi delta^{l+1}_m (through pooling
        and flatten as usual). Returns ({weight-layer index: delta (batch, *units)},
        {gate index: dL/da before gating, (batch, *units)}); independent of the error vector.
        """
        batch = len(record.logits)
        credit = record.logits.new_ones(batch, 1)
        unit_credit: dict[int, torch.Tensor] = {}
        pre_gate: dict[int, torch.Tensor] = {}
        for index in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[index]
            if isinstance(layer, VecWeightLayer):
                unit_credit[index] = credit
                if index == 0:
                    break
                credit = layer.input_credit(credit, record.layer_inputs[index].shape)
            elif isinstance(layer, VecGate):
                pre_gate[index] = credit
                credit = credit * record.gate_masks[index]
            else:
                assert isinstance(layer, VecShapeLayer)
                credit = layer.credit_backward(credit, record.layer_inputs[index].shape)
        return unit_credit, pre_gate

    def exact_gradients(self, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn
                        ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """(gradients by parameter name, loss, logits): backprop on the scalar credit (no autograd graph).

        dL/dW_ij = sum_b delta_bi (e_b . a_bj); dL/db_ki = sum_b delta_bi e_bk.
        """
        record = self.record_forward(inputs)
        loss, error = output_error(record.logits, targets, loss_fn)
        unit_credit, _ = self.backprop_credits(record)
        grads: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for index, layer in self.weight_layers():
                grad_weight, grad_bias = layer.parameter_grads(record.layer_inputs[index], unit_credit[index],
                                                               error)
                grads[f"layers.{index}.weight"], grads[f"layers.{index}.bias"] = grad_weight, grad_bias
        return grads, loss, record.logits

    def backprop_update(self, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn) -> StepOutput:
        """Write the exact gradient into ``.grad`` (rule ``bp`` calls this instead of autograd)."""
        from creditlab.rules.base import StepOutput

        grads, loss, logits = self.exact_gradients(inputs, targets, loss_fn)
        for name, param in self.named_parameters():
            param.grad = grads[name]
        return StepOutput(loss, logits)

    @torch.no_grad()
    def apply_constraints(self) -> None:
        """Nonnegative variant: project every weight past the first layer (readout included) onto >= 0."""
        if not self.nonnegative:
            return
        for index, layer in self.weight_layers():
            if index > 0:
                layer.weight.clamp_(min=0)


@torch.no_grad()
def credit_alignment_angles(model: VectorizedNet, inputs: torch.Tensor) -> list[float]:
    """The authors' alignment metric, per hidden layer (degrees), first hidden layer first.

    For each gate: the angle between the exact scalar credit dL/da (before the unit's own gate, a
    vector over units and positions per example) and the all-ones vector (GEVB's implicit credit),
    averaged over the examples whose credit is nonzero. inputs: (batch, *input_shape).
    """
    record = model.record_forward(inputs)
    _, pre_gate = model.backprop_credits(record)
    angles = []
    for index in sorted(pre_gate):
        credit = pre_gate[index].reshape(len(inputs), -1)
        angles.append(mean_example_angle(credit, torch.ones_like(credit)))
    return angles


def build_vectorized(input_shape: tuple[int, ...], num_classes: int, layout: Layout, nonnegative: bool,
                     generator: torch.Generator) -> VectorizedNet:
    """A VectorizedNet for inputs (C, H, W) from a layout (see ``LAYOUTS``); gates and readout are added."""
    k = num_classes
    channels, height, width = input_shape
    layers: list[nn.Module] = []
    spatial: tuple[int, int, int] | None = (channels, height, width)
    features = channels * height * width
    for spec in layout:
        first = not layers
        kind = spec[0]
        if kind in ("conv", "lc"):
            if spatial is None:
                raise ValueError(f"layer {spec}: a spatial layer cannot follow a dense one")
            out, kernel, stride, padding = spec[1:]
            in_ch, size = spatial[0], (spatial[1], spatial[2])
            if kind == "conv":
                cls = VecInputConv2d if first else VecConv2d
                layers.append(cls(in_ch, out, kernel, k, nonnegative, generator, stride=stride,
                                  padding=padding))
            else:
                cls = VecInputLocal2d if first else VecLocal2d
                layers.append(cls(in_ch, out, kernel, size, k, nonnegative, generator, stride=stride,
                                  padding=padding))
            out_size = conv_output_size(size, (kernel, kernel), (stride, stride), (padding, padding))
            spatial = (out, *out_size)
            layers.append(VecGate(out, k, generator))
        elif kind == "pool":
            if spatial is None or first:
                raise ValueError(f"layer {spec}: pooling needs a preceding spatial layer")
            layers.append(VecAvgPool2d(spec[1]))
            spatial = (spatial[0], spatial[1] // spec[1], spatial[2] // spec[1])
        elif kind == "fc":
            if first:
                layers.append(VecInputLinear(features, spec[1], k, nonnegative, generator))
            else:
                if spatial is not None:
                    layers.append(VecFlatten())
                    features = math.prod(spatial)
                layers.append(VecLinear(features, spec[1], k, nonnegative, generator))
            spatial, features = None, spec[1]
            layers.append(VecGate(spec[1], k, generator))
        else:
            raise ValueError(f"unknown layer kind {kind!r} in layout (fc, conv, lc, pool)")
    if spatial is not None:
        layers.append(VecFlatten())
        features = math.prod(spatial)
    layers.append(VecLinear(features, 1, k, nonnegative, generator))
    return VectorizedNet(layers, k, nonnegative)


# -- conventional baselines (aReLU) ------------------------------------------------------------------

class AReluNet(nn.Sequential):
    """Conventional baseline: a plain stack of Linear / Conv2d / LocallyConnected2d, aReLU, AvgPool2d,
    Flatten, ending in Linear(., num_classes). ``nonnegative`` clamps weights past the first layer.

    x: (batch, C, H, W) -> logits (batch, num_classes).
    """

    def __init__(self, layers: Sequence[nn.Module], nonnegative: bool) -> None:
        super().__init__(*layers)
        self.nonnegative = nonnegative

    def weight_layers(self) -> list[nn.Module]:
        """Every layer with a weight, first layer first."""
        return [m for m in self if isinstance(m, nn.Linear | nn.Conv2d | LocallyConnected2d)]

    @torch.no_grad()
    def apply_constraints(self) -> None:
        """Nonnegative variant ("+", DFA+): clamp every weight past the first layer to >= 0."""
        if not self.nonnegative:
            return
        for layer in self.weight_layers()[1:]:
            layer.weight.clamp_(min=0)


def build_conventional(input_shape: tuple[int, ...], num_classes: int, layout: Layout, nonnegative: bool,
                       generator: torch.Generator) -> AReluNet:
    """The conventional net of a layout: same widths, aReLU, a num_classes-unit readout, ON/OFF or He init."""
    channels, height, width = input_shape
    layers: list[nn.Module] = []
    spatial: tuple[int, int, int] | None = (channels, height, width)
    if layout and layout[0][0] == "fc":
        layers.append(nn.Flatten())
    features = channels * height * width
    weights: list[tuple[nn.Module, int]] = []  # (layer, fan_in)
    for spec in layout:
        kind = spec[0]
        if kind in ("conv", "lc"):
            assert spatial is not None
            out, kernel, stride, padding = spec[1:]
            size = (spatial[1], spatial[2])
            if kind == "conv":
                layer: nn.Module = nn.Conv2d(spatial[0], out, kernel, stride=stride, padding=padding)
            else:
                layer = LocallyConnected2d(spatial[0], out, kernel, size, stride=stride, padding=padding,
                                           generator=generator)
            weights.append((layer, spatial[0] * kernel * kernel))
            out_size = conv_output_size(size, (kernel, kernel), (stride, stride), (padding, padding))
            spatial = (out, *out_size)
            layers += [layer, AlternatingReLU()]
        elif kind == "pool":
            layers.append(nn.AvgPool2d(spec[1]))
            assert spatial is not None
            spatial = (spatial[0], spatial[1] // spec[1], spatial[2] // spec[1])
        elif kind == "fc":
            if spatial is not None and layers:
                layers.append(nn.Flatten())
                features = math.prod(spatial)
            layer = nn.Linear(features, spec[1])
            weights.append((layer, features))
            layers += [layer, AlternatingReLU()]
            spatial, features = None, spec[1]
        else:
            raise ValueError(f"unknown layer kind {kind!r} in layout (fc, conv, lc, pool)")
    if spatial is not None:
        layers.append(nn.Flatten())
        features = math.prod(spatial)
    readout = nn.Linear(features, num_classes)
    weights.append((readout, features))
    layers.append(readout)
    with torch.no_grad():
        for position, (layer, fan_in) in enumerate(weights):
            # the authors' init_model: ON/OFF or He (first layer N(0, 1/fan_in)); biases zero
            weight = layer.weight.unsqueeze(0) if position == 0 else layer.weight
            if position == 0:
                init_input_weight_(weight, fan_in, nonnegative, generator)
            else:
                init_hidden_weight_(weight, fan_in, nonnegative, generator)
            layer.bias.zero_()
    return AReluNet(layers, nonnegative)


# -- registry ----------------------------------------------------------------------------------------

def _vnn_builder(kind: str):  # noqa: ANN202
    def build(input_shape: tuple[int, ...], num_classes: int, mixed_sign: bool = False,
              hidden: Sequence[int] | None = None, seed: int | None = None) -> VectorizedNet:
        layout = layout_for(kind, input_shape)
        if hidden is not None:
            if kind != "fc":
                raise ValueError("option 'hidden' (dense widths) applies to vnn-fc only")
            layout = tuple(("fc", w) for w in check_widths("hidden", hidden))
        return build_vectorized(input_shape, num_classes, layout, not mixed_sign, init_generator(seed))

    build.__doc__ = (f"The authors' {kind.upper()}-Vec network for (C, H, W) inputs; ``mixed_sign`` drops "
                     f"the nonnegative constraint and ON/OFF init; ``hidden`` sets dense widths (fc only).")
    return build


def _arelu_builder(kind: str):  # noqa: ANN202
    def build(input_shape: tuple[int, ...], num_classes: int, nonnegative: bool = False,
              hidden: Sequence[int] | None = None, seed: int | None = None) -> AReluNet:
        layout = layout_for(kind, input_shape)
        dataset = "cifar" if tuple(input_shape) == (3, 32, 32) else "mnist"
        layout = CONVENTIONAL_OVERRIDES.get((kind, dataset), layout)
        if hidden is not None:
            if kind != "fc":
                raise ValueError("option 'hidden' (dense widths) applies to arelu-fc only")
            layout = tuple(("fc", w) for w in check_widths("hidden", hidden))
        return build_conventional(input_shape, num_classes, layout, nonnegative, init_generator(seed))

    build.__doc__ = (f"The authors' conventional {kind.upper()} baseline (aReLU, same widths); "
                     f"``nonnegative`` uses ON/OFF init and clamps weights past the first layer.")
    return build


build_vnn_fc = register_model(
    "vnn-fc", "vectorized nonnegative FC net (Clark et al. 2021); --mixed-sign for the mixed one",
    **PAPER_DEFAULTS)(_vnn_builder("fc"))
build_vnn_conv = register_model(
    "vnn-conv", "vectorized nonnegative conv net (Clark et al. 2021); --mixed-sign for the mixed one",
    **PAPER_DEFAULTS)(_vnn_builder("conv"))
build_vnn_lc = register_model(
    "vnn-lc", "vectorized nonnegative locally connected net (Clark et al. 2021); --mixed-sign: mixed one",
    **PAPER_DEFAULTS)(_vnn_builder("lc"))
build_arelu_fc = register_model(
    "arelu-fc", "conventional FC baseline of the VNN paper (aReLU); --nonnegative for the '+' variant",
    **PAPER_DEFAULTS)(_arelu_builder("fc"))
build_arelu_conv = register_model(
    "arelu-conv", "conventional conv baseline of the VNN paper (aReLU); --nonnegative for the '+' variant",
    **PAPER_DEFAULTS)(_arelu_builder("conv"))
build_arelu_lc = register_model(
    "arelu-lc", "conventional locally connected baseline of the VNN paper (aReLU); --nonnegative for '+'",
    **PAPER_DEFAULTS)(_arelu_builder("lc"))

VNN_MODEL_NAMES = ("vnn-fc", "vnn-conv", "vnn-lc")

__all__ = ["AReluNet", "ForwardRecord", "LAYOUTS", "PAPER_DEFAULTS", "VNN_MODEL_NAMES", "VectorizedNet",
           "build_conventional", "build_vectorized", "credit_alignment_angles", "layout_for", "output_error",
           "init_generator"]
