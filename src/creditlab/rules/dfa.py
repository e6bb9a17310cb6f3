"""Direct feedback alignment (Nøkland 2016) and DFA+ (nonnegative feedback).

The model is read as a chain of *blocks*. Its weight layers (:data:`WEIGHT_LAYERS`: ``nn.Linear``,
``nn.Conv2d``, ``LocallyConnected2d`` and the VNN weight layers) are taken in the order the forward
pass calls them; the last one is the **readout**, every other one is a **hidden layer**. Hidden
block ``l`` is weight layer ``l`` together with everything between its output and the input of
weight layer ``l+1`` (nonlinearity, pooling, BatchNorm, dropout, flatten), and the *block output*
``h_l`` is that next layer's input (for a conv layer followed by ReLU and max-pool, the pooled
feature map). With e = dL/dlogits (batch, K), DFA sets::

    dL/dh_l := B_l e          B_l: (K, numel(h_l)) fixed random, one independent matrix per block
                                                                       (Nøkland 2016, eq. for delta a_l)

and lets autograd carry it back *within the block only*: through the block's own nonlinearity
derivative (and pooling routing, BatchNorm) to the weights of layer ``l``. For conv layers B_l e is
reshaped to the block output's (C, H, W). The readout (and anything after it) gets its exact
gradient. Every weight layer's input is detached, so no error travels from one block to the one
before: each weight layer computes only its weight gradient, never its input gradient, and a DFA
step costs at most a BP step (one forward, one projection e B, one backward with fewer kernels).

**Feedback sites.** A model may mark modules with ``dfa_feedback_site = True`` (the aReLU of the GEVB
paper's conventional baselines does). Then B_l e enters at the output of the one site inside each
hidden block instead of at the block output, as in the GEVB authors' DFA, whose signal enters at each
aReLU output, before pooling (so conv blocks get a full-resolution signal, not one spread evenly over
each pooling window). A marked model needs exactly one site in every hidden block.

Feedback entries are U(-sqrt(3/d_l), sqrt(3/d_l)) with d_l = numel(h_l) (or of the site output), so
||B_l e|| ~ ||e||, the norm of the backprop signal in a well-initialized net. ``dfa+`` uses their
absolute values (nonnegative feedback, for nonnegative networks; GEVB paper §1.4 used U[0, 1]). Matrices are
registered buffers of the rule (``feedback_matrix``: all B_l side by side, (K, sum d_l)).

**What DFA understands** (an allow-list; anything else owning a parameter is refused): the weight
layers above, whose input is detached and whose parameters get the local gradient of the block's
signal through their own forward (so a subclass is fine: its input gradient is never used); inside
a block, modules without parameters and the per-unit layers the FA family keeps exact
(normalization layers, PReLU, embeddings: ``fa.LOCAL_PARAMETER_LAYERS``, ``fa.NO_INPUT_ERROR_LAYERS``),
through which the block's signal travels exactly, as it travels through the nonlinearity. Any other
module owning a parameter (Conv1d/3d, transposed convs, attention, recurrent layers, a user's own
layer) would either pass the error backprop-style through a weight inside a block or get no update,
so it is refused.

Accepted models: chains whose weight layers are each called once per forward, where the input of
every weight layer depends on the output of the weight layer called just before it and of no other
(MLP, LeNet, plain CNNs, the ``arelu-*`` and ``vnn-*`` nets, user models of that shape). Rejected with
IncompatibleModelError: modules outside the allow-list, skip connections (ResNet), parallel branches,
reused layers, and trainable parameters before the first weight layer. The last three are found by
one probe forward pass at construction (``creditlab rules`` runs the same construction).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from creditlab.analysis.alignment import mean_example_angle
from creditlab.errors import IncompatibleModelError
from creditlab.models.vnn_layers import LocallyConnected2d, VecWeightLayer
from creditlab.rules import register_rule
from creditlab.rules.base import DemoSetting, LossFn, Rule, StepOutput
from creditlab.rules.fa import (
    FEEDBACK_SEED_SALT,
    LOCAL_PARAMETER_LAYERS,
    NO_INPUT_ERROR_LAYERS,
    own_parameter_names,
)
from creditlab.seeding import mix_seed as _mix_seed

#: block-delimiting weight layers (subclasses included: DFA never uses their input gradient)
WEIGHT_LAYERS: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv2d, LocallyConnected2d, VecWeightLayer)


def is_weight_layer(module: nn.Module) -> bool:
    """True for the block-delimiting layers of :data:`WEIGHT_LAYERS`."""
    return isinstance(module, WEIGHT_LAYERS)


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(path, module) of every weight layer (:func:`is_weight_layer`) of ``model``, in registration order."""
    return [(path, module) for path, module in model.named_modules() if is_weight_layer(module)]


