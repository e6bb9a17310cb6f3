"""Alignment diagnostics for any rule: how its update compares with the true gradient, per parameter.

On one batch, for every trainable parameter ``p`` with update u = ``p.grad`` after ``rule.step`` and
true gradient g = ``rule.true_gradients(...)[name]`` (autograd with exact transposes):

- ``angle_deg``: the angle between u and g in degrees, arccos(<u, g> / (|u| |g|));
- ``sign_agreement``: the fraction of entries with sign(u) = sign(g), over entries where g != 0;
- ``norm_ratio``: |u| / |g|;
- ``weight_feedback_angle_deg`` (rules with a ``feedback_matrices()`` method, e.g. FA, uSF): the angle
  between the forward weight W and its feedback matrix B (BioTorch's layer alignment);
- ``signal_angle_deg`` (rules with a ``signal_angles()`` method, DFA and DFA+), on a hidden layer's
  weight: the mean per-example angle between the exact gradient at the block and the DFA signal B e
  (the GEVB paper's DFA alignment).

Undefined values (a zero vector) are ``nan``. Measuring does not disturb training: ``.grad``, the
global RNG states, the model's state dict (BatchNorm statistics, brSF draw counters) and the rule's
state dict are restored afterwards, so a run with measurements follows the same trajectory.

A rule without a true gradient (``has_true_gradient = False``: spiking and STDP rules) is refused
with a CreditlabError, by :func:`measure_alignment` and by :class:`AlignmentTracker` before training.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn

from creditlab.checkpoint import clone_state
from creditlab.hooks import TrainerHook

if TYPE_CHECKING:  # rules import the angle helpers below
    from creditlab.rules.base import Rule


def angle_degrees(a: torch.Tensor, b: torch.Tensor) -> float:
    """Angle between ``a`` and ``b`` (any equal shapes, flattened) in degrees; nan if either is zero."""
    if a.shape != b.shape:
        raise ValueError(f"angle between tensors of different shapes {tuple(a.shape)} and {tuple(b.shape)}")
    a64, b64 = a.detach().reshape(-1).double(), b.detach().reshape(-1).double()
    norms = a64.norm() * b64.norm()
    if norms == 0 or not torch.isfinite(norms):
        return math.nan
    cosine = float((a64 @ b64) / norms)
    return math.degrees(math.acos(max(-1.0, min(1.0, cosine))))


def mean_example_angle(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over rows of the angle (degrees) between a[i] and b[i], rows where both are nonzero; nan if none."""
    a_norm, b_norm = a.norm(dim=1), b.norm(dim=1)
    keep = (a_norm > 0) & (b_norm > 0)
    if not bool(keep.any()):
        return float("nan")
    cosine = (a[keep] * b[keep]).sum(dim=1) / (a_norm[keep] * b_norm[keep])
    return float(torch.rad2deg(torch.arccos(cosine.clamp(-1.0, 1.0))).mean())


def sign_agreement(update: torch.Tensor, true_gradient: torch.Tensor) -> float:
    """Fraction of entries with sign(update) == sign(true_gradient), among those where true_gradient != 0."""
    mask = true_gradient != 0
    count = int(mask.sum())
    if count == 0:
        return math.nan
    return float((update.sign()[mask] == true_gradient.sign()[mask]).sum()) / count


def norm_ratio(update: torch.Tensor, true_gradient: torch.Tensor) -> float:
    """|update| / |true_gradient| (Frobenius norms); nan if the true gradient is zero."""
    denominator = float(true_gradient.detach().double().norm())
    if denominator == 0:
        return math.nan
    return float(update.detach().double().norm()) / denominator


def compare_updates(updates: dict[str, torch.Tensor], true_gradients: dict[str, torch.Tensor]
                    ) -> dict[str, dict[str, float]]:
    """Per parameter name: angle, sign agreement and norm ratio of ``updates`` against ``true_gradients``."""
    return {name: {"angle_deg": angle_degrees(update, true_gradients[name]),
                   "sign_agreement": sign_agreement(update, true_gradients[name]),
                   "norm_ratio": norm_ratio(update, true_gradients[name])}
            for name, update in updates.items() if name in true_gradients}


