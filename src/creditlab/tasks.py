"""What the targets are and how outputs are scored: the loss and the metrics come from the task.

A :class:`Task` supplies the default loss of a rule, checks (and converts) target batches, and turns
per-batch sums into a split's metrics, so the trainer and :func:`creditlab.train.evaluate` have no
hard-coded argmax:

- :data:`CLASSIFICATION`: class indices (int64; int32/int16/int8/uint8 converted), cross-entropy,
  metrics ``accuracy`` and ``loss``;
- :data:`REGRESSION`: float targets ``(batch,)`` or ``(batch, dims)``, mean squared error, metrics
  ``mse`` (mean over examples and dims) and ``loss``.
- :data:`SEQUENCE_CLASSIFICATION`: outputs ``(batch, time, classes)``, targets ``(batch, time)`` class
  indices with ``IGNORE_INDEX`` (-100) on the steps that are not scored; cross-entropy averaged over
  the scored steps; ``accuracy`` of the argmax of the outputs averaged over each example's scored steps.

``primary_metric`` and ``higher_is_better`` tell early stopping what "better" means.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

#: integer dtypes taken as class indices (converted to int64, which cross-entropy needs)
INTEGER_TARGET_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


class Task:
    """Base class: subclasses set the class attributes and implement every method."""

    name: ClassVar[str] = ""
    primary_metric: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean loss over the batch (a scalar)."""
        raise NotImplementedError

    def check_targets(self, targets: torch.Tensor, batch_size: int) -> torch.Tensor:
        """``targets`` in the form :meth:`loss` needs; ValueError saying what is wrong and what is valid."""
        raise NotImplementedError

    def metric_sums(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-batch sums (device tensors, no sync) that :meth:`finish` turns into metrics."""
        raise NotImplementedError

    def finish(self, sums: dict[str, float], count: int) -> dict[str, float]:
        """The split's metrics from summed ``sums`` over ``count`` examples (``sums["loss"]``: loss x batch)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Classification(Task):
    """Class indices, cross-entropy on the logits, accuracy of the argmax."""

    name = "classification"
    primary_metric = "accuracy"
    higher_is_better = True
    # the function itself (not a wrapper), so code that recognizes F.cross_entropy keeps its fast paths
    loss = staticmethod(F.cross_entropy)  # type: ignore[assignment]

    def check_targets(self, targets: torch.Tensor, batch_size: int) -> torch.Tensor:  # noqa: D102
        if targets.dim() != 1 or targets.shape[0] != batch_size:
            raise ValueError(f"targets must have shape (batch,) = ({batch_size},), got {tuple(targets.shape)}")
        if targets.dtype not in INTEGER_TARGET_DTYPES:
            raise ValueError(f"classification targets must be integer class indices (int64, int32, int16, int8 "
                             f"or uint8), got {targets.dtype}; float targets need the regression task")
        return targets if targets.dtype == torch.int64 else targets.long()

    def metric_sums(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:  # noqa: D102
        return {"correct": (outputs.argmax(1) == targets).sum()}

    def finish(self, sums: dict[str, float], count: int) -> dict[str, float]:  # noqa: D102
        return {"accuracy": sums["correct"] / count, "loss": sums["loss"] / count}


class Regression(Task):
    """Float targets, mean squared error (over the batch and the output dimensions)."""

    name = "regression"
    primary_metric = "mse"
    higher_is_better = False

    @staticmethod
    def _matched(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if targets.dim() == 1 and outputs.dim() == 2 and outputs.shape[1] == 1:
            targets = targets.unsqueeze(1)  # (batch,) targets for a (batch, 1) output
        if targets.shape != outputs.shape:
            raise ValueError(f"regression targets of shape {tuple(targets.shape)} do not match the outputs "
                             f"{tuple(outputs.shape)}")
        return targets

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return F.mse_loss(outputs, self._matched(outputs, targets))

    def check_targets(self, targets: torch.Tensor, batch_size: int) -> torch.Tensor:  # noqa: D102
        if targets.dim() not in (1, 2) or targets.shape[0] != batch_size:
            raise ValueError(f"regression targets must have shape (batch,) or (batch, dims) with batch = "
                             f"{batch_size}, got {tuple(targets.shape)}")
        if not targets.is_floating_point():
            raise ValueError(f"regression targets must be floating point, got {targets.dtype}; class indices "
                             "need the classification task")
        return targets

    def metric_sums(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:  # noqa: D102
        error = (outputs - self._matched(outputs, targets)).square()
        return {"squared_error": error.reshape(len(error), -1).mean(dim=1).sum()}

    def finish(self, sums: dict[str, float], count: int) -> dict[str, float]:  # noqa: D102
        return {"mse": sums["squared_error"] / count, "loss": sums["loss"] / count}


#: a sequence target that is not scored (PyTorch's cross-entropy default ``ignore_index``)
IGNORE_INDEX = -100


class SequenceClassification(Task):
    """Per-step class targets over a sequence (``IGNORE_INDEX`` where a step is not scored): the loss is
    the cross-entropy averaged over the scored steps, the prediction the argmax of the outputs averaged
    over an example's scored steps (e-prop's evidence-accumulation task: the recall window)."""

    name = "sequence-classification"
    primary_metric = "accuracy"
    higher_is_better = True

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return F.cross_entropy(outputs.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)

    def check_targets(self, targets: torch.Tensor, batch_size: int) -> torch.Tensor:  # noqa: D102
        if targets.dim() != 2 or targets.shape[0] != batch_size:
            raise ValueError(f"sequence targets must have shape (batch, time) with batch = {batch_size}, got "
                             f"{tuple(targets.shape)}")
        if targets.dtype not in INTEGER_TARGET_DTYPES:
            raise ValueError(f"sequence-classification targets must be integer class indices, got {targets.dtype}")
        return targets if targets.dtype == torch.int64 else targets.long()

    def metric_sums(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:  # noqa: D102
        scored = (targets != IGNORE_INDEX).to(outputs.dtype)  # (batch, time)
        mean_output = (outputs * scored[..., None]).sum(1) / scored.sum(1, keepdim=True).clamp(min=1)
        label = targets.max(dim=1).values  # the scored steps' class (ignored steps are -100)
        return {"correct": (mean_output.argmax(1) == label).sum()}

    def finish(self, sums: dict[str, float], count: int) -> dict[str, float]:  # noqa: D102
        return {"accuracy": sums["correct"] / count, "loss": sums["loss"] / count}


CLASSIFICATION = Classification()
REGRESSION = Regression()
SEQUENCE_CLASSIFICATION = SequenceClassification()

__all__ = ["CLASSIFICATION", "IGNORE_INDEX", "REGRESSION", "SEQUENCE_CLASSIFICATION", "Classification",
           "Regression", "SequenceClassification", "Task"]
