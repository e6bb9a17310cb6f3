"""Trainer hooks: code that runs at the start of a fit, around every epoch and after every step.

A :class:`TrainerHook` subclass overrides what it needs; every method is a no-op by default. The
trainer calls ``on_step_end`` only on hooks whose class overrides it, so a hook that does not look
at steps costs nothing per step. A hook with state returns it from ``state_dict`` (tensors and plain
containers: checkpoints load with ``weights_only=True``); the trainer checkpoints it every epoch
under ``"hooks"`` and ``--resume`` restores it with ``load_state_dict``.

Epochs are numbered from 1 (as in the metrics log); ``StepInfo.step`` counts from 0 within its epoch.
Anything with an ``on_epoch_end(rule, epoch) -> dict`` method (the older callback protocol) works as
a hook too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from creditlab.data import Dataset
    from creditlab.rules.base import Rule
    from creditlab.train import TrainConfig


@dataclass
class FitContext:
    """What a run is, for ``on_fit_start`` of rules and hooks."""

    config: TrainConfig
    dataset: Dataset
    steps_per_epoch: int
    device: torch.device


@dataclass
class StepInfo:
    """One finished training step (after the optimizer step and the model's constraints).

    inputs: (batch, *input_shape) as the rule saw them (after augmentation); targets: (batch, ...);
    output: the model's outputs (batch, classes), detached; loss: the batch loss (scalar), detached.
    """

    epoch: int
    step: int
    inputs: torch.Tensor
    targets: torch.Tensor
    output: torch.Tensor
    loss: torch.Tensor


class TrainerHook:
    """Base class of trainer hooks; every method is a no-op."""

    def on_fit_start(self, rule: Rule, context: FitContext) -> None:
        """Before the first epoch of this invocation (after a resume restored the state)."""

    def on_epoch_start(self, rule: Rule, epoch: int) -> None:
        """Before the first step of ``epoch``."""

    def on_step_end(self, rule: Rule, step: StepInfo) -> None:
        """After every training step (called only when a subclass overrides it)."""

    def on_epoch_end(self, rule: Rule, epoch: int) -> dict[str, Any]:
        """After the epoch's evaluation; the returned dict is merged into that epoch's record."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """The hook's state, checkpointed every epoch."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


def overrides(hook: object, method: str) -> bool:
    """Whether ``hook``'s class defines ``method`` other than as :class:`TrainerHook`'s no-op."""
    implementation = getattr(type(hook), method, None)
    return implementation is not None and implementation is not getattr(TrainerHook, method)


def hooks_with(hooks: Sequence[object], method: str) -> list[Any]:
    """The hooks that implement ``method`` (in order)."""
    return [hook for hook in hooks if overrides(hook, method)]


__all__ = ["FitContext", "StepInfo", "TrainerHook", "hooks_with", "overrides"]