def _rng_states() -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    cuda_in_use = torch.cuda.is_available() and torch.cuda.is_initialized()
    cuda = torch.cuda.get_rng_state_all() if cuda_in_use else None
    return torch.get_rng_state(), cuda


def _set_rng_states(states: tuple[torch.Tensor, list[torch.Tensor] | None]) -> None:
    cpu, cuda = states
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)


@contextlib.contextmanager
def preserved_training_state(rule: Rule) -> Iterator[None]:
    """Within the block the model is in training mode; on exit restore ``.grad``, the global RNGs,
    the model's and the rule's state dicts and every module's training flag."""
    model: nn.Module = rule.model
    grads = {name: (None if p.grad is None else p.grad.detach().clone())
             for name, p in model.named_parameters()}
    model_state = clone_state(model.state_dict())
    rule_state = clone_state(rule.state_dict())
    modes = {module: module.training for module in model.modules()}
    rng = _rng_states()
    model.train()
    try:
        yield
    finally:
        _set_rng_states(rng)
        with torch.no_grad():
            model.load_state_dict(model_state)
            rule.load_state_dict(rule_state)
        for module, mode in modes.items():
            module.training = mode
        for name, p in model.named_parameters():
            p.grad = grads[name]


def measure_alignment(rule: Rule, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, dict[str, float]]:
    """Per trainable parameter of ``rule.model``: {metric: value} comparing the rule's update with the truth.

    inputs: (batch, *input_shape) on the model's device; targets: (batch,) class indices. The rule's
    update and the true gradient see the same batch and the same random draws (dropout masks), with the
    model in training mode (BatchNorm on batch statistics), whatever mode the caller left it in.
    Raises CreditlabError for a rule without a true gradient.
    """
    from creditlab.rules.base import require_true_gradient

    require_true_gradient(rule)
    with preserved_training_state(rule):
        rng_before = _rng_states()
        rule.step(inputs, targets)
        updates = {n: p.grad.detach().clone() for n, p in rule.model.named_parameters()
                   if p.requires_grad and p.grad is not None}
        _set_rng_states(rng_before)  # the same dropout masks for the true gradient
        true = rule.true_gradients(inputs, targets)
        metrics = compare_updates(updates, true)
        feedback_matrices = getattr(rule, "feedback_matrices", None)
        if callable(feedback_matrices):
            params = dict(rule.model.named_parameters())
            for name, matrix in feedback_matrices().items():
                if name in metrics and params[name].shape == matrix.shape:
                    metrics[name]["weight_feedback_angle_deg"] = angle_degrees(params[name], matrix)
        signal_angles = getattr(rule, "signal_angles", None)
        if callable(signal_angles):  # DFA: exact gradient vs B e where the signal enters the block
            for layer, angle in signal_angles(inputs, targets).items():
                if f"{layer}.weight" in metrics:
                    metrics[f"{layer}.weight"]["signal_angle_deg"] = angle
    return metrics


class AlignmentTracker(TrainerHook):
    """Trainer hook: the alignment metrics on a fixed batch at the end of every ``every``-th epoch.

    inputs: (batch, *input_shape), targets: (batch,); moved to the model's device when measured.
    """

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, every: int = 1) -> None:
        if inputs.shape[0] != targets.shape[0]:
            raise ValueError(f"inputs ({inputs.shape[0]}) and targets ({targets.shape[0]}) differ in "
                             "batch size")
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.inputs, self.targets, self.every = inputs, targets, every

    def on_fit_start(self, rule: Rule, context: Any) -> None:
        """Refuse, before any training, a rule that has no true gradient to compare with."""
        from creditlab.rules.base import require_true_gradient

        require_true_gradient(rule)

    def on_epoch_end(self, rule: Rule, epoch: int) -> dict[str, Any]:
        """{"alignment": {parameter name: {metric: value}}} every ``every`` epochs, else {}."""
        if epoch % self.every != 0:
            return {}
        device = next(rule.model.parameters()).device
        inputs, targets = self.inputs.to(device), self.targets.to(device)
        return {"alignment": measure_alignment(rule, inputs, targets)}