def feedback_sites(model: nn.Module) -> list[nn.Module]:
    """Modules marked ``dfa_feedback_site = True``, where DFA's signal enters instead of block outputs."""
    return [m for m in model.modules() if getattr(m, "dfa_feedback_site", False)]


class _BlockRecorder:
    """Forward hooks that detach every weight layer's input and record it (the previous block's output),
    and record the output of every feedback site with the number of weight layers called before it."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.layers = weight_layers(model)
        self.sites = feedback_sites(model)
        self.calls: list[int] = []  # weight-layer indices, in call order
        self.block_outputs: list[torch.Tensor] = []  # input of each called layer, graph intact
        self.layer_outputs: list[torch.Tensor] = []
        self.site_outputs: list[tuple[int, torch.Tensor]] = []  # (weight layers called before, output)

    def reset(self) -> None:
        """Forget the tensors of the last forward pass."""
        self.calls, self.block_outputs, self.layer_outputs, self.site_outputs = [], [], [], []

    def signal_entries(self) -> list[torch.Tensor]:
        """Where B_l e enters, per hidden block: the site outputs if the model marks sites, else the
        block outputs (the inputs of weight layers 2..L)."""
        if not self.sites:
            return self.block_outputs[1:]
        return [output for _, output in self.site_outputs]

    @contextlib.contextmanager
    def recording(self, record_outputs: bool = False, detach: bool = True) -> Iterator[_BlockRecorder]:
        """Hooks on while inside; ``detach=False`` records block outputs without cutting the chain."""
        handles = [site.register_forward_hook(self._site_hook) for site in self.sites]
        for index, (_, layer) in enumerate(self.layers):
            handles.append(layer.register_forward_pre_hook(self._pre_hook(index, detach)))
            if record_outputs:
                handles.append(layer.register_forward_hook(self._post_hook))
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()

    def _pre_hook(self, index: int, detach: bool):  # noqa: ANN202
        def hook(module: nn.Module, args: tuple) -> tuple:
            (inputs, *rest) = args
            self.calls.append(index)
            self.block_outputs.append(inputs)
            return (inputs.detach(), *rest) if detach else args
        return hook

    def _post_hook(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        self.layer_outputs.append(output)

    def _site_hook(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        self.site_outputs.append((len(self.calls), output))


def _reached_layers(tensor: torch.Tensor, layer_nodes: dict[torch.autograd.graph.Node, int]) -> set[int]:
    """Indices of the weight-layer output nodes that the autograd graph of ``tensor`` reaches."""
    reached: set[int] = set()
    if tensor.grad_fn is None:
        return reached
    stack, seen = [tensor.grad_fn], set()
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if node in layer_nodes:
            reached.add(layer_nodes[node])
            continue
        stack.extend(nxt for nxt, _ in node.next_functions if nxt is not None)
    return reached


@register_rule("dfa")
class DirectFeedbackAlignment(Rule):
    """DFA: every hidden block gets B_l e, the readout its exact gradient; no backward chain."""

    name = "dfa"
    description = "direct feedback alignment (Nøkland 2016): output error broadcast by fixed random matrices"
    demo = DemoSetting(floor=0.60, model="mlp")  # measured 0.77
    accepts = ("chain models of nn.Linear/nn.Conv2d/locally connected layers without skip connections "
               "(MLP, LeNet, plain CNNs, arelu-* and vnn-* nets); not ResNet")
    nonnegative_feedback: ClassVar[bool] = False

    def __init__(self, model: nn.Module, loss_fn: LossFn = F.cross_entropy, seed: int = 0,
                 input_shape: tuple[int, ...] | None = None) -> None:
        super().__init__(model, loss_fn)
        shape = input_shape if input_shape is not None else getattr(model, "input_shape", None)
        if shape is None:
            raise ValueError("DFA needs the per-example input shape to size its feedback matrices: pass "
                             "input_shape=(C, H, W) or build the model with creditlab.models.build_model")
        self.recorder = _BlockRecorder(self.model)
        num_classes, block_shapes = self._probe(tuple(shape))
        #: per hidden layer: its path, and the shape of its block output (per example)
        self.hidden_layer_names = [self.recorder.layers[i][0] for i in self.chain[:-1]]
        self.block_shapes = block_shapes
        self.block_sizes = [math.prod(s) for s in block_shapes]
        generator = torch.Generator().manual_seed(_mix_seed(int(seed), FEEDBACK_SEED_SALT))
        columns = []
        for size in self.block_sizes:  # independent matrix per block, variance 1/d_l
            half_width = math.sqrt(3.0 / size)
            block = (torch.rand(num_classes, size, generator=generator) * 2.0 - 1.0) * half_width
            columns.append(block.abs() if self.nonnegative_feedback else block)
        param = next(self.model.parameters())
        matrix = torch.cat(columns, dim=1) if columns else torch.zeros(num_classes, 0)
        self.register_buffer("feedback_matrix", matrix.to(device=param.device, dtype=param.dtype))

    @classmethod
    def check_model(cls, model: nn.Module) -> None:  # noqa: D102
        name = getattr(model, "creditlab_name", type(model).__name__)
        for path, module in model.named_modules():
            owned = own_parameter_names(module)
            if not owned or is_weight_layer(module) or isinstance(
                    module, LOCAL_PARAMETER_LAYERS + NO_INPUT_ERROR_LAYERS):
                continue
            raise IncompatibleModelError(
                f"rule {cls.name!r} cannot train model {name!r}: it has a {type(module).__name__} at "
                f"{path or '<root>'} owning parameters ({', '.join(owned)}), which DFA does not understand: "
                "blocks are delimited by nn.Linear, nn.Conv2d, LocallyConnected2d and VNN weight layers, "
                "and inside a block only parameter-free modules, normalization layers, PReLU and "
                f"embeddings are allowed. It accepts {cls.accepts}.")
        if len(weight_layers(model)) < 2:
            raise IncompatibleModelError(
                f"rule {cls.name!r} cannot train model {name!r}: it needs at least one hidden weight layer "
                f"before the readout. It accepts {cls.accepts}.")

    def _incompatible(self, why: str) -> IncompatibleModelError:
        name = getattr(self.model, "creditlab_name", type(self.model).__name__)
        return IncompatibleModelError(f"rule {self.name!r} cannot train model {name!r}: {why}. "
                                      f"It accepts {self.accepts}.")

    def _probe(self, input_shape: tuple[int, ...]) -> tuple[int, list[tuple[int, ...]]]:
        """One forward pass (eval mode, batch 2) to find the chain, check it, and size the blocks."""
        model = self.model
        modes = {m: m.training for m in model.modules()}
        param = next(model.parameters())
        model.eval()
        try:
            recorder = _BlockRecorder(model)
            with torch.enable_grad(), recorder.recording(record_outputs=True):
                output = model(torch.zeros(2, *input_shape, device=param.device, dtype=param.dtype))
        finally:
            for module, mode in modes.items():
                module.training = mode
        calls = recorder.calls
        names = [recorder.layers[i][0] for i in calls]
        if len(set(calls)) != len(calls):
            repeated = sorted({n for n in names if names.count(n) > 1})
            raise self._incompatible(f"weight layer(s) {', '.join(repeated)} are called more than once per "
                                     "forward pass")
        if not isinstance(output, torch.Tensor) or output.dim() != 2:
            raise self._incompatible("its output must be a (batch, classes) tensor of logits")
        if len(calls) < 2:
            raise self._incompatible("its forward pass calls fewer than two weight layers")
        if recorder.block_outputs[0].requires_grad:
            raise self._incompatible(f"the input of its first weight layer {names[0]} depends on trainable "
                                     "parameters, which DFA would leave without an update")
        nodes = {out.grad_fn: pos for pos, out in enumerate(recorder.layer_outputs)
                 if out.grad_fn is not None}
        for pos in range(1, len(calls) + 1):
            target = output if pos == len(calls) else recorder.block_outputs[pos]
            reached = _reached_layers(target, nodes)
            where = "the model output" if pos == len(calls) else f"the input of {names[pos]}"
            if reached != {pos - 1}:
                sources = ", ".join(names[r] for r in sorted(reached)) or "no weight layer"
                raise self._incompatible(
                    f"{where} depends on {sources}, not only on {names[pos - 1]} (a skip connection or "
                    "branch); DFA needs a chain of blocks")
        self.chain = list(calls)
        if recorder.sites:
            per_block = [after for after, _ in recorder.site_outputs]
            if per_block != list(range(1, len(calls))):
                raise self._incompatible(
                    "it marks DFA feedback sites (dfa_feedback_site = True) but not exactly one inside "
                    f"every hidden block (sites after weight layers {per_block}, hidden blocks "
                    f"{list(range(1, len(calls)))})")
        shapes = [tuple(entry.shape[1:]) for entry in recorder.signal_entries()]
        return int(output.shape[1]), shapes

    def feedback_blocks(self) -> dict[str, torch.Tensor]:
        """{hidden layer path: B_l of shape (K, d_l)} (views into ``feedback_matrix``)."""
        blocks = torch.split(self.feedback_matrix, self.block_sizes, dim=1)
        return dict(zip(self.hidden_layer_names, blocks, strict=True))

    def compute_update(self, inputs: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        """Forward with detached block inputs, e = dL/dlogits, then one backward from all block outputs."""
        recorder = self.recorder
        recorder.reset()
        with recorder.recording():
            output = self.model(inputs)
        if recorder.calls != self.chain:
            raise self._incompatible("the weight layers were called in a different order than at "
                                     "construction (data-dependent control flow)")
        logits = output.detach().requires_grad_()
        loss = self.loss_fn(logits, targets)
        loss.backward()
        error = logits.grad  # e = dL/dlogits: (batch, K)
        projected = error.matmul(self.feedback_matrix.to(error.dtype))  # all B_l e side by side
        roots, grads = [output], [error]
        signals = torch.split(projected, self.block_sizes, dim=1)
        for entry, signal in zip(recorder.signal_entries(), signals, strict=True):
            if entry.requires_grad:
                roots.append(entry)
                grads.append(signal.reshape(entry.shape))
        recorder.reset()
        torch.autograd.backward(roots, grads)
        return StepOutput(loss.detach(), output)

    def signal_angles(self, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """{hidden layer path: angle in degrees}, first layer first, between the exact gradient dL/dh_l and
        the DFA signal B_l e where it enters (block output or feedback site), averaged over the examples
        where both are nonzero (the GEVB paper's DFA alignment metric, note §1.7). Leaves ``.grad`` alone."""
        recorder = _BlockRecorder(self.model)
        with torch.enable_grad(), recorder.recording(detach=False):
            output = self.model(inputs)
        entries = recorder.signal_entries()
        loss = self.loss_fn(output, targets)
        error, *true_grads = torch.autograd.grad(loss, [output, *entries], allow_unused=True)
        signals = torch.split(error.matmul(self.feedback_matrix.to(error.dtype)), self.block_sizes, dim=1)
        angles = {}
        for name, true_grad, signal in zip(self.hidden_layer_names, true_grads, signals, strict=True):
            true_flat = (torch.zeros_like(signal) if true_grad is None
                         else true_grad.reshape(len(inputs), -1))
            angles[name] = mean_example_angle(true_flat, signal)
        return angles


@register_rule("dfa+")
class NonnegativeDFA(DirectFeedbackAlignment):
    """DFA+: DFA with nonnegative feedback matrices (for nonnegative networks, GEVB paper §1.4)."""

    name = "dfa+"
    description = "direct feedback alignment with nonnegative feedback matrices (DFA+)"
    demo = DemoSetting(floor=0.60, model="mlp")  # measured 0.75
    nonnegative_feedback = True
