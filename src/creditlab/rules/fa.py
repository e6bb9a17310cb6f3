"""Feedback alignment (Lillicrap et al. 2016) and its sign-symmetric variants (Liao et al. 2016).

Every ``nn.Linear``, ``nn.Conv2d`` and locally connected layer (``LocallyConnected2d``) of a model
is swapped for a layer whose forward pass is unchanged (bit for bit) and whose backward pass sends
the error to its input through a feedback tensor ``B`` of the same shape as the weight ``W`` instead
of through ``W`` itself::

    grad_input  = grad_output . B      (backprop would use W)        FA, Lillicrap et al. eq. (1)
    grad_weight = grad_output^T . input (the exact local gradient)
    grad_bias   = sum of grad_output   (exact)

(for a locally connected layer the products are taken per output position, with that position's
own slice of ``B``: weight and feedback are (out, C, kh, kw, H', W')).

**What stays exact, and what is refused** (an allow-list, so nothing is left exact without saying so):
a module that owns a parameter and sends an error to its input must be converted or refused.
Left with their exact backward are only

- modules that own no parameter (activations, pooling, flatten, dropout, containers, skip additions):
  there is no weight to transport;
- normalization layers and PReLU (:data:`LOCAL_PARAMETER_LAYERS`): their parameters are per unit (one
  gain and shift per channel or feature, one slope per channel), so the error they pass to their
  input uses only the unit's own gain, never a matrix connecting different units: nothing is
  transported (as in BioTorch, which also keeps BatchNorm exact);
- embeddings (:data:`NO_INPUT_ERROR_LAYERS`): their input is integer indices, no error reaches it.

Any other module owning a parameter (Conv1d/3d, transposed convs, attention, recurrent layers,
Bilinear, subclasses of the converted layers, a user's own layer) makes conversion fail with
IncompatibleModelError naming it. Not detected: a module using another module's parameter in a
functional call (tied weights used through ``F.linear``).

How ``B`` is built (one small :class:`FeedbackScheme` class per variant; ``sigma`` is the standard
deviation of the layer's weight at conversion, i.e. the scale of its forward initialization)::

    fa    B = M,                M ~ U(-sqrt(3) sigma, sqrt(3) sigma), drawn once (fixed, random)
    usf   B = sigma * sign(W)   uniform magnitude, follows W at every step
    frsf  B = |M0| * sign(W)    |M0| drawn once as in fa, sign follows W
    brsf  B = |M_t| * sign(W)   |M_t| redrawn at every training forward pass (seeded, checkpointable)

Notes on choices:
- ``usf`` uses the uniform magnitude ``sigma`` rather than 1, as BioTorch does: entries of 1 would
  amplify the backward signal by about 1/sigma per layer (~10 per layer in ResNet-20). The angle
  between ``B`` and ``W`` does not depend on this scale; Adam is nearly invariant to it.
- Feedback tensors are registered buffers of the converted layers (``feedback_weight``,
  ``feedback_scale``, ``feedback_magnitude``), so ``model.state_dict()``, ``load_state_dict`` and
  ``.to(device)`` carry them. brSF's draw counter travels in the layer's ``_extra_state``.
- Under ``torch.no_grad()`` (evaluation) the layers run the plain forward and draw nothing, so how
  often a trainer evaluates never changes the training trajectory.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator
from typing import Any, ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from creditlab.errors import IncompatibleModelError
from creditlab.models.vnn_layers import LocallyConnected2d, _in_batch_chunks, locally_connected_product
from creditlab.registry import Registry
from creditlab.rules import register_rule
from creditlab.rules.base import DemoSetting, LossFn, Rule, StepOutput
from creditlab.seeding import mix_seed as _mix_seed

#: modules owning parameters whose exact backward is local (per-unit parameters, see the module docstring)
LOCAL_PARAMETER_LAYERS: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.InstanceNorm1d, nn.InstanceNorm2d,
    nn.InstanceNorm3d, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.PReLU,
)
#: modules owning a weight that never send an error to their input (it is integer indices)
NO_INPUT_ERROR_LAYERS: tuple[type[nn.Module], ...] = (nn.Embedding, nn.EmbeddingBag)


def own_parameter_names(module: nn.Module) -> list[str]:
    """Names of the parameters ``module`` itself owns (not its children's)."""
    return [name for name, param in module.named_parameters(recurse=False) if param is not None]


# ---------------------------------------------------------------------------------------------
# autograd functions: exact forward, backward through a feedback matrix
# ---------------------------------------------------------------------------------------------
class _FeedbackLinearFunction(torch.autograd.Function):
    """y = x W^T + b; backward: dx = dy B, dW = dy^T x, db = sum dy.  x: (..., in), W, B: (out, in)."""

    @staticmethod
    def forward(ctx: Any, inputs: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                feedback: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(inputs, feedback)
        ctx.has_bias = bias is not None
        return F.linear(inputs, weight, bias)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        inputs, feedback = ctx.saved_tensors
        need_input, need_weight, need_bias, _ = ctx.needs_input_grad
        grad_input = grad_weight = grad_bias = None
        if need_input:
            grad_input = grad_output.matmul(feedback.to(grad_output.dtype))
        flat_grad = grad_output.reshape(-1, grad_output.shape[-1])
        if need_weight:
            grad_weight = flat_grad.t().mm(inputs.reshape(-1, inputs.shape[-1]))
        if need_bias and ctx.has_bias:
            grad_bias = flat_grad.sum(0)
        return grad_input, grad_weight, grad_bias, None


class _FeedbackConv2dFunction(torch.autograd.Function):
    """2-D convolution whose input gradient uses the feedback kernel B (same shape as the weight).

    One ``aten.convolution_backward`` call gives the input gradient (from B), the weight gradient
    (which depends only on the input and the output gradient) and the bias gradient: the same
    kernel cost as backprop's conv backward.
    """

    @staticmethod
    def forward(ctx: Any, inputs: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                feedback: torch.Tensor, stride: tuple[int, int], padding: tuple[int, int],
                dilation: tuple[int, int], groups: int) -> torch.Tensor:
        ctx.save_for_backward(inputs, feedback)
        ctx.conv_args = (stride, padding, dilation, groups)
        ctx.bias_sizes = None if bias is None else list(bias.shape)
        return F.conv2d(inputs, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        inputs, feedback = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv_args
        need_input, need_weight, need_bias = ctx.needs_input_grad[:3]
        need_bias = need_bias and ctx.bias_sizes is not None
        if not (need_input or need_weight or need_bias):
            return (None,) * 8
        grad_input, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
            grad_output, inputs, feedback.to(grad_output.dtype), ctx.bias_sizes, list(stride), list(padding),
            list(dilation), False, [0, 0], groups, [need_input, need_weight, need_bias])
        return grad_input, grad_weight, grad_bias, None, None, None, None, None


class _FeedbackLocalFunction(torch.autograd.Function):
    """Locally connected product whose patch gradient uses the feedback tensor B (shape of the weight).

    patches: (N, F, L) from ``F.unfold``; weight, B: (out, C, kh, kw, H', W') with F = C*kh*kw and
    L = H'*W'. Backward, per position l: d patches_l = dy_l B_l^T, dW_l = patches_l^T dy_l, db = sum dy.
    (``F.unfold``'s own backward, a fold, carries d patches to the image: parameter-free, exact.)
    """

    @staticmethod
    def forward(ctx: Any, patches: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                feedback: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(patches, feedback)
        ctx.has_bias = bias is not None
        return locally_connected_product(patches, weight, bias)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        patches, feedback = ctx.saved_tensors
        need_patches, need_weight, need_bias, _ = ctx.needs_input_grad
        batch, features, positions = patches.shape
        out_channels = grad_output.shape[1]
        per_position_grad = grad_output.reshape(batch, out_channels, positions).permute(2, 0, 1)  # (L, N, out)
        grad_patches = grad_weight = grad_bias = None
        if need_patches:
            per_position_feedback = feedback.to(grad_output.dtype).reshape(out_channels, features, positions)
            grad_patches = torch.bmm(per_position_grad.contiguous(),
                                     per_position_feedback.permute(2, 0, 1).contiguous())  # (L, N, F)
            grad_patches = grad_patches.permute(1, 2, 0)
        if need_weight:
            grad = torch.bmm(patches.permute(2, 1, 0).contiguous(), per_position_grad.contiguous())  # (L, F, out)
            grad_weight = grad.permute(2, 1, 0).reshape(feedback.shape)
        if need_bias and ctx.has_bias:
            grad_bias = grad_output.sum(0)
        return grad_patches, grad_weight, grad_bias, None


# ---------------------------------------------------------------------------------------------
# feedback schemes: how B is built from W (one small class per variant)
# ---------------------------------------------------------------------------------------------
def _uniform(shape: torch.Size, half_width: float, generator: torch.Generator) -> torch.Tensor:
    """U(-half_width, half_width) on the CPU from ``generator`` (float32)."""
    return (torch.rand(shape, generator=generator) * 2.0 - 1.0) * half_width


def _weight_scale(layer: FeedbackLayerMixin) -> float:
    """sigma: the std of the layer's weight (its forward-init scale); 1/sqrt(3 fan_in) if W is constant."""
    weight = layer.weight
    sigma = float(weight.detach().float().std()) if weight.numel() > 1 else 0.0
    if not math.isfinite(sigma) or sigma == 0.0:
        sigma = 1.0 / math.sqrt(3.0 * layer.fan_in())
    return sigma


class FeedbackScheme:
    """How a converted layer builds its feedback matrix B (same shape as its weight)."""

    mode: ClassVar[str] = ""

    def setup(self, layer: FeedbackLayerMixin, generator: torch.Generator, seed: int) -> None:
        """Register the buffers this scheme needs on ``layer`` (drawn from ``generator``)."""

    def feedback(self, layer: FeedbackLayerMixin, draw: bool) -> torch.Tensor:
        """B for the current weight. ``draw``: a training forward pass (schemes may redraw then)."""
        raise NotImplementedError


SCHEMES: Registry[type[FeedbackScheme]] = Registry("feedback mode")


def register_scheme(scheme: type[FeedbackScheme]) -> type[FeedbackScheme]:
    """Class decorator: make ``scheme`` available to :func:`convert_to_feedback_alignment` by its ``mode``."""
    return SCHEMES.register(scheme.mode)(scheme)


@register_scheme
class RandomFeedback(FeedbackScheme):
    """FA: B fixed and random, U(-sqrt(3) sigma, sqrt(3) sigma), independent of W."""

    mode = "fa"

    def setup(self, layer: FeedbackLayerMixin, generator: torch.Generator, seed: int) -> None:
        weight = layer.weight
        half_width = math.sqrt(3.0) * _weight_scale(layer)
        layer.register_buffer("feedback_weight", _uniform(weight.shape, half_width, generator).to(
            device=weight.device, dtype=weight.dtype))

    def feedback(self, layer: FeedbackLayerMixin, draw: bool) -> torch.Tensor:
        return layer.feedback_weight


@register_scheme
class UniformSignFeedback(FeedbackScheme):
    """uSF: B = sigma * sign(W), recomputed from the current W at every forward pass."""

    mode = "usf"

    def setup(self, layer: FeedbackLayerMixin, generator: torch.Generator, seed: int) -> None:
        weight = layer.weight
        layer.register_buffer("feedback_scale", torch.tensor(_weight_scale(layer), dtype=weight.dtype,
                                                             device=weight.device))

    def feedback(self, layer: FeedbackLayerMixin, draw: bool) -> torch.Tensor:
        return layer.weight.detach().sign() * layer.feedback_scale


@register_scheme
class FixedRandomSignFeedback(FeedbackScheme):
    """frSF: B = |M0| * sign(W), |M0| drawn once at conversion."""

    mode = "frsf"

    def setup(self, layer: FeedbackLayerMixin, generator: torch.Generator, seed: int) -> None:
        weight = layer.weight
        half_width = math.sqrt(3.0) * _weight_scale(layer)
        layer.register_buffer("feedback_magnitude", _uniform(weight.shape, half_width, generator).abs().to(
            device=weight.device, dtype=weight.dtype))

    def feedback(self, layer: FeedbackLayerMixin, draw: bool) -> torch.Tensor:
        return layer.weight.detach().sign() * layer.feedback_magnitude


@register_scheme
class RedrawnSignFeedback(FeedbackScheme):
    """brSF: B = |M_t| * sign(W), |M_t| ~ |U(-sqrt(3) sigma, sqrt(3) sigma)| redrawn every training forward.

    Draw ``t`` comes from a generator on the weight's device seeded with mix(layer seed, t); the
    layer keeps ``t`` (``feedback_draws``) in its state dict, so a checkpoint resumes the same sequence.
    """

    mode = "brsf"

    def setup(self, layer: FeedbackLayerMixin, generator: torch.Generator, seed: int) -> None:
        weight = layer.weight
        layer.register_buffer("feedback_scale", torch.tensor(_weight_scale(layer), dtype=weight.dtype,
                                                             device=weight.device))
        layer.feedback_seed = seed
        layer.feedback_draws = 0

    def feedback(self, layer: FeedbackLayerMixin, draw: bool) -> torch.Tensor:
        weight = layer.weight.detach()
        if draw:
            layer.feedback_draws += 1
        generator = torch.Generator(device=weight.device)
        generator.manual_seed(_mix_seed(layer.feedback_seed, layer.feedback_draws))
        uniform = torch.rand(weight.shape, generator=generator, device=weight.device, dtype=weight.dtype)
        return weight.sign() * uniform * (math.sqrt(3.0) * layer.feedback_scale)


#: mixed into every feedback seed, so feedback draws never repeat the global stream of the same seed
FEEDBACK_SEED_SALT = 0xFEEDBAC


# ---------------------------------------------------------------------------------------------
# converted layers
# ---------------------------------------------------------------------------------------------
class FeedbackLayerMixin:
    """What the converted layers share: a scheme, and a switch to the exact backward."""

    feedback_scheme: FeedbackScheme
    exact_backward: bool
    weight: torch.Tensor

    def fan_in(self) -> int:
        """Inputs feeding one output unit (weight entries per output unit)."""
        return self.weight[0].numel()

    def feedback_matrix(self) -> torch.Tensor:
        """The current B (same shape as ``weight``) without drawing a new one (for diagnostics)."""
        with torch.no_grad():
            return self.feedback_scheme.feedback(self, draw=False)

    def _uses_feedback(self) -> bool:
        # a frozen layer still sends its error through B: only evaluation and exact mode skip it
        return torch.is_grad_enabled() and not self.exact_backward

    # brSF's draw counter and seed travel in the state dict as extra state
    def get_extra_state(self) -> dict[str, int]:  # noqa: D102
        return {"feedback_seed": getattr(self, "feedback_seed", 0),
                "feedback_draws": getattr(self, "feedback_draws", 0)}

    def set_extra_state(self, state: dict[str, int]) -> None:  # noqa: D102
        if isinstance(self.feedback_scheme, RedrawnSignFeedback):
            self.feedback_seed = int(state["feedback_seed"])
            self.feedback_draws = int(state["feedback_draws"])


class FeedbackLinear(FeedbackLayerMixin, nn.Linear):
    """nn.Linear whose backward sends the error through a feedback matrix.  x: (..., in) -> (..., out)."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if not self._uses_feedback():
            return F.linear(inputs, self.weight, self.bias)
        feedback = self.feedback_scheme.feedback(self, draw=True)
        return _FeedbackLinearFunction.apply(inputs, self.weight, self.bias, feedback)

    def extra_repr(self) -> str:  # noqa: D102
        return f"{super().extra_repr()}, feedback={self.feedback_scheme.mode}"


class FeedbackConv2d(FeedbackLayerMixin, nn.Conv2d):
    """nn.Conv2d whose backward sends the error through a feedback kernel.  x: (N, C, H, W)."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if not self._uses_feedback():
            return self._conv_forward(inputs, self.weight, self.bias)
        if self.padding_mode != "zeros":
            inputs = F.pad(inputs, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding: tuple[int, int] = (0, 0)
        else:
            inputs, padding = self._explicit_padding(inputs)
        feedback = self.feedback_scheme.feedback(self, draw=True)
        return _FeedbackConv2dFunction.apply(inputs, self.weight, self.bias, feedback, tuple(self.stride),
                                             padding, tuple(self.dilation), self.groups)

    def _explicit_padding(self, inputs: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Integer padding for the conv call; 'same'/'valid' strings become zero padding."""
        if not isinstance(self.padding, str):
            return inputs, (int(self.padding[0]), int(self.padding[1]))
        if self.padding == "valid":
            return inputs, (0, 0)
        # 'same': total d*(k-1) per dim, the extra element on the right/bottom (as PyTorch does)
        totals = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size, strict=True)]
        if all(t % 2 == 0 for t in totals):
            return inputs, (totals[0] // 2, totals[1] // 2)
        pads = (totals[1] // 2, totals[1] - totals[1] // 2, totals[0] // 2, totals[0] - totals[0] // 2)
        return F.pad(inputs, pads), (0, 0)

    def extra_repr(self) -> str:  # noqa: D102
        return f"{super().extra_repr()}, feedback={self.feedback_scheme.mode}"


class FeedbackLocallyConnected2d(FeedbackLayerMixin, LocallyConnected2d):
    """LocallyConnected2d whose backward sends the error through a feedback tensor.  x: (N, C, H, W)."""

    def fan_in(self) -> int:  # noqa: D102
        return self.in_channels * math.prod(self.kernel_size)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if not self._uses_feedback():
            return super().forward(inputs)
        feedback = self.feedback_scheme.feedback(self, draw=True)  # one draw per forward, not per chunk

        def product(part: torch.Tensor) -> torch.Tensor:
            return _FeedbackLocalFunction.apply(self._unfold(part), self.weight, self.bias, feedback)

        return _in_batch_chunks(product, inputs, self._local_elements(1, self.out_channels))

    def extra_repr(self) -> str:  # noqa: D102
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"output_size={self.output_size}, feedback={self.feedback_scheme.mode}")


#: the layers converted (exact types), and what they become
CONVERSIONS: dict[type[nn.Module], type[nn.Module]] = {
    nn.Linear: FeedbackLinear, nn.Conv2d: FeedbackConv2d, LocallyConnected2d: FeedbackLocallyConnected2d}
CONVERTED_NAMES = "nn.Linear, nn.Conv2d and LocallyConnected2d"


# ---------------------------------------------------------------------------------------------
# conversion and helpers
# ---------------------------------------------------------------------------------------------
def check_convertible(model: nn.Module) -> None:
    """Raise IncompatibleModelError unless every module of ``model`` is converted or known to be safe.

    Converted: exact ``nn.Linear`` / ``nn.Conv2d`` / ``LocallyConnected2d`` (not subclasses, whose
    forward may differ). Kept exact: modules owning no parameter, :data:`LOCAL_PARAMETER_LAYERS`,
    :data:`NO_INPUT_ERROR_LAYERS`. Every other module that owns a parameter is refused.
    """
    name = getattr(model, "creditlab_name", type(model).__name__)
    found = 0
    for path, module in model.named_modules():
        where = path or "<root>"
        if isinstance(module, FeedbackLayerMixin):
            raise IncompatibleModelError(f"model {name!r} is already converted to feedback alignment "
                                         f"(layer {where}); convert the original model instead")
        if type(module) in CONVERSIONS:
            found += 1
            continue
        owned = own_parameter_names(module)
        if not owned or isinstance(module, LOCAL_PARAMETER_LAYERS + NO_INPUT_ERROR_LAYERS):
            continue
        converted_base = next((base for base in CONVERSIONS if isinstance(module, base)), None)
        if converted_base is not None:
            raise IncompatibleModelError(
                f"model {name!r} has {type(module).__name__} at {where}, a subclass of "
                f"{converted_base.__name__} with a possibly different forward; only plain {CONVERTED_NAMES} "
                "are converted")
        raise IncompatibleModelError(
            f"model {name!r} has a {type(module).__name__} at {where} owning parameters "
            f"({', '.join(owned)}); feedback alignment does not convert it and will not leave its "
            f"backward exact. Converted: {CONVERTED_NAMES}; kept exact: modules without parameters, "
            "normalization layers and PReLU (per-unit parameters), embeddings")
    if found == 0:
        raise IncompatibleModelError(f"model {name!r} has no {CONVERTED_NAMES.replace(' and ', ' or ')} "
                                     "layer to convert")


def convert_to_feedback_alignment(model: nn.Module, mode: str = "fa", seed: int = 0) -> nn.Module:
    """A deep copy of ``model`` whose Linear / Conv2d / locally connected layers send errors through B.

    ``mode``: ``fa``, ``usf``, ``brsf``, ``frsf`` (see the module docstring) or another registered
    scheme. ``seed`` fixes every random feedback tensor (drawn on the CPU, so the same on every
    device). The original model is not touched; the copy's forward pass is bit-identical to it.
    Weight sharing between layers is kept.
    """
    if mode not in SCHEMES:
        raise ValueError(f"unknown feedback mode {mode!r}; valid: {', '.join(SCHEMES)}")
    check_convertible(model)
    converted = copy.deepcopy(model)
    # salted: torch.manual_seed(seed) for the weight init must not give B the same stream as W
    generator = torch.Generator().manual_seed(_mix_seed(seed, FEEDBACK_SEED_SALT))
    for index, (_, module) in enumerate(
            (p, m) for p, m in converted.named_modules() if type(m) in CONVERSIONS):
        module.__class__ = CONVERSIONS[type(module)]  # keeps parameters, hooks and attributes
        module.feedback_scheme = SCHEMES.get(mode)()
        module.exact_backward = False
        module.feedback_scheme.setup(module, generator, _mix_seed(seed, 1_000_003 * (index + 1)))
    return converted


def feedback_layers(model: nn.Module) -> Iterator[tuple[str, FeedbackLayerMixin]]:
    """(module path, layer) for every converted layer of ``model``."""
    for path, module in model.named_modules():
        if isinstance(module, FeedbackLayerMixin):
            yield path, module


def feedback_matrices(model: nn.Module) -> dict[str, torch.Tensor]:
    """{weight parameter name: current feedback matrix B (same shape as the weight)} of a converted model."""
    return {(f"{path}.weight" if path else "weight"): layer.feedback_matrix()
            for path, layer in feedback_layers(model)}


@contextlib.contextmanager
def exact_backward(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, the converted layers of ``model`` backpropagate through W^T (true gradients)."""
    layers = [layer for _, layer in feedback_layers(model)]
    previous = [layer.exact_backward for layer in layers]
    for layer in layers:
        layer.exact_backward = True
    try:
        yield model
    finally:
        for layer, flag in zip(layers, previous, strict=True):
            layer.exact_backward = flag


# ---------------------------------------------------------------------------------------------
# the rules
# ---------------------------------------------------------------------------------------------
class FeedbackAlignmentRule(Rule):
    """Autograd through a model whose weight layers send errors back through feedback matrices."""

    mode: ClassVar[str] = ""
    accepts = ("any model whose parameters are in nn.Linear, nn.Conv2d and LocallyConnected2d layers or in "
               "normalization layers (plus parameter-free ops and skip connections): MLP, LeNet, ResNet-20, "
               "the arelu-* nets, user models; not the vectorized vnn-* nets")

    def __init__(self, model: nn.Module, loss_fn: LossFn = F.cross_entropy, seed: int = 0) -> None:
        object.__setattr__(self, "seed", int(seed))  # prepare_model (called by Rule.__init__) needs it
        super().__init__(model, loss_fn)

    @classmethod
    def check_model(cls, model: nn.Module) -> None:  # noqa: D102
        check_convertible(model)

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """A converted deep copy (the input model is left untouched)."""
        return convert_to_feedback_alignment(model, self.mode, self.seed)

    def compute_update(self, inputs: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        """Autograd backward through the feedback layers; every .grad is this rule's update."""
        output = self.model(inputs)
        loss = self.loss_fn(output, targets)
        loss.backward()
        return StepOutput(loss, output)

    def true_gradients(self, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """The exact gradient: the same model with every layer switched to its exact backward."""
        with exact_backward(self.model):
            return super().true_gradients(inputs, targets)

    def feedback_matrices(self) -> dict[str, torch.Tensor]:
        """{weight parameter name: feedback matrix B}, for the weight-feedback alignment angle."""
        return feedback_matrices(self.model)


@register_rule("fa")
class FeedbackAlignment(FeedbackAlignmentRule):
    """FA: errors travel back through fixed random matrices (Lillicrap et al. 2016)."""

    name = "fa"
    mode = "fa"
    description = "feedback alignment (Lillicrap 2016): fixed random feedback matrices in place of W^T"
    demo = DemoSetting(floor=0.60, model="mlp")  # measured 0.73


@register_rule("usf")
class UniformSignFeedbackAlignment(FeedbackAlignmentRule):
    """uSF: feedback sign(W) with uniform magnitude (Liao et al. 2016; Xiao et al. 2018)."""

    name = "usf"
    mode = "usf"
    description = "uniform sign-concordant feedback: B = sigma * sign(W), follows W"
    demo = DemoSetting(floor=0.70, model="mlp")  # measured 0.85


@register_rule("brsf")
class BatchRandomSignFeedbackAlignment(FeedbackAlignmentRule):
    """brSF: feedback sign(W) times a random magnitude redrawn at every step."""

    name = "brsf"
    mode = "brsf"
    description = "batchwise random-magnitude sign-concordant feedback: B = |M_t| * sign(W), M_t redrawn"
    demo = DemoSetting(floor=0.70, model="mlp")  # measured 0.85


@register_rule("frsf")
class FixedRandomSignFeedbackAlignment(FeedbackAlignmentRule):
    """frSF: feedback sign(W) times a random magnitude fixed at conversion."""

    name = "frsf"
    mode = "frsf"
    description = "fixed random-magnitude sign-concordant feedback: B = |M0| * sign(W)"
    demo = DemoSetting(floor=0.70, model="mlp")  # measured 0.85
