"""Every (rule, model) pair that ``creditlab rules`` lists trains one short step from the CLI (issue #27
item 1): the model's own input encoding, its natural dataset, the trainer, evaluation and the
checkpoint, through ``creditlab train``. The pairs come from the construction check itself
(:func:`creditlab.bench.rules_table.build_table`), so the table cannot list a pair that fails.
"""

from __future__ import annotations

import functools
import json

import pytest
from typer.testing import CliRunner

from creditlab.bench.rules_table import build_table
from creditlab.cli import app
from creditlab.data import load_dataset
from creditlab.models import MODELS

#: options that only shrink a one-off preparation for a one-step run: the STDP-CSNN extractor is otherwise
#: fitted on 10,000 images, SAL's spiking phase runs 5 x 100 steps of 32 chains before the first step, and
#: the energy conv net relaxes 40 times per step (~1 min a step at its full width on a CPU)
SMALL_MODEL = {"stdp-csnn": {"extractor_train": 16}, "energy-convnet": {"channels": [4, 4, 4, 4]}}
SMALL_RULE = {"sal": {"iterations": 1, "steps": 20, "chains": 2}}

PAIRS = [(rule, model) for rule, row in build_table().items() for model in row["models"]]


@functools.cache
def _cached_load(*args, **kwargs):
    return load_dataset(*args, **kwargs)


@pytest.mark.parametrize(("rule", "model"), PAIRS, ids=[f"{r}-{m}" for r, m in PAIRS])
def test_listed_pair_trains_one_step_from_the_cli(rule, model, tmp_path, monkeypatch, data_root):
    monkeypatch.setattr("creditlab.train.load_dataset", _cached_load)  # the same data, read once per session
    dataset = MODELS.get(model).default_dataset
    options = [arg for key, value in SMALL_MODEL.get(model, {}).items() for arg in ("--model-opt", f"{key}={value}")]
    options += [arg for key, value in SMALL_RULE.get(rule, {}).items() for arg in ("--rule-opt", f"{key}={value}")]
    result = CliRunner().invoke(app, ["train", "--rule", rule, "--model", model, "--data", dataset, "--epochs", "1",
                                      "--train-limit", "8", "--test-limit", "8", "--batch-size", "8", "--quiet",
                                      "--json", "--out", str(tmp_path), *options])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["epochs"] == 1 and summary["rule"] == rule and summary["model"] == model
