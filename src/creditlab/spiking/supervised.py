"""Shared machinery of the supervised STDP rules (``s2stdp``, ``sstdp``, ``rstdp``).

They train a :class:`~creditlab.spiking.classifier.SpikingClassifier` online: samples of a batch are
processed one after another, each forward pass using the weights the previous sample left (the
paper's algorithm; a batch only sets how many samples pass between optimizer steps). The rule then
writes ``grad = W_before - W_after``, so the required plain SGD with lr 1 applies the changes as
they are. Per sample: forward with the sample's thresholds, the rule's errors and rows to update,
error-modulated STDP on those rows, clip then L1 renormalization, competition regulation.

Rates anneal once per epoch (``on_epoch_end``, the trainer calls the rule's phase hooks); the
training thresholds are reset to the test ones at the start of every epoch under CR-2
(``on_epoch_start``) and copied into the test thresholds at its end under CR-1. All of it is rule
or model state (buffers), so checkpoints carry it. ``optimizer_requirement`` fixes plain SGD with
lr 1 (an explicit conflicting flag is refused); ``has_true_gradient`` is False.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn as nn

from creditlab.optim import OptimizerRequirement
from creditlab.rules.base import Rule, StepOutput, require
from creditlab.spiking.classifier import SpikingClassifier, decision_error, find_classifier
from creditlab.spiking.event_layer import FirstSpikes, SortedInputs, first_spikes, sort_inputs
from creditlab.spiking.ncg import regulate_thresholds
from creditlab.spiking.stdp import error_modulated_additive

if TYPE_CHECKING:
    from creditlab.hooks import FitContext

#: what every supervised STDP rule fixes of the optimizer
FIXED_OPTIMIZER: dict[str, Any] = {"optimizer": "sgd", "lr": 1.0, "momentum": 0.0, "weight_decay": 0.0}
OPTIMIZER_REASON = ("the rule writes its weight changes themselves into .grad; plain SGD with lr 1 applies "
                    "them as they are")


def stdp_optimizer_requirement(rule_name: str) -> OptimizerRequirement:
    """The optimizer a supervised STDP rule ``rule_name`` requires (plain SGD, lr 1, schedule none)."""
    return OptimizerRequirement(f"rule {rule_name!r}", fixed={**FIXED_OPTIMIZER, "schedule": "none"},
                                reason=OPTIMIZER_REASON)


def positive(name: str, value: float) -> float:
    """``value`` as a float, or a ValueError naming the setting."""
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return float(value)


class SupervisedSTDPRule(Rule):
    """Base of the supervised STDP rules; subclasses implement :meth:`sample_update`."""

    accepts: ClassVar[str] = ("a spiking classifier on spike-time inputs: model 'spiking-fc', or 'stdp-csnn' "
                              "(its classification layer)")
    has_true_gradient: ClassVar[bool] = False

    def __init__(self, model: nn.Module, a_plus: float, a_minus: float, annealing: float = 0.98,
                 threshold_lr: float = 0.0, threshold_annealing: float = 1.0, time_chunk: int | None = 1024,
                 **kwargs: Any) -> None:
        super().__init__(model, loss_fn=decision_error, **kwargs)
        positive("a_plus", a_plus)
        if a_minus > 0:
            raise ValueError(f"a_minus is the depression rate and must be <= 0, got {a_minus}")
        if not 0 < annealing <= 1 or not 0 < threshold_annealing <= 1:
            raise ValueError("annealing factors must lie in (0, 1]")
        if time_chunk is not None and time_chunk < 1:
            raise ValueError(f"time_chunk must be >= 1 (or None: all spikes at once), got {time_chunk}")
        if threshold_lr < 0:
            raise ValueError(f"threshold_lr must be >= 0, got {threshold_lr}")
        self.classifier: SpikingClassifier = find_classifier(model)  # type: ignore[assignment]
        self.annealing, self.threshold_annealing = float(annealing), float(threshold_annealing)
        self.register_buffer("a_plus", torch.tensor(float(a_plus)))
        self.register_buffer("a_minus", torch.tensor(float(a_minus)))
        self.register_buffer("threshold_lr", torch.tensor(float(threshold_lr)))
        n = self.classifier.groups.num_neurons
        #: target updates per neuron this epoch (updates towards the target time on own-class samples)
        self.register_buffer("target_updates", torch.zeros(n, dtype=torch.long))
        self.register_buffer("updates", torch.zeros(n, dtype=torch.long))
        self.register_buffer("ones", torch.ones(n, dtype=torch.long), persistent=False)
        #: spikes integrated at a time in training (the simulation stops once every neuron fired)
        self.time_chunk: int | None = time_chunk

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "classifier":  # the model's layer, not a submodule of the rule (see rules/base.py)
            self.__dict__[name] = value
            return
        super().__setattr__(name, value)

    @classmethod
    def check_model(cls, model: nn.Module) -> None:
        require(find_classifier(model) is not None, cls, model,
                "it has no spiking classification layer (SpikingClassifier) to train")

    # -- the per-sample algorithm -----------------------------------------------------------------
    def sample_update(self, x: torch.Tensor, label: int, spikes: FirstSpikes
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """For one sample: (rows, post_times, errors, a_plus per row, a_minus per row) of the update."""
        raise NotImplementedError

    def encode(self, inputs: torch.Tensor) -> torch.Tensor:
        """Spike-time features of a batch (the model's own encoder when it has one)."""
        encode = getattr(self.model, "encode", None)
        return self.classifier.flat_times(encode(inputs) if callable(encode) else inputs)

    def compute_update(self, inputs: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        clf = self.classifier
        x = self.encode(inputs)
        rate, floor = float(self.threshold_lr), float(clf.thresholds.min())
        before = clf.weight.detach()
        weight = before.clone()
        batch, n = x.shape[0], clf.groups.num_neurons
        times = torch.empty(batch, n, dtype=weight.dtype, device=weight.device)
        potentials = torch.empty_like(times)
        errors_abs = torch.zeros(batch, dtype=weight.dtype, device=weight.device)
        updated = torch.zeros(batch, dtype=torch.bool, device=weight.device)
        if self._compiled(x, weight):
            self._online_compiled(x, targets, weight, times, potentials, errors_abs, updated, rate, floor)
            clf.weight.grad = before - weight
            loss = errors_abs[updated].mean() if bool(updated.any()) else torch.zeros((), device=x.device)
            return StepOutput(loss, clf.class_scores(FirstSpikes(times, potentials)))
        sorted_all = sort_inputs(x)  # the time order depends on the inputs only: once per batch
        counts = sorted_all.count.tolist()
        threads = torch.get_num_threads()
        if x.device.type == "cpu" and threads > 1:  # tiny per-sample ops: threads would only synchronize
            torch.set_num_threads(1)
        try:
            self._online(x, targets, sorted_all, counts, weight, times, potentials, errors_abs, updated, rate, floor)
        finally:
            torch.set_num_threads(threads)
        clf.weight.grad = before - weight
        loss = errors_abs[updated].mean() if bool(updated.any()) else torch.zeros((), device=x.device)
        return StepOutput(loss, clf.class_scores(FirstSpikes(times, potentials)))

    def _online(self, x: torch.Tensor, targets: torch.Tensor, sorted_all: SortedInputs, counts: list[int],
                weight: torch.Tensor, times: torch.Tensor, potentials: torch.Tensor, errors_abs: torch.Tensor,
                updated: torch.Tensor, rate: float, floor: float) -> None:
        """The samples one after another, updating ``weight`` and the per-sample outputs in place."""
        clf = self.classifier
        monotone = clf.w_min >= 0
        for b, label in enumerate(targets.tolist()):
            spikes = first_spikes(sorted_all.row(b, counts[b]), weight, clf.training_threshold_vector(label),
                                  monotone=monotone, time_chunk=self.time_chunk)
            times[b], potentials[b] = spikes.times[0], spikes.potentials[0]
            single = FirstSpikes(times[b], potentials[b])
            rows, post, errors, a_plus, a_minus = self.sample_update(x[b], label, single)
            if rows.numel():
                weight[rows] = clf.constrained_rows(
                    weight[rows] + error_modulated_additive(x[b], post, errors, a_plus, a_minus), rows)
                self.updates.index_add_(0, rows, self.ones[:rows.numel()])
                own = clf.own_target[label, rows]
                self.target_updates.index_add_(0, rows, own.long())
                errors_abs[b] = errors.abs().mean()
                updated[b] = True
            self.regulate(label, single, rate, floor)

    #: S2-STDP / SSTDP set this (False / True: time ranges) to run on the compiled CPU kernel
    kernel_ranges: ClassVar[bool | None] = None

    def _compiled(self, x: torch.Tensor, weight: torch.Tensor) -> bool:
        """True when this step runs on the compiled kernel (a time-target rule, CPU float32, numba)."""
        if self.kernel_ranges is None or x.device.type != "cpu" or weight.dtype != torch.float32:
            return False
        from creditlab.spiking import kernels  # noqa: PLC0415 - imports numba (optional) only when used

        return kernels.enabled()

    def _online_compiled(self, x: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor, times: torch.Tensor,
                         potentials: torch.Tensor, errors_abs: torch.Tensor, updated: torch.Tensor, rate: float,
                         floor: float) -> None:
        """:meth:`_online` by the compiled kernel (the arrays are shared with the tensors, updated in place)."""
        from creditlab.spiking import kernels  # noqa: PLC0415

        clf = self.classifier
        if targets.numel() and not 0 <= int(targets.min()) <= int(targets.max()) < clf.groups.num_classes:
            raise ValueError(f"labels must lie in [0, {clf.groups.num_classes - 1}], got "
                             f"[{int(targets.min())}, {int(targets.max())}]")
        weight_t = weight.t().contiguous()
        kernels.set_threads(torch.get_num_threads())
        kernels.time_target_epoch(
            x.detach().to(torch.float32).contiguous().numpy(), targets.to(torch.int64).contiguous().numpy(),
            weight_t.numpy(), clf.thresholds.numpy(), clf.training_thresholds.numpy(),
            clf.initial_norm.numpy(), clf.target_labelled.numpy(),
            clf.groups.num_classes, clf.groups.neurons_per_class, clf.regulation != "none", bool(self.kernel_ranges),
            float(self.t_gap), np.float32(self.a_plus), np.float32(self.a_minus), np.float32(clf.w_min),
            np.float32(clf.w_max), clf.weight_norm, rate, np.float32(floor), times.numpy(), potentials.numpy(),
            errors_abs.numpy(), updated.numpy(), self.updates.numpy(), self.target_updates.numpy())
        weight.copy_(weight_t.t())

    def regulate(self, label: int, spikes: FirstSpikes, rate: float, floor: float) -> None:
        """Competition regulation of the sample's class group (CR-2 / CR-1), if the model has it,
        at ``rate`` (this epoch's threshold_lr) with the thresholds clipped below at ``floor``."""
        clf = self.classifier
        if clf.regulation == "none" or rate == 0.0:
            return
        regulate_thresholds(clf.training_thresholds, spikes.times, spikes.potentials, clf.regulated_group(label),
                            rate, floor)

    def forward_logits(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model(inputs)

    # -- phase hooks (PROTOCOL_SPEC.md) -----------------------------------------------------------
    def on_fit_start(self, context: FitContext) -> None:
        """Before training: counts restart; a model with an unsupervised front end (``stdp-csnn``)
        trains it on the training images first and caches the features of every split."""
        self.updates.zero_()
        self.target_updates.zero_()
        prepare = getattr(self.model, "prepare", None)
        if callable(prepare):
            data, config = context.dataset, context.config
            splits = [data.train_x[:config.train_limit], data.test_x[:config.test_limit]]
            if data.val_x is not None and len(data.val_x):
                splits.append(data.val_x)
            prepare(*splits)

    def on_epoch_start(self, epoch: int) -> None:
        """CR-2: the training compartment restarts from the test thresholds; counts restart."""
        clf = self.classifier
        if clf.regulation == "cr2":
            clf.training_thresholds.copy_(clf.thresholds)
        self.updates.zero_()
        self.target_updates.zero_()

    def on_epoch_end(self, epoch: int) -> dict[str, Any]:
        """Anneal the rates; CR-1 moves the adapted thresholds into the test ones. Returns the
        epoch's per-neuron update counts."""
        clf = self.classifier
        if clf.regulation == "cr1":
            clf.thresholds.copy_(clf.training_thresholds)
        stats = {"target_updates": self.target_updates.tolist(), "updates": self.updates.tolist(),
                 "a_plus": float(self.a_plus), "threshold_lr": float(self.threshold_lr)}
        self.a_plus.mul_(self.annealing)
        self.a_minus.mul_(self.annealing)
        self.threshold_lr.mul_(self.threshold_annealing)
        self.anneal_extra()
        return stats

    def anneal_extra(self) -> None:
        """Extra per-epoch annealing of a subclass (R-STDP's anti-rates)."""


def temporal_targets(times: torch.Tensor, winners: torch.Tensor, is_target: torch.Tensor, gap: float,
                     ranges: bool) -> torch.Tensor:
    """Desired spike times of the updated neurons ``winners`` (S2-STDP; SSTDP when ``ranges``).

    ``t_base = min(mean of the winners' spikes that occurred, T_max - g_nt)`` (T_max - g_nt if none
    fired), with the gap split ``g_nt = g n_t / |U|``, ``g_t = g (|U| - n_t) / |U|``, where n_t = 1:
    the label's group, whose winner is the one target under intra-class WTA (the authors'
    ``n_target_neurons = 1``, SpikeNN ``_impl.s2stdp``) even when that winner is a non-target-labelled
    neuron (+L) and so is pushed late. Targets want ``t_base - g_t``, non-targets ``t_base + g_nt``;
    SSTDP only pushes a neuron that is on the wrong side of its bound.
    """
    t = times[winners]
    n_u = winners.numel()
    n_t = 1
    gap_nt, gap_t = gap * n_t / n_u, gap * (n_u - n_t) / n_u
    fired = t < 1.0
    cap = torch.tensor(1.0 - gap_nt, dtype=t.dtype, device=t.device)
    t_base = torch.minimum(t[fired].mean(), cap) if bool(fired.any()) else cap
    want_target, want_non = t_base - gap_t, t_base + gap_nt
    if ranges:
        desired = torch.where(is_target, torch.minimum(t, want_target), torch.maximum(t, want_non))
    else:
        desired = torch.where(is_target, want_target, want_non)
    return desired
