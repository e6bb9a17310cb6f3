"""Every registered rule visibly learns (issue #25): each trains at its own demo setting
(``Rule.demo``, the one place its budget and floor live) and must reach that floor, which is at least
chance + 0.40 unless the setting says why not. The test enumerates the registry, so a rule registered
later is covered the day it is registered; the former DTP (9.8 % on MNIST, chance) fails it.
"""

from __future__ import annotations

import functools

import pytest
import torch

from creditlab.bench.demo import demo_setting, plan_demo, train_demo_run
from creditlab.data import load_dataset
from creditlab.data.specs import DATASETS
from creditlab.rules import RULES

#: gradient-approximating and STDP rules must clear chance by this much (issue #25); a rule whose
#: setting gives a reason (``why``) may sit lower, never at chance
MARGIN_OVER_CHANCE = 0.40


@functools.cache
def _data(dataset: str, normalization: str):
    return load_dataset(dataset, normalization=normalization, allow_download=False)


@pytest.mark.parametrize("rule", RULES.names())
def test_every_rule_has_a_demo_floor_well_above_chance(rule):
    setting = demo_setting(rule)
    chance = 1.0 / DATASETS.get(setting.dataset).num_classes
    assert 0.0 < setting.floor < 1.0
    if not setting.why:
        assert setting.floor >= chance + MARGIN_OVER_CHANCE - 1e-9, (
            f"{rule}: floor {setting.floor} is below chance {chance:.2f} + {MARGIN_OVER_CHANCE} and gives no reason")
    else:
        assert setting.floor >= chance + 0.10, f"{rule}: a floor at chance is no floor"


@pytest.mark.parametrize("rule", RULES.names())
def test_every_rule_learns_at_its_demo_setting(rule, data_root):
    (run,) = plan_demo([rule])
    data = _data(run.setting.dataset, run.normalization)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        summary = train_demo_run(run, data)
    finally:
        torch.set_num_threads(threads)
    assert summary["test_accuracy"] >= run.setting.floor, (
        f"{rule} on {run.model} ended at {summary['test_accuracy']:.4f}, below its demo floor {run.setting.floor}")
