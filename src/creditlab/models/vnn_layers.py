"""Layers of vectorized nonnegative networks (VNNs; Clark, Abbott & Chung, NeurIPS 2021).

A VNN unit carries a vector of K components (K = number of classes). Activations are laid out
``(batch, K, units)`` for dense layers and ``(batch, K, channels, height, width)`` for spatial ones.
Scalar weights are shared across the K components; every unit has a vector bias of K entries.

Every weight layer offers two more operations than a forward pass, both on *scalar* per-unit
credits (the gradient w.r.t. a vector unit is always ``credit * error`` with ``error`` in R^K):

* ``parameter_grads(inputs, unit_credit, error)``: dW_ij = sum_b c_bi (e_b . a_bj), db_ki = sum_b c_bi e_bk;
* ``input_credit(unit_credit, input_shape)``: the scalar credit on the inputs, sum_i W_ij c_i.

The first layer takes the raw input x and stands for the authors' block-sparse input expansion
a^0_{k, k'D + j} = delta_{kk'} x_j without ever building it: its weight is stored as (K, out, D) (or
(K, out, C, kh, kw) for convolutions), component k reading its own block. That is K times less
memory and work than multiplying the dense K x K*D expansion.

Also here: the gate G_i = 1[t_i . h_i >= 0], per-component average pooling and flatten, the
ON/OFF initialization, and the conventional layers of the paper's baselines (aReLU, a locally
connected layer).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

Size2 = tuple[int, int]


def _pair(value: int | Size2) -> Size2:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _bmm(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Batched matmul on contiguous operands (CPU bmm on permuted views can be orders of magnitude slower)."""
    return torch.bmm(left.contiguous(), right.contiguous())


#: the most numbers one locally connected forward holds in its largest intermediate (patches or
#: per-position products) at once; a bigger batch runs in chunks of examples. Without it an
#: evaluation batch of 1000 CIFAR-10 images unfolds ~16 GB in the second VNN LC layer.
LOCAL_FORWARD_ELEMENTS = 1 << 26


