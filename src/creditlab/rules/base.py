"""The rule protocol: a learning rule writes an update direction into every trainable ``param.grad``.

Descent convention: the optimizer *subtracts* ``lr * grad``, so a rule that follows the true
gradient writes the gradient itself. Any ``torch.optim`` optimizer then applies any rule, and the
trainer, checkpoints, alignment diagnostics and distributed reducers only ever see ``.grad``.

State a rule keeps (feedback matrices, traces, running scales) lives in registered buffers of the
rule (an ``nn.Module``), so ``state_dict``/``load_state_dict`` and ``.to(device)`` carry it. The
model is *not* a submodule of the rule: the rule's state dict holds only the rule's own state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from creditlab.errors import IncompatibleModelError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class StepOutput:
    """What one rule step returns: the batch loss (scalar) and the model outputs (batch, classes)."""

    loss: torch.Tensor
    output: torch.Tensor


class Rule(nn.Module):
    """Base class of every learning rule.

    Subclasses set ``name`` and ``description``, override :meth:`check_model` when they need a
    special network, and implement :meth:`compute_update`, which must leave an update direction in
    ``p.grad`` for every trainable parameter ``p`` of ``self.model``.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: what models the rule accepts, for error messages and ``creditlab rules``
    accepts: ClassVar[str] = "any model"

    def __init__(self, model: nn.Module, loss_fn: LossFn = F.cross_entropy) -> None:
        super().__init__()
        type(self).check_model(model)
        # stored outside the module tree on purpose (see module docstring)
        self.__dict__["model"] = self.prepare_model(model)
        self.loss_fn = loss_fn

    model: nn.Module

    # -- hooks for subclasses -------------------------------------------------------------------
    @classmethod
    def check_model(cls, model: nn.Module) -> None:
        """Raise IncompatibleModelError (saying why, and which models work) if ``model`` is unfit."""

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """The model this rule trains; a rule may return a converted copy (never mutate the input)."""
        return model

    def compute_update(self, inputs: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        """Write the update direction into ``.grad`` of every trainable parameter."""
        raise NotImplementedError

    def forward_logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """Class scores used for evaluation (the model's output unless the rule says otherwise)."""
        return self.model(inputs)

    # -- the protocol the trainer uses ----------------------------------------------------------
    def step(self, inputs: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        """Check the batch, clear old gradients, compute this rule's update into ``.grad``."""
        self.check_batch(inputs, targets)
        for param in self.model.parameters():
            param.grad = None
        out = self.compute_update(inputs, targets)
        for pname, param in self.model.named_parameters():
            if param.requires_grad and param.grad is None:
                param.grad = torch.zeros_like(param)  # parameter the rule leaves untouched (e.g. unused)
            elif param.grad is not None and param.grad.shape != param.shape:
                raise RuntimeError(f"rule {self.name!r} wrote a gradient of shape {tuple(param.grad.shape)} "
                                   f"into {pname} of shape {tuple(param.shape)}")
        return StepOutput(out.loss.detach(), out.output.detach())

    def check_batch(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Shape checks with clear messages (no device sync)."""
        expected = getattr(self.model, "input_shape", None)
        if expected is not None and tuple(inputs.shape[1:]) != tuple(expected):
            raise ValueError(f"input batch has per-example shape {tuple(inputs.shape[1:])}, but the model "
                             f"was built for {tuple(expected)}")
        if targets.dim() != 1 or targets.shape[0] != inputs.shape[0]:
            raise ValueError(f"targets must have shape (batch,) = ({inputs.shape[0]},), got {tuple(targets.shape)}")
        if targets.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"targets must be integer class indices, got {targets.dtype}")

    def true_gradients(self, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """The exact gradient of the loss on this batch (autograd), by parameter name.

        Used by the alignment diagnostics; rules whose model changes the backward pass (FA layers)
        override it to run autograd with exact transposes. Leaves ``.grad`` untouched.
        """
        params = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        with torch.enable_grad():
            loss = self.loss_fn(self.model(inputs), targets)
            grads = torch.autograd.grad(loss, [p for _, p in params], allow_unused=True)
        return {n: (g if g is not None else torch.zeros_like(p)) for (n, p), g in zip(params, grads, strict=True)}


def require(condition: bool, rule: type[Rule], model: nn.Module, why: str) -> None:
    """Raise IncompatibleModelError for ``rule`` on ``model`` unless ``condition`` holds."""
    if not condition:
        name = getattr(model, "creditlab_name", type(model).__name__)
        raise IncompatibleModelError(
            f"rule {rule.name!r} cannot train model {name!r}: {why}. It accepts {rule.accepts}."
        )
