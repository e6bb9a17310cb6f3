"""sal-microcircuit: BP's feedback is W21 copied, FA's stays at its start, SAL changes it only in
symmetrization phases; the quick reproduction; a bad protocol option is refused."""

from __future__ import annotations

import json

import pytest
import torch

from creditlab.experiments import ExperimentContext
from creditlab.experiments import sal_microcircuit as micro


def test_feedback_per_rule_after_training_patterns() -> None:
    protocol = micro.MicrocircuitProtocol(1, 80, 20, 20, 8.0, 0.12, 0.5, 1)
    net = micro.Microcircuits(["bp", "fa", "sal"], [0, 0, 0], 3, protocol)
    start = net.w_down.clone()
    u, target = torch.full((3, 1, 1), 2.0), torch.full((3, 1, 1), 0.5)
    no = torch.zeros(3, 1, 1, dtype=torch.bool)
    net.pattern(u, target, True, no)
    assert torch.equal(net.w_down[0], net.w21[0])  # bp: copied transpose
    assert torch.equal(net.w_down[1:], start[1:])  # fa fixed; sal unchanged outside symmetrization
    w10, w21 = net.w10.clone(), net.w21.clone()
    net.pattern(u, target, True, net.is_sal)  # symmetrization phase for the sal run only
    assert not torch.equal(net.w_down[2], start[2])
    assert torch.equal(net.w10[2], w10[2]) and torch.equal(net.w21[2], w21[2])  # forward plasticity off


def test_quick_reproduction_writes_one_record_per_rule(tmp_path) -> None:
    records = micro.run(ExperimentContext(quick=True, out_dir=tmp_path))
    lines = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["name"] for r in lines] == [f"sal-microcircuit/{r}" for r in micro.RULES] == [r["name"] for r in records]
    assert all(len(r["epochs"]) == 2 and len(r["final"]["final_val_loss_per_seed"]) == 2 for r in lines)
    assert lines[0]["final"]["final_feedback_error"]["median"] == 0.0


def test_bad_protocol_option_is_refused() -> None:
    ctx = ExperimentContext()
    ctx.options = {"protocol": "long"}  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="protocol must be 'cpu' or 'paper', got 'long'"):
        micro.run(ctx)