def _in_batch_chunks(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                     elements_per_example: int) -> torch.Tensor:
    """``forward(x)``, run on chunks of the batch small enough for :data:`LOCAL_FORWARD_ELEMENTS`."""
    chunk = max(1, LOCAL_FORWARD_ELEMENTS // max(1, elements_per_example))
    if len(x) <= chunk:
        return forward(x)
    return torch.cat([forward(part) for part in x.split(chunk)])


def conv_output_size(size: Size2, kernel: Size2, stride: Size2, padding: Size2) -> Size2:
    """Spatial output size of a convolution or locally connected layer."""
    out = tuple((size[i] + 2 * padding[i] - kernel[i]) // stride[i] + 1 for i in range(2))
    if min(out) < 1:
        raise ValueError(f"kernel {kernel} with stride {stride} and padding {padding} does not fit input "
                         f"{size}")
    return out  # type: ignore[return-value]


# -- initialization ----------------------------------------------------------------------------------

def init_input_weight_(weight: torch.Tensor, fan_in: int, nonnegative: bool, generator: torch.Generator
                       ) -> None:
    """First-layer init, in place. ``weight``: (K, out, ...), component k's filters over its input block.

    N(0, 1/fan_in) per entry, fan_in counted per component (the authors' N(0, 1/(K*fan_in)) times
    sqrt(K)). ON/OFF (``nonnegative``): output units come in pairs, row 2m = w_m and row 2m+1 = -w_m.
    """
    num_components, out = weight.shape[:2]
    rest = tuple(weight.shape[2:])
    std = 1.0 / math.sqrt(fan_in)
    with torch.no_grad():
        if not nonnegative:
            weight.copy_(torch.randn(weight.shape, generator=generator) * std)
            return
        if out % 2:
            raise ValueError(f"ON/OFF initialization needs an even number of first-layer units, got {out}")
        half = torch.randn((num_components, out // 2) + rest, generator=generator) * std
        weight.copy_(torch.stack((half, -half), dim=2).reshape(weight.shape))


def init_hidden_weight_(weight: torch.Tensor, fan_in: int, nonnegative: bool, generator: torch.Generator
                        ) -> None:
    """Init of a layer past the first, in place. ``weight``: (out, in, ...).

    Mixed sign: He, N(0, 2/fan_in). ON/OFF: A ~ N(0, 4/fan_in) of shape (out/2, in/2, ...) and
    W[2m, 2n] = W[2m+1, 2n+1] = relu(A), W[2m, 2n+1] = W[2m+1, 2n] = relu(-A); a one-unit readout
    keeps only the even rows. With paired inputs (unit 2n+1 = -unit 2n) this computes exactly
    what a mixed-sign net of half the width with weights A computes.
    """
    out, inp = weight.shape[:2]
    rest = tuple(weight.shape[2:])
    with torch.no_grad():
        if not nonnegative:
            weight.copy_(torch.randn(weight.shape, generator=generator) * math.sqrt(2.0 / fan_in))
            return
        if inp % 2 or (out % 2 and out != 1):
            raise ValueError(f"ON/OFF initialization needs even fan-in and fan-out (or one output unit), "
                             f"got weight of shape {tuple(weight.shape)}")
        a = torch.randn((max(out // 2, 1), inp // 2) + rest, generator=generator) * (2.0 / math.sqrt(fan_in))
        on, off = F.relu(a), F.relu(-a)
        even_rows = torch.stack((on, off), dim=2).reshape((a.shape[0], inp) + rest)
        if out == 1:
            weight.copy_(even_rows)
            return
        odd_rows = torch.stack((off, on), dim=2).reshape((a.shape[0], inp) + rest)
        weight.copy_(torch.stack((even_rows, odd_rows), dim=1).reshape(weight.shape))


# -- vectorized weight layers ----------------------------------------------------------------------

class VecWeightLayer(nn.Module):
    """Base class of the VNN layers that hold weights (scalar weights shared across K components)."""

    #: True for the first layer, which reads the raw (unexpanded) input
    is_input_layer: ClassVar[bool] = False
    weight: nn.Parameter
    bias: nn.Parameter

    def parameter_grads(self, inputs: torch.Tensor, unit_credit: torch.Tensor, error: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """(grad_weight, grad_bias) for output credit ``unit_credit * error`` (scalar credit per unit).

        inputs: what this layer's forward received; unit_credit: (batch, *output units);
        error: (batch, K).
        """
        raise NotImplementedError

    def input_credit(self, unit_credit: torch.Tensor, input_shape: torch.Size) -> torch.Tensor:
        """Scalar credit on this layer's inputs, (batch, *input units), given the output credit."""
        raise NotImplementedError


class VecInputLinear(VecWeightLayer):
    """First dense layer: h_{k,i} = sum_j W[k, i, j] x_j + b[k, i], i.e. W_dense[i, k*D + j] = W[k, i, j].

    x: (batch, *input_shape) with D = prod(input_shape) -> h: (batch, K, out_features).
    """

    is_input_layer = True

    def __init__(self, in_features: int, out_features: int, num_components: int, nonnegative: bool,
                 generator: torch.Generator) -> None:
        super().__init__()
        self.in_features, self.out_features, self.num_components = in_features, out_features, num_components
        self.weight = nn.Parameter(torch.empty(num_components, out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(num_components, out_features))
        init_input_weight_(self.weight, in_features, nonnegative, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = x.flatten(1)
        if x.shape[1] != self.in_features:
            raise ValueError(f"first layer expects {self.in_features} input features, got {x.shape[1]}")
        flat_weight = self.weight.view(-1, self.in_features)  # (K*out, D): one GEMM for all components
        # W @ x^T rather than x @ W^T: the same product, 1.4x faster on CPU for this wide, short shape
        h = (torch.mm(flat_weight, x.t()).t() + self.bias.view(-1)).contiguous()
        return h.view(len(x), self.num_components, self.out_features)

    def parameter_grads(self, inputs: torch.Tensor, unit_credit: torch.Tensor, error: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        x = inputs.flatten(1)
        # e . a^0_j for the expanded input is e_{k(j)} x_j: the output credit c_i e_k times x_j
        output_grad = (error[:, :, None] * unit_credit[:, None, :]).reshape(len(x), -1)  # (B, K*out)
        grad_weight = (output_grad.t() @ x).view_as(self.weight)
        return grad_weight, error.t() @ unit_credit

    def dense_weight(self) -> torch.Tensor:
        """The authors' (out, K*D) weight acting on the block-sparse K x K*D expanded input."""
        return self.weight.permute(1, 0, 2).reshape(self.out_features, -1)


class VecLinear(VecWeightLayer):
    """Dense layer on vector units: h_{k,i} = sum_j W_ij a_{k,j} + b_{k,i}.

    a: (batch, K, in_features) -> h: (batch, K, out_features). ``out_features=1`` is the readout.
    """

    def __init__(self, in_features: int, out_features: int, num_components: int, nonnegative: bool,
                 generator: torch.Generator) -> None:
        super().__init__()
        self.in_features, self.out_features, self.num_components = in_features, out_features, num_components
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(num_components, out_features))
        init_hidden_weight_(self.weight, in_features, nonnegative, generator)

    def forward(self, a: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return F.linear(a, self.weight) + self.bias

    def parameter_grads(self, inputs: torch.Tensor, unit_credit: torch.Tensor, error: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        projected = torch.bmm(error.unsqueeze(1), inputs).squeeze(1)  # e_b . a_bj: (B, in)
        return unit_credit.t() @ projected, error.t() @ unit_credit

    def input_credit(self, unit_credit: torch.Tensor, input_shape: torch.Size) -> torch.Tensor:  # noqa: D102
        return unit_credit @ self.weight


class _SpatialMixin:
    kernel_size: Size2
    stride: Size2
    padding: Size2

    def _set_geometry(self, kernel_size: int | Size2, stride: int | Size2, padding: int | Size2,
                      input_size: Size2 | None = None) -> None:
        """Kernel, stride and padding as pairs; with ``input_size``, also the (H', W') output size."""
        self.kernel_size, self.stride, self.padding = _pair(kernel_size), _pair(stride), _pair(padding)
        if input_size is not None:
            self.input_size = _pair(input_size)
            self.output_size = conv_output_size(self.input_size, self.kernel_size, self.stride, self.padding)

    def _unfold(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C*kh*kw, L) patches."""
        return F.unfold(x, self.kernel_size, padding=self.padding, stride=self.stride)

    def _local_elements(self, images_per_example: int, outputs_per_position: int) -> int:
        """Largest intermediate of a locally connected forward, per example: its patches or its outputs."""
        in_channels: int = self.in_channels  # type: ignore[attr-defined]
        positions = math.prod(self.output_size)  # type: ignore[attr-defined]
        return max(images_per_example * in_channels * math.prod(self.kernel_size),
                   outputs_per_position) * positions


class VecInputConv2d(_SpatialMixin, VecWeightLayer):
    """First convolution; component k convolves x with its own filters W[k] (authors' K*C input channels).

    x: (batch, C, H, W) -> h: (batch, K, out_channels, H', W'). weight: (K, out, C, kh, kw).
    """

    is_input_layer = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Size2, num_components: int,
                 nonnegative: bool, generator: torch.Generator, stride: int | Size2 = 1,
                 padding: int | Size2 = 0) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.num_components = in_channels, out_channels, num_components
        self._set_geometry(kernel_size, stride, padding)
        self.weight = nn.Parameter(torch.empty(num_components, out_channels, in_channels, *self.kernel_size))
        self.bias = nn.Parameter(torch.zeros(num_components, out_channels))
        init_input_weight_(self.weight, in_channels * math.prod(self.kernel_size), nonnegative, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        flat_weight = self.weight.view(-1, self.in_channels, *self.kernel_size)  # (K*out, C, kh, kw)
        h = F.conv2d(x, flat_weight, self.bias.view(-1), self.stride, self.padding)
        return h.view(len(x), self.num_components, self.out_channels, *h.shape[2:])

    def parameter_grads(self, inputs: torch.Tensor, unit_credit: torch.Tensor, error: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        batch = len(inputs)
        patches = self._unfold(inputs)  # (B, C*kh*kw, L)
        credit = unit_credit.reshape(batch, self.out_channels, -1)  # (B, out, L)
        # per-example filter gradient summed over positions, then mixed by e: K times cheaper than
        # a weight-gradient convolution of the (B, K*out, H', W') output gradient
        per_example = _bmm(credit, patches.transpose(1, 2))  # (B, out, C*kh*kw)
        grad_weight = (error.t() @ per_example.reshape(batch, -1)).view_as(self.weight)
        return grad_weight, error.t() @ unit_credit.sum(dim=(2, 3))

    def gate_scores(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """t_o . h_o at every position without reading h: x convolved with sum_k t_ok W[k, o], 1/K of the
        forward's work; worth it here because h (K x out x H' x W' per example) dwarfs the weight.
        (batch, out, H', W')."""
        projected = (t.t()[:, :, None, None, None] * self.weight).sum(0)  # (out, C, kh, kw)
        return F.conv2d(x, projected, (t.t() * self.bias).sum(0), self.stride, self.padding)

    def dense_weight(self) -> torch.Tensor:
        """The authors' (out, K*C, kh, kw) weight acting on the block-sparse expanded input."""
        return self.weight.permute(1, 0, 2, 3, 4).reshape(self.out_channels, -1, *self.kernel_size)


class VecConv2d(_SpatialMixin, VecWeightLayer):
    """Convolution applied to every component with shared scalar filters, plus a vector bias per channel.

    a: (batch, K, C, H, W) -> h: (batch, K, out_channels, H', W'). weight: (out, C, kh, kw).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Size2, num_components: int,
                 nonnegative: bool, generator: torch.Generator, stride: int | Size2 = 1,
                 padding: int | Size2 = 0) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.num_components = in_channels, out_channels, num_components
        self._set_geometry(kernel_size, stride, padding)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *self.kernel_size))
        self.bias = nn.Parameter(torch.zeros(num_components, out_channels))
        init_hidden_weight_(self.weight, in_channels * math.prod(self.kernel_size), nonnegative, generator)

    def forward(self, a: torch.Tensor) -> torch.Tensor:  # noqa: D102
        batch, k = a.shape[:2]
        h = F.conv2d(a.reshape(batch * k, *a.shape[2:]), self.weight, None, self.stride, self.padding)
        h = h.view(batch, k, *h.shape[1:])
        bias = self.bias[None, :, :, None, None]
        return h.add_(bias) if not (torch.is_grad_enabled() and h.requires_grad) else h + bias

    def parameter_grads(self, inputs: torch.Tensor, unit_credit: torch.Tensor, error: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        batch = len(inputs)
        projected = torch.bmm(error.unsqueeze(1), inputs.reshape(batch, inputs.shape[1], -1))
        projected = projected.view(batch, *inputs.shape[2:])  # e . a: (B, C, H, W)
        # convolutional outer product summed over positions and examples (a weight-gradient conv)
        grad_weight = torch.nn.grad.conv2d_weight(projected, self.weight.shape, unit_credit, self.stride,
                                                  self.padding)
        return grad_weight, error.t() @ unit_credit.sum(dim=(2, 3))

    def input_credit(self, unit_credit: torch.Tensor, input_shape: torch.Size) -> torch.Tensor:  # noqa: D102
        scalar_shape = (input_shape[0], *input_shape[2:])
        return torch.nn.grad.conv2d_input(scalar_shape, self.weight, unit_credit, self.stride, self.padding)


class VecInputLocal2d(_SpatialMixin, VecWeightLayer):
    """First locally connected layer (unshared filters per output position), one filter bank per component.

    x: (batch, C, H, W) -> h: (batch, K, out, H', W'). weight: (K, out, C, kh, kw, H', W');
    bias: (K, out, H', W').
    """

    is_input_layer = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Size2, input_size: Size2,
                 num_components: int, nonnegative: bool, generator: torch.Generator, stride: int | Size2 = 1,
                 padding: int | Size2 = 0) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.num_components = in_channels, out_channels, num_components
        self._set_geometry(kernel_size, stride, padding, input_size)
        self.weight = nn.Parameter(torch.empty(num_components, out_channels, in_channels, *self.kernel_size,
                                               *self.output_size))
        self.bias = nn.Parameter(torch.zeros(num_components, out_channels, *self.output_size))
        init_input_weight_(self.weight, in_channels * math.prod(self.kernel_size), nonnegative, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        per_example = self._local_elements(1, self.num_components * self.out_channels)
        return _in_batch_chunks(self._forward, x, per_example)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = len(x)
        patches = self._unfold(x)  # (B, F, L)
        positions = patches.shape[2]
        weight = self.weight.reshape(-1, patches.shape[1], positions).permute(2, 1, 0)  # (L, F, K*out)
        h = _bmm(patches.permute(2, 0, 1), weight)  # (L, B, K*out)
        h = h.permute(1, 2, 0).reshape(batch, self.num_components, self.out_channels, *self.output_size)
        return h + self.bias

    def parameter_grads(self, inputs: torch.Tensor, unit_credit: torch.Tensor, error: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        batch = len(inputs)
        patches = self._unfold(inputs)  # (B, F, L)
        credit = unit_credit.reshape(batch, 1, self.out_channels, -1)
        # per position l: grad[k, o, :, l] = sum_b e_bk c_bol p_b:l, one (K*out x B) @ (B x F) product;
        # never forms the (B, out, F, L) per-example outer products (2.5 GB for a CIFAR-10 batch of 128)
        mixed = (error[:, :, None, None] * credit).reshape(batch, -1, credit.shape[-1])  # (B, K*out, L)
        grad = _bmm(mixed.permute(2, 1, 0), patches.permute(2, 0, 1))  # (L, K*out, F)
        grad_weight = grad.permute(1, 2, 0).reshape(self.weight.shape)
        grad_bias = (error.t() @ unit_credit.reshape(batch, -1)).view_as(self.bias)
        return grad_weight, grad_bias


class VecLocal2d(_SpatialMixin, VecWeightLayer):
    """Locally connected layer on vector units (shared across components, not across positions).

    a: (batch, K, C, H, W) -> h: (batch, K, out, H', W'). weight: (out, C, kh, kw, H', W');
    bias: (K, out, H', W').
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Size2, input_size: Size2,
                 num_components: int, nonnegative: bool, generator: torch.Generator, stride: int | Size2 = 1,
                 padding: int | Size2 = 0) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.num_components = in_channels, out_channels, num_components
        self._set_geometry(kernel_size, stride, padding, input_size)
        shape = (out_channels, in_channels, *self.kernel_size, *self.output_size)
        self.weight = nn.Parameter(torch.empty(shape))
        self.bias = nn.Parameter(torch.zeros(num_components, out_channels, *self.output_size))
        init_hidden_weight_(self.weight, in_channels * math.prod(self.kernel_size), nonnegative, generator)

    def _position_weight(self) -> torch.Tensor:
        """(L, F, out): the filter of every output position."""
        return self.weight.reshape(self.out_channels, -1, math.prod(self.output_size)).permute(2, 1, 0)

    def forward(self, a: torch.Tensor) -> torch.Tensor:  # noqa: D102
        per_example = self._local_elements(a.shape[1], a.shape[1] * self.out_channels)
        return _in_batch_chunks(self._forward, a, per_example)

    def _forward(self, a: torch.Tensor) -> torch.Tensor:
        batch, k = a.shape[:2]
        patches = self._unfold(a.reshape(batch * k, *a.shape[2:]))  # (B*K, F, L)
        h = _bmm(patches.permute(2, 0, 1), self._position_weight())  # (L, B*K, out)
        h = h.permute(1, 2, 0).reshape(batch, k, self.out_channels, *self.output_size)
        return h + self.bias

    def parameter_grads(self, inputs: torch.Tensor, unit_credit: torch.Tensor, error: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        batch = len(inputs)
        projected = _bmm(error.unsqueeze(1), inputs.reshape(batch, inputs.shape[1], -1))
        patches = self._unfold(projected.view(batch, *inputs.shape[2:]))  # (B, F, L)
        credit = unit_credit.reshape(batch, self.out_channels, -1)  # (B, out, L)
        grad = _bmm(credit.permute(2, 1, 0), patches.permute(2, 0, 1))  # (L, out, F)
        grad_weight = grad.permute(1, 2, 0).reshape(self.weight.shape)
        grad_bias = (error.t() @ unit_credit.reshape(batch, -1)).view_as(self.bias)
        return grad_weight, grad_bias

    def input_credit(self, unit_credit: torch.Tensor, input_shape: torch.Size) -> torch.Tensor:  # noqa: D102
        batch = len(unit_credit)
        credit = unit_credit.reshape(batch, self.out_channels, -1).permute(2, 0, 1)  # (L, B, out)
        patches = _bmm(credit, self._position_weight().transpose(1, 2))  # (L, B, F)
        return F.fold(patches.permute(1, 2, 0), tuple(input_shape[3:]), self.kernel_size,
                      padding=self.padding, stride=self.stride)


# -- gate, pooling, flatten --------------------------------------------------------------------------

class VecGate(nn.Module):
    """a_i = G_i h_i with G_i = 1[t_i . h_i >= 0]: a whole vector unit is passed or silenced.

    ``t`` (units, K) is a fixed random +-1 buffer with units in pairs, t_{2m+1} = -t_{2m}; in
    convolutional layers one t per channel is shared across positions.
    h: (batch, K, units) or (batch, K, channels, H, W) -> same shape.
    """

    t: torch.Tensor

    def __init__(self, num_units: int, num_components: int, generator: torch.Generator) -> None:
        super().__init__()
        if num_units % 2:
            raise ValueError(f"gated layers need an even number of units (t vectors come in +- pairs), "
                             f"got {num_units}")
        half = torch.randint(0, 2, (num_units // 2, num_components), generator=generator) * 2 - 1
        t = torch.stack((half, -half), dim=1).reshape(num_units, num_components)
        self.register_buffer("t", t.float())

    def gate_mask(self, h: torch.Tensor) -> torch.Tensor:
        """G: (batch, units, *spatial) float 0/1, from t . h summed over the K components."""
        with torch.no_grad():
            h = h.detach()
            if h.shape[1] != self.t.shape[1] or h.shape[2] != self.t.shape[0]:
                raise ValueError(f"gate expects (batch, {self.t.shape[1]}, {self.t.shape[0]}, ...), got "
                                 f"{tuple(h.shape)}")
            t = self.t.t().reshape(self.t.shape[1], self.t.shape[0], *([1] * (h.dim() - 3)))
            if h.numel() <= 1 << 22:
                return ((h * t).sum(1) >= 0).to(h.dtype)
            score = h[:, 0] * t[0]  # large tensors: accumulate per component, no (B, K, ...) temporary
            for k in range(1, h.shape[1]):
                score.addcmul_(h[:, k], t[k])
            return (score >= 0).to(h.dtype)

    def mask_from_scores(self, scores: torch.Tensor) -> torch.Tensor:
        """G from precomputed t . h scores (batch, units, *spatial)."""
        return (scores >= 0).to(scores.dtype)

    def apply_mask(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """h * G broadcast over components (in place when no autograd graph is being built)."""
        mask = mask.unsqueeze(1)
        return h.mul_(mask) if not (torch.is_grad_enabled() and h.requires_grad) else h * mask

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.apply_mask(h, self.gate_mask(h))


class VecShapeLayer(nn.Module):
    """A weightless linear map applied per component (pooling, flatten), with its scalar-credit backward."""

    def credit_backward(self, credit: torch.Tensor, input_shape: torch.Size) -> torch.Tensor:
        """Scalar credit on the inputs (batch, *input units) from the credit on the outputs."""
        raise NotImplementedError


class VecAvgPool2d(VecShapeLayer):
    """Average pooling (kernel = stride) per component: (batch, K, C, H, W) -> (batch, K, C, H/k, W/k)."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size

    def forward(self, a: torch.Tensor) -> torch.Tensor:  # noqa: D102
        batch, k, channels, height, width = a.shape
        if height % self.kernel_size or width % self.kernel_size:
            raise ValueError(f"pool size {self.kernel_size} must divide the input size {height}x{width}")
        size = self.kernel_size
        if size == 2 and not (torch.is_grad_enabled() and a.requires_grad):
            # rows first (contiguous slices), then column pairs: faster on CPU than avg_pool2d here
            rows = a.reshape(-1, height // 2, 2, width)
            rows = rows[:, :, 0] + rows[:, :, 1]
            cols = rows.view(-1, height // 2, width // 2, 2)
            return (cols[..., 0] + cols[..., 1]).mul_(0.25).view(batch, k, channels, height // 2, width // 2)
        pooled = F.avg_pool2d(a.reshape(batch * k, channels, height, width), size)
        return pooled.view(batch, k, *pooled.shape[1:])

    def credit_backward(self, credit: torch.Tensor, input_shape: torch.Size) -> torch.Tensor:  # noqa: D102
        batch, channels, height, width = credit.shape
        size = self.kernel_size
        spread = credit[:, :, :, None, :, None].expand(batch, channels, height, size, width, size)
        return spread.reshape(batch, channels, height * size, width * size) / (size * size)


class VecFlatten(VecShapeLayer):
    """(batch, K, C, H, W) -> (batch, K, H*W*C), channel-last as in the authors' code.

    Channel-last keeps each ON/OFF channel pair (2m, 2m+1) adjacent, which the ON/OFF
    initialization of the next dense layer relies on.
    """

    def forward(self, a: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return a.permute(0, 1, 3, 4, 2).reshape(a.shape[0], a.shape[1], -1)

    def credit_backward(self, credit: torch.Tensor, input_shape: torch.Size) -> torch.Tensor:  # noqa: D102
        _, _, channels, height, width = input_shape
        return credit.view(len(credit), height, width, channels).permute(0, 3, 1, 2)


# -- conventional layers for the paper's baselines ---------------------------------------------------

class AlternatingReLU(nn.Module):
    """aReLU: even-indexed units (features or channels) pass h <= 0, odd-indexed units pass h >= 0.

    With mixed-sign weights this is ReLU up to sign flips; it lets the ON/OFF construction work in
    conventional nets. x: (batch, units) or (batch, channels, H, W) -> same shape. DFA's signal enters
    at its output (``dfa_feedback_site``), as in the authors' DFA baselines.
    """

    dfa_feedback_site = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if x.dim() not in (2, 4):
            raise ValueError(f"aReLU expects (batch, units) or (batch, C, H, W), got {tuple(x.shape)}")
        sign = torch.ones(x.shape[1], device=x.device, dtype=x.dtype)
        sign[::2] = -1
        sign = sign.view(1, -1, *([1] * (x.dim() - 2)))
        return x * (x.detach() * sign >= 0).to(x.dtype)


class LocallyConnected2d(_SpatialMixin, nn.Module):
    """Conventional locally connected layer. x: (batch, C, H, W) -> (batch, out, H', W').

    weight: (out, C, kh, kw, H', W'); bias: (out, H', W'). Autograd provides the backward pass.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Size2, input_size: Size2,
                 stride: int | Size2 = 1, padding: int | Size2 = 0, generator: torch.Generator | None = None
                 ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self._set_geometry(kernel_size, stride, padding, input_size)
        fan_in = in_channels * math.prod(self.kernel_size)
        shape = (out_channels, in_channels, *self.kernel_size, *self.output_size)
        self.weight = nn.Parameter(torch.randn(shape, generator=generator) / math.sqrt(fan_in))
        self.bias = nn.Parameter(torch.zeros(out_channels, *self.output_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return _in_batch_chunks(self._forward, x, self._local_elements(1, self.out_channels))

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return locally_connected_product(self._unfold(x), self.weight, self.bias)


def locally_connected_product(patches: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
                              ) -> torch.Tensor:
    """Each output position's patch times that position's own filters: the core of a locally connected layer.

    patches: (B, F, L) from ``F.unfold`` (F = C*kh*kw, L = H'*W'); weight: (out, C, kh, kw, H', W');
    bias: (out, H', W') or None -> (B, out, H', W').
    """
    out_channels, output_size = weight.shape[0], weight.shape[-2:]
    per_position = weight.reshape(out_channels, patches.shape[1], -1).permute(2, 1, 0)  # (L, F, out)
    h = _bmm(patches.permute(2, 0, 1), per_position)  # (L, B, out)
    h = h.permute(1, 2, 0).reshape(len(patches), out_channels, *output_size)
    return h if bias is None else h + bias
