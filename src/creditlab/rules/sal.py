"""SAL for deep networks (Gierlich et al. 2025, arXiv v2): feedback of the fully connected layers
symmetrized by spike-based alignment learning in a spiking phase (before each epoch).

A member of the feedback-alignment family (:mod:`creditlab.rules.fa`): every layer sends its error
through a feedback matrix ``B`` (FA's fixed random draw to start with). Conv layers keep their fixed
random ``B`` (FA); the ``nn.Linear`` layers' ``B`` are learned by SAL in :meth:`SpikeAlignment.symmetrize`:
the chain of linear layers ``n_0 -> n_1 -> ... -> n_L`` is copied into a network of stochastic
spiking neurons (:mod:`creditlab.spiking.stochastic`) in which layer ``l`` neurons receive
``b_l + W_l psp_{l-1}`` bottom-up and ``B_{l+1}^T psp_{l+1}`` top-down. As in the authors' SALNet
(``symmnet/sal_net.py``, ``scripts/symm_net/main_salnet.py``): escape rate sigma(u - ln t_ref),
rectangular PSPs of tau_syn = t_ref = 10 steps, a neuron spikes again only ``t_ref + 1`` steps after
a spike (their ``last_spike_counter > t_ref``); the FC layers' biases ``b_l`` are copied in before
every phase (their ``load_common_state_dict`` each epoch), and the input layer, which has no FC
bias, keeps one fixed draw U(-1/sqrt(n_0), 1/sqrt(n_0)) (their ``GLMInputLayer`` init). It runs
spontaneously for ``iterations x steps`` steps with ``chains`` parallel chains; every ``steps`` steps
each feedback synapse (pre: upper neuron i, post: lower neuron j, weight ``B[i, j]``) gets the SAL
update summed over all pairs at lags 0 .. 2 t_ref - 1 (their kernel: exponential, tau = t_ref, 2 t_ref
taps; all-pairs pairing)::

    B[i, j] <- B[i, j] + sal_lr * mean_chains(SAL_ij) / (2 t_ref)       (authors' SALNet normalization)

A diverging update (``sal_lr`` too large: each update overshoots W and B's distance from W grows
from update to update; on a 100-40-10 chain slowly at sal_lr 3, fast from 3.3: ``creditlab reproduce
sal-feedback-lr``) stops training with a :class:`~creditlab.errors.FeedbackDivergenceError` as soon
as, after an update, some layer has ``||B - W||_F > divergence_limit * ||W||_F`` (default 4: FA's
random start is ~1.4 and SAL's noise floor on that chain stays below 1.5 for sal_lr <= 2) or a
non-finite B.

Causal pairs for ``B[i, j]`` (i before j) are what ``B`` itself causes, anti-causal ones (j before i)
what ``W[i, j]`` causes, so in expectation ``B`` moves toward ``W``. The forward weights are not
changed by the phase. The trainer calls the rule's phase hook :meth:`on_epoch_start` before every
epoch, which runs the phase; :meth:`on_epoch_end` adds its duration (``sal_phase_s``) to the epoch's
record. The phase count is rule state (checkpointed), and each phase's spikes come from
``seeded_generator``-style streams ``mix_seed(seed, "sal-phase", phase, layer)``, so a resumed run
continues the same phases. Defaults are the authors' ``exp_settings.yaml`` (5 x 200 t_ref, 32
chains, lr 0.04). :func:`feedback_angles` gives angle(W, B) per layer.

Phase budget. The authors run 5 x 2000 spiking steps before every epoch of a full dataset
(Fashion-MNIST at batch 128: ``FULL_EPOCH_STEPS`` = 469 training steps), about 21 spiking steps per
training step. With ``steps`` left unset the phase keeps that ratio: ``steps = clip(2000 x
steps_per_epoch / 469, MIN_PHASE_STEPS, 2000)`` per iteration, so a full-size epoch gets the authors'
2000 and a run of a few hundred images gets a phase of seconds, not minutes. ``--rule-opt steps=N``
(and ``iterations=``, ``chains=``) sets the budget exactly; ``creditlab reproduce sal-deep`` passes
its own. Every epoch's record holds the steps used (``sal_phase_steps``) and the time (``sal_phase_s``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from creditlab.analysis.alignment import angle_degrees
from creditlab.errors import FeedbackDivergenceError
from creditlab.rules import register_rule
from creditlab.rules.base import DemoSetting, LossFn
from creditlab.rules.fa import FeedbackAlignmentRule, FeedbackLinear, RandomFeedback, feedback_layers, register_scheme
from creditlab.seeding import mix_seed, seeded_generator
from creditlab.spiking.sal import ExponentialWindow, PairSTDP, sal_update
from creditlab.spiking.stochastic import RunNoise, StochasticNeurons

#: the authors' phase: iterations x steps of spiking before an epoch of FULL_EPOCH_STEPS training steps
PAPER_PHASE_STEPS = 2000
FULL_EPOCH_STEPS = 469  # Fashion-MNIST, 60000 images at batch 128 (the authors' exp. 3)
MIN_PHASE_STEPS = 100  # 10 t_ref: several windows of 2 t_ref per update even for the smallest run


def phase_steps_for(steps_per_epoch: int) -> int:
    """Spiking steps per SAL iteration for an epoch of ``steps_per_epoch`` training steps (the
    authors' ratio, between MIN_PHASE_STEPS and PAPER_PHASE_STEPS; module docstring)."""
    scaled = math.ceil(PAPER_PHASE_STEPS * steps_per_epoch / FULL_EPOCH_STEPS)
    return max(MIN_PHASE_STEPS, min(PAPER_PHASE_STEPS, scaled))


@register_scheme
class SpikeAlignedFeedback(RandomFeedback):
    """SAL: B starts as FA's random draw; the linear layers' B are then learned by SAL phases."""

    mode = "sal"


@register_rule("sal")
class SpikeAlignment(FeedbackAlignmentRule):
    """FA whose linear layers' feedback is symmetrized by spiking SAL phases (Gierlich et al. 2025)."""

    name = "sal"
    mode = "sal"
    description = "spike-based alignment learning (Gierlich 2025): FC feedback learned by STDP in spiking phases"
    # a narrower MLP and one short spiking phase (1 x 400 steps, 16 chains) keep the demo to seconds: measured 0.72
    demo = DemoSetting(floor=0.60, model="mlp", model_options={"hidden": [256, 256]},
                       rule_options={"iterations": 1, "steps": 400, "chains": 16})

    def __init__(self, model: nn.Module, loss_fn: LossFn = F.cross_entropy, seed: int = 0, sal_lr: float = 0.04,
                 iterations: int = 5, steps: int | None = None, chains: int = 32, t_ref: int = 10,
                 divergence_limit: float = 4.0) -> None:
        """``steps`` None: the phase budget follows the run's epoch size (module docstring)."""
        for key, value in (("iterations", iterations), ("steps", steps), ("chains", chains), ("t_ref", t_ref)):
            if value is None and key == "steps":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"sal option {key} must be an integer >= 1, got {value!r}")
        if not (math.isfinite(sal_lr) and sal_lr >= 0):
            raise ValueError(f"sal option sal_lr must be a finite number >= 0, got {sal_lr}")
        if not (math.isfinite(divergence_limit) and divergence_limit > 0):
            raise ValueError(f"sal option divergence_limit must be a finite number > 0, got {divergence_limit}")
        super().__init__(model, loss_fn, seed)
        self.sal_lr, self.iterations, self.chains, self.t_ref = sal_lr, iterations, chains, t_ref
        self.steps_given = steps
        self.steps = PAPER_PHASE_STEPS if steps is None else steps  # set from the epoch size in on_fit_start
        self.divergence_limit = divergence_limit
        self.phases = 0
        self.last_phase_s = 0.0
        self.last_feedback_error: list[float] = []
        self.linear = [layer for _, layer in feedback_layers(self.model) if isinstance(layer, FeedbackLinear)]
        sizes = [(layer.in_features, layer.out_features) for layer in self.linear]
        if not self.linear or any(a[1] != b[0] for a, b in zip(sizes, sizes[1:], strict=False)):
            from creditlab.errors import IncompatibleModelError
            raise IncompatibleModelError(
                f"rule 'sal' needs the model's nn.Linear layers to form a chain (each one's outputs the next "
                f"one's inputs) for its spiking phase; got linear layers {sizes or 'none'}")
        n_input = self.linear[0].in_features
        self.input_bias = torch.empty(n_input).uniform_(-n_input ** -0.5, n_input ** -0.5,
                                                        generator=seeded_generator(seed, "sal-input-bias"))

    def get_extra_state(self) -> dict[str, int]:  # noqa: D102
        return {"phases": self.phases}

    def set_extra_state(self, state: dict[str, int]) -> None:  # noqa: D102
        self.phases = int(state["phases"])

    def on_fit_start(self, context: Any) -> None:
        """Without an explicit ``steps``, the phase budget follows the epoch size (module docstring)."""
        if self.steps_given is None:
            self.steps = phase_steps_for(int(context.steps_per_epoch))

    def on_epoch_start(self, epoch: int) -> None:
        """Phase hook: one spiking SAL phase before every epoch."""
        self.symmetrize()

    def on_epoch_end(self, epoch: int) -> dict[str, Any]:
        """The epoch's record gets the duration and spiking steps of the phase that preceded it and
        ||B - W|| / ||W|| after it."""
        return {"sal_phase_s": self.last_phase_s, "sal_phase_steps": self.iterations * self.steps,
                "sal_feedback_error": self.last_feedback_error}

    def spiking_biases(self) -> list[torch.Tensor]:
        """Biases of the spiking layers n_0 .. n_L: the input draw, then each FC layer's bias (0 if none)."""
        device = self.linear[0].weight.device
        return [self.input_bias.to(device)] + [
            layer.bias.detach().float() if layer.bias is not None
            else torch.zeros(layer.out_features, device=device) for layer in self.linear]

    def check_feedback(self, iteration: int) -> list[float]:
        """||B - W||_F / ||W||_F per linear layer; FeedbackDivergenceError past ``divergence_limit``."""
        errors = []
        for index, layer in enumerate(self.linear):
            weight, feedback = layer.weight.detach().float(), layer.feedback_weight.float()
            error = float((feedback - weight).norm() / weight.norm().clamp_min(1e-12))
            if not math.isfinite(error) or error > self.divergence_limit:
                raise FeedbackDivergenceError(
                    f"SAL's feedback update diverged: linear layer {index + 1} of {len(self.linear)} has "
                    f"||B - W|| / ||W|| = {error:.3g} > divergence_limit {self.divergence_limit:g} after update "
                    f"{iteration + 1} of phase {self.phases + 1} (sal_lr {self.sal_lr:g}). Each update overshoots "
                    f"W; use a smaller sal_lr (the authors': 0.04).")
            errors.append(round(error, 4))
        return errors

    @torch.no_grad()
    def symmetrize(self) -> dict[str, float]:
        """Run one spiking phase and update the linear layers' B; returns {"sal_phase_s": seconds}."""
        import time

        started = time.perf_counter()
        device = self.linear[0].weight.device
        sizes = [self.linear[0].in_features] + [layer.out_features for layer in self.linear]
        neurons = [StochasticNeurons((1, self.chains, n), self.t_ref, tau_syn=self.t_ref, device=device,
                                     refractory=self.t_ref + 1) for n in sizes]
        biases = self.spiking_biases()
        noise = [RunNoise([mix_seed(self.seed, "sal-phase", self.phases, k)], (self.chains, n), device=device)
                 for k, n in enumerate(sizes)]
        window = ExponentialWindow(self.t_ref, buffer=2.0)
        pairs = [PairSTDP(window, "all") for _ in self.linear]  # pre: upper layer, post: lower layer
        weights = [layer.weight.detach().float() for layer in self.linear]
        for iteration in range(self.iterations):
            for acc in pairs:
                acc.reset()
            for _ in range(self.steps):
                psps = [pop.psp()[0] for pop in neurons]  # (chains, n)
                spikes = []
                for k, pop in enumerate(neurons):
                    potential = biases[k].expand_as(psps[k]).clone()
                    if k > 0:
                        potential += psps[k - 1] @ weights[k - 1].T
                    if k < len(self.linear):
                        potential += psps[k + 1] @ self.linear[k].feedback_weight.float()
                    spikes.append(pop.step(potential.unsqueeze(0), noise[k].next()))
                for k, acc in enumerate(pairs):
                    acc.observe(spikes[k + 1], spikes[k])
            for layer, acc in zip(self.linear, pairs, strict=True):
                update = sal_update(acc)[0].T / (self.chains * window.support)  # (out, in) like B
                layer.feedback_weight.add_(update.to(layer.feedback_weight.dtype), alpha=self.sal_lr)
            self.last_feedback_error = self.check_feedback(iteration)
        self.phases += 1
        self.last_phase_s = round(time.perf_counter() - started, 3)
        return {"sal_phase_s": self.last_phase_s}


def feedback_angles(rule: Any) -> dict[str, float]:
    """{layer: angle between W and B in degrees} for every feedback layer (empty for backprop)."""
    return {path: angle_degrees(layer.weight, layer.feedback_matrix()) for path, layer in feedback_layers(rule.model)}
