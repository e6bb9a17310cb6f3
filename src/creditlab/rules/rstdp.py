"""R-STDP (Mozafari et al. 2018, as configured by Goupy et al. 2024): reward-modulated STDP.

Only the global first neuron to fire is updated (error magnitude 1): STDP with ``(A+, A-) (1 - acc)``
when its class is the label (and it is target-labelled), else anti-STDP with the anti-rates times
``acc``; ``acc`` is the training accuracy of the previous epoch (1 / C before the first). Optional
dropout of output neurons during training (a generator per epoch, ``seeded_generator(seed,
"rstdp-dropout", epoch)``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from creditlab.rules import register_rule
from creditlab.rules.base import DemoSetting
from creditlab.seeding import seeded_generator
from creditlab.spiking.event_layer import FirstSpikes, first_to_fire
from creditlab.spiking.supervised import SupervisedSTDPRule, stdp_optimizer_requirement


@register_rule("rstdp")
class RSTDP(SupervisedSTDPRule):
    name = "rstdp"
    optimizer_requirement = stdp_optimizer_requirement("rstdp")
    description = "R-STDP: reward-modulated STDP on the first neuron to fire (spiking classifier)"
    # latency-coded pixels (784 inputs, ~150 spikes per image): threshold 25 instead of the features' 200;
    # only the winner learns, so without output dropout three neurons win every sample (measured 0.29);
    # with dropout 0.8 and doubled rates: 0.62 after 2 epochs x 3000 images
    demo = DemoSetting(floor=0.50, model="spiking-fc", epochs=2, model_options={"threshold": 25.0, "weight_norm": True},
                       rule_options={"dropout": 0.8, "a_plus": 0.1, "anti_a_plus": -0.1})

    def __init__(self, model: nn.Module, a_plus: float = 0.05, a_minus: float = -0.001,
                 anti_a_plus: float = -0.05, anti_a_minus: float = 0.001, dropout: float = 0.0,
                 seed: int = 0, annealing: float = 0.98, threshold_lr: float = 0.0,
                 threshold_annealing: float = 1.0, time_chunk: int | None = 1024, **kwargs: Any) -> None:
        super().__init__(model, a_plus=a_plus, a_minus=a_minus, annealing=annealing, threshold_lr=threshold_lr,
                         threshold_annealing=threshold_annealing, time_chunk=time_chunk, **kwargs)
        if anti_a_plus > 0 or anti_a_minus < 0:
            raise ValueError(f"anti-STDP rates need anti_a_plus <= 0 and anti_a_minus >= 0, got "
                             f"{anti_a_plus}, {anti_a_minus}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.dropout, self.seed = float(dropout), int(seed)
        self.register_buffer("anti_a_plus", torch.tensor(float(anti_a_plus)))
        self.register_buffer("anti_a_minus", torch.tensor(float(anti_a_minus)))
        self.register_buffer("accuracy", torch.tensor(1.0 / self.classifier.groups.num_classes))
        self.register_buffer("epoch_correct", torch.zeros((), dtype=torch.long))
        self.register_buffer("epoch_seen", torch.zeros((), dtype=torch.long))
        self._generator = seeded_generator(self.seed, "rstdp-dropout", 0)

    def sample_update(self, x: torch.Tensor, label: int, spikes: FirstSpikes
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        clf = self.classifier
        mask = None
        if self.dropout > 0:
            keep = torch.rand(clf.groups.num_neurons, generator=self._generator) >= self.dropout
            mask = keep.to(spikes.times.device)
        winner = first_to_fire(spikes.times, spikes.potentials, mask).reshape(1)
        rewarded = bool(clf.neuron_class[winner] == label) and bool(clf.target_labelled[winner])
        self.epoch_correct += int(bool(clf.neuron_class[winner] == label))
        self.epoch_seen += 1
        one = torch.ones(1, dtype=spikes.times.dtype, device=spikes.times.device)
        if rewarded:
            scale = 1.0 - self.accuracy
            return winner, spikes.times[winner], one, self.a_plus * scale, self.a_minus * scale
        return winner, spikes.times[winner], one, self.anti_a_plus * self.accuracy, self.anti_a_minus * self.accuracy

    def on_epoch_start(self, epoch: int) -> None:
        super().on_epoch_start(epoch)
        self._generator = seeded_generator(self.seed, "rstdp-dropout", epoch)
        self.epoch_correct.zero_()
        self.epoch_seen.zero_()

    def anneal_extra(self) -> None:
        self.anti_a_plus.mul_(self.annealing)
        self.anti_a_minus.mul_(self.annealing)
        if int(self.epoch_seen) > 0:
            self.accuracy.fill_(int(self.epoch_correct) / int(self.epoch_seen))
