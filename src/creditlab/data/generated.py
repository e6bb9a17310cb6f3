"""Datasets the library builds itself (seeded, no download): e-prop's evidence-accumulation task.

The evidence-accumulation (cue) task of Bellec et al. 2020 (Fig. 3), as the authors build it
(``generate_click_task_data`` in IGITUGraz/eligibility_propagation, Figure 3 tutorials): 40 input
channels in four groups of 10 (left cues, right cues, recall, background noise). Each example first
draws a side: the left group's cue probability is 0.3 or 0.7 (each with probability 1/2) and every
one of the ``n_cues`` cues is left with that probability, else right. Cue ``k`` drives its group's
10 channels as Poisson spike trains at ``rate`` (40 Hz) during ``[t_interval - t_cue + k t_interval,
+ t_cue)``; the noise group fires at ``rate / 4`` throughout; the recall group fires during the
last ``recall`` steps. The target is the majority side (1: right), scored at every step of the recall
window (every other step is ``IGNORE_INDEX``). One step is 1 ms.

Inputs are stored as uint8 spikes ``(N, time, 40)`` (a quarter of float32's memory; the model casts),
targets as int64 ``(N, time)``. Train, validation and test examples come from their own seeded streams.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from creditlab.seeding import seeded_generator
from creditlab.tasks import IGNORE_INDEX, SEQUENCE_CLASSIFICATION

CHANNELS_PER_GROUP = 10


@dataclass(frozen=True)
class EvidenceTask:
    """The cue task's timing (steps of 1 ms) and rates; the paper's defaults."""

    n_cues: int = 7
    t_cue: int = 100
    t_interval: int = 150
    delay: int = 1050
    recall: int = 150
    rate_hz: float = 40.0
    p_group: float = 0.3

    @property
    def steps(self) -> int:
        """Sequence length: the cues, the delay and the recall window (the paper's 7 x 150 + 1200)."""
        return self.n_cues * self.t_interval + self.delay + self.recall

    def generate(self, count: int, generator: torch.Generator, chunk: int = 256
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """``count`` examples: spikes uint8 (count, steps, 40) and targets int64 (count, steps)."""
        xs, ys = [], []
        for start in range(0, count, chunk):
            x, y = self._chunk(min(chunk, count - start), generator)
            xs.append(x)
            ys.append(y)
        if not xs:
            return torch.zeros(0, self.steps, 4 * CHANNELS_PER_GROUP, dtype=torch.uint8), \
                torch.zeros(0, self.steps, dtype=torch.int64)
        return torch.cat(xs), torch.cat(ys)

    def _chunk(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        rate = self.rate_hz / 1000.0
        group = CHANNELS_PER_GROUP
        left_prob = torch.where(torch.rand(n, generator=generator) < 0.5, self.p_group, 1 - self.p_group)
        right = torch.rand(n, self.n_cues, generator=generator) >= left_prob[:, None]  # True: right cue
        prob = torch.zeros(n, self.steps, 4 * group)
        silence = self.t_interval - self.t_cue
        for k in range(self.n_cues):
            start = silence + k * self.t_interval
            window = prob[:, start:start + self.t_cue]
            window[:, :, :group] += (~right[:, k]).float()[:, None, None] * rate
            window[:, :, group:2 * group] += right[:, k].float()[:, None, None] * rate
        prob[:, -self.recall:, 2 * group:3 * group] = rate
        prob[:, :, 3 * group:] = rate / 4
        spikes = (torch.rand(prob.shape, generator=generator) < prob).to(torch.uint8)
        label = (right.sum(1) > self.n_cues // 2).long()
        targets = torch.full((n, self.steps), IGNORE_INDEX, dtype=torch.int64)
        targets[:, -self.recall:] = label[:, None]
        return spikes, targets


def build_generated(name: str, task: EvidenceTask, train_size: int, test_size: int, seed: int,
                    val_fraction: float, device: torch.device):
    """The generated dataset ``name`` as a :class:`creditlab.data.Dataset` on ``device``."""
    from creditlab.data.dataset import Dataset
    from creditlab.data.specs import DATASETS

    n_val = int(round(val_fraction * train_size))
    train_x, train_y = task.generate(train_size - n_val, seeded_generator(seed, "dataset", name, "train"))
    val_x, val_y = task.generate(n_val, seeded_generator(seed, "dataset", name, "val"))
    # the test set does not depend on the run's seed: every run is scored on the same examples
    test_x, test_y = task.generate(test_size, seeded_generator(0, "dataset", name, "test"))
    return Dataset(DATASETS.get(name), train_x.to(device), train_y.to(device), val_x.to(device), val_y.to(device),
                   test_x.to(device), test_y.to(device), task=SEQUENCE_CLASSIFICATION)


#: the paper's task (2250 steps) and a short one for demos and tests (same structure, 235 steps)
EVIDENCE = EvidenceTask()
EVIDENCE_SHORT = EvidenceTask(n_cues=7, t_cue=15, t_interval=20, delay=50, recall=45)

__all__ = ["EVIDENCE", "EVIDENCE_SHORT", "EvidenceTask", "build_generated"]
