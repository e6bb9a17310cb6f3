"""The rule protocol: a learning rule writes an update direction into every trainable ``param.grad``.

Descent convention: the optimizer *subtracts* ``lr * grad``, so a rule that follows the true
gradient writes the gradient itself. Any ``torch.optim`` optimizer then applies any rule, and the
trainer, checkpoints, alignment diagnostics and distributed reducers only ever see ``.grad``.

State a rule keeps (feedback matrices, traces, running scales) lives in registered buffers of the
rule (an ``nn.Module``), so ``state_dict``/``load_state_dict`` and ``.to(device)`` carry it. The
model is *not* a submodule of the rule: the rule's state dict holds only the rule's own state.

What else a rule may declare (issue #15 part B), each a no-op or the old behaviour by default:

1. ``optimizer_requirement`` (:class:`creditlab.optim.OptimizerRequirement`): settings the rule
   needs, e.g. an STDP rule whose ``.grad`` is the weight change itself fixes plain SGD, lr 1, no
   momentum or weight decay, no schedule. ``config_for`` applies it (a conflicting explicit
   ``--optimizer``/``--lr`` is refused naming the rule); reducers use the same object.
2. ``has_true_gradient = False`` (spiking rules): alignment diagnostics (``AlignmentTracker``,
   ``--track-alignment``) refuse instead of running autograd through spikes.
3. ``task`` (:mod:`creditlab.tasks`): classification (int class indices, cross-entropy, accuracy) or
   regression (float targets, MSE); ``loss_fn`` defaults to ``task.loss``; :meth:`Rule.check_batch`
   hands targets to ``task.check_targets`` (int32 labels are converted) and ``evaluate`` reports the
   task's metrics.
4. Evaluation variants belong to the model: ``model.evaluation_variants()`` returns ``{name:
   fn(inputs, generator) -> outputs}``; the trainer reports each every epoch under
   ``record["variants"]``, from ``seeded_generator(seed, "eval", name, epoch)``, never the global RNG.
5. Phase hooks: :meth:`Rule.on_fit_start`, :meth:`Rule.on_epoch_start`, :meth:`Rule.on_epoch_end`
   (its dict is merged into the epoch's record); state they change lives in buffers. Step-level and
   stateful observers are trainer hooks (:mod:`creditlab.hooks`), called per step only if they ask.
6. Early stopping is the trainer's (``TrainConfig.early_stopping``: patience on the validation split's
   ``task.primary_metric``; the best epoch's model and rule state are restored at the end).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn as nn

from creditlab.errors import CreditlabError, IncompatibleModelError
from creditlab.optim import OptimizerRequirement
from creditlab.tasks import CLASSIFICATION, Task

if TYPE_CHECKING:
    from creditlab.hooks import FitContext

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class StepOutput:
    """What one rule step returns: the batch loss (scalar) and the model outputs (batch, classes)."""

    loss: torch.Tensor
    output: torch.Tensor


@dataclass(frozen=True)
class DemoSetting:
    """How ``creditlab demo`` shows a rule, and the floor it must reach there (one place per rule).

    ``floor`` is the lowest test accuracy (a fraction) the rule may end the demo budget with; the demo
    and CI fail below it. Set it from measurement, at least chance + 0.40 for a rule that learns by
    gradient approximation or STDP; a lower floor needs ``why``. ``model`` None means the rule's
    natural model (:func:`creditlab.bench.compat.natural_model`); ``training`` overrides the model's
    training defaults (``lr``, ``batch_size``, ...); the input encoding is the model's own (its
    registered ``normalization``), never the demo's.
    """

    floor: float
    model: str | None = None
    dataset: str = "mnist"
    epochs: int = 1
    train_limit: int | None = 3000
    test_limit: int | None = 2000
    model_options: Mapping[str, Any] = field(default_factory=dict)
    rule_options: Mapping[str, Any] = field(default_factory=dict)
    training: Mapping[str, Any] = field(default_factory=dict)
    why: str = ""


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
    #: optimizer settings the rule needs (None: any optimizer); see the module docstring, item 1
    optimizer_requirement: ClassVar[OptimizerRequirement | None] = None
    #: False where the loss has no gradient to compare the update with (spiking rules)
    has_true_gradient: ClassVar[bool] = True
    #: how the demo shows this rule and its floor there (every registered rule must set one)
    demo: ClassVar[DemoSetting | None] = None

    def __init__(self, model: nn.Module, loss_fn: LossFn | None = None, task: Task | None = None) -> None:
        super().__init__()
        trained_by = getattr(model, "trained_by", None)  # a model may name the only rules that train it
        require(trained_by is None or self.name in trained_by, type(self), model,
                f"only rules {', '.join(trained_by or ())} train it")
        type(self).check_model(model)
        # stored outside the module tree on purpose (see module docstring)
        self.__dict__["model"] = self.prepare_model(model)
        # a model that scores its outputs its own way names its task (the LSNN's sequence classification)
        self.task = task if task is not None else getattr(model, "task", CLASSIFICATION)
        self.loss_fn = self.task.loss if loss_fn is None else loss_fn

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

    def on_fit_start(self, context: FitContext) -> None:
        """Called by the trainer before the first epoch (after a resume restored the state)."""

    def on_epoch_start(self, epoch: int) -> None:
        """Called before the first step of ``epoch`` (numbered from 1)."""

    def on_epoch_end(self, epoch: int) -> dict[str, Any]:
        """Called after the epoch's evaluation; the dict is merged into that epoch's record."""
        return {}

    # -- the protocol the trainer uses ----------------------------------------------------------
    def step(self, inputs: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        """Check the batch, clear old gradients, compute this rule's update into ``.grad``."""
        targets = self.check_batch(inputs, targets)
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

    def check_batch(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Shape checks with clear messages (no device sync); returns the targets as the task needs them."""
        expected = getattr(self.model, "input_shape", None)
        if expected is not None and tuple(inputs.shape[1:]) != tuple(expected):
            raise ValueError(f"input batch has per-example shape {tuple(inputs.shape[1:])}, but the model "
                             f"was built for {tuple(expected)}")
        return self.task.check_targets(targets, inputs.shape[0])

    def true_gradients(self, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """The exact gradient of the loss on this batch (autograd), by parameter name.

        Used by the alignment diagnostics; rules whose model changes the backward pass (FA layers)
        override it to run autograd with exact transposes. Leaves ``.grad`` untouched. Raises
        CreditlabError for a rule without a true gradient (``has_true_gradient = False``).
        """
        require_true_gradient(self)
        params = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        with torch.enable_grad():
            loss = self.loss_fn(self.model(inputs), targets)
            grads = torch.autograd.grad(loss, [p for _, p in params], allow_unused=True)
        return {n: (g if g is not None else torch.zeros_like(p)) for (n, p), g in zip(params, grads, strict=True)}


def require_true_gradient(rule: Rule) -> None:
    """Raise CreditlabError when ``rule`` has no true gradient (alignment diagnostics need one)."""
    if not rule.has_true_gradient:
        raise CreditlabError(f"rule {rule.name!r} has no true gradient to compare with (its updates do not "
                             "approximate the gradient of a differentiable loss, e.g. spikes or STDP), so "
                             "alignment cannot be measured; drop --track-alignment / AlignmentTracker")


def require(condition: bool, rule: type[Rule], model: nn.Module, why: str) -> None:
    """Raise IncompatibleModelError for ``rule`` on ``model`` unless ``condition`` holds."""
    if not condition:
        name = getattr(model, "creditlab_name", type(model).__name__)
        raise IncompatibleModelError(
            f"rule {rule.name!r} cannot train model {name!r}: {why}. It accepts {rule.accepts}."
        )
