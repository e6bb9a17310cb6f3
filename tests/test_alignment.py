"""Alignment diagnostics: the metric functions, BP against itself, FA limits, and no side effects."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from creditlab.analysis.alignment import (
    AlignmentTracker,
    angle_degrees,
    measure_alignment,
    norm_ratio,
    sign_agreement,
)
from creditlab.models import build_model
from creditlab.rules import build_rule
from creditlab.rules.fa import feedback_layers


def test_angle_degrees_closed_forms() -> None:
    a = torch.tensor([1.0, 0.0, 0.0])
    assert angle_degrees(a, a) == 0.0
    assert angle_degrees(a, 3 * a) == 0.0
    assert angle_degrees(a, -a) == 180.0
    assert angle_degrees(a, torch.tensor([0.0, 2.0, 0.0])) == 90.0
    assert angle_degrees(a, torch.tensor([1.0, 1.0, 0.0])) == pytest.approx(45.0)
    assert math.isnan(angle_degrees(a, torch.zeros(3)))
    with pytest.raises(ValueError, match="shapes"):
        angle_degrees(a, torch.ones(4))


def test_random_directions_in_high_dimension_are_nearly_orthogonal() -> None:
    gen = torch.Generator().manual_seed(0)
    angles = [angle_degrees(torch.randn(100_000, generator=gen), torch.randn(100_000, generator=gen))
              for _ in range(5)]
    # cos ~ N(0, 1/n): the angle is 90 deg +- 0.18 deg (one std)
    assert all(abs(angle - 90.0) < 1.0 for angle in angles), angles


def test_sign_agreement_and_norm_ratio_by_hand() -> None:
    update = torch.tensor([1.0, -2.0, 3.0, 5.0, 0.0])
    true = torch.tensor([2.0, 1.0, 4.0, 0.0, -1.0])  # entry 3 ignored (true gradient zero)
    assert sign_agreement(update, true) == pytest.approx(2 / 4)
    assert norm_ratio(2 * true, true) == pytest.approx(2.0)
    assert math.isnan(sign_agreement(update, torch.zeros(5)))


def _batch(shape: tuple[int, ...], n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(n, *shape, generator=gen), torch.randint(0, 10, (n,), generator=gen)


def test_backprop_against_itself_is_perfectly_aligned() -> None:
    torch.manual_seed(0)
    rule = build_rule("bp", build_model("lenet", (1, 28, 28), 10))
    metrics = measure_alignment(rule, *_batch((1, 28, 28)))
    assert set(metrics) == {n for n, _ in rule.model.named_parameters()}
    for name, values in metrics.items():
        assert values["angle_deg"] == pytest.approx(0.0, abs=1e-3), name
        assert values["sign_agreement"] == 1.0, name
        assert values["norm_ratio"] == pytest.approx(1.0, rel=1e-5), name
        assert "weight_feedback_angle_deg" not in values


def test_fa_alignment_metrics() -> None:
    torch.manual_seed(0)
    model = build_model("mlp", (1, 28, 28), 10, hidden=(64, 32))
    x, y = _batch((1, 28, 28))
    rule = build_rule("fa", model)
    metrics = measure_alignment(rule, x, y)
    # readout: exact local gradient; the layer below sees a random direction at init (~90 deg)
    assert metrics["5.weight"]["angle_deg"] == pytest.approx(0.0, abs=1e-3)
    assert metrics["3.weight"]["angle_deg"] > 45.0
    assert all(60.0 < metrics[f"{i}.weight"]["weight_feedback_angle_deg"] < 120.0 for i in (1, 3, 5))
    assert "weight_feedback_angle_deg" not in metrics["1.bias"]
    # with feedback = forward weights, FA is backprop: every angle 0
    for _, layer in feedback_layers(rule.model):
        layer.feedback_weight.copy_(layer.weight.detach())
    for values in measure_alignment(rule, x, y).values():
        assert values["angle_deg"] == pytest.approx(0.0, abs=1e-3)
        assert values.get("weight_feedback_angle_deg", 0.0) == pytest.approx(0.0, abs=1e-3)


def test_usf_weight_feedback_angle_is_the_sign_angle() -> None:
    """angle(W, sign W) = arccos(|W|_1 / (sqrt(n) |W|_2)), whatever the scale of B."""
    torch.manual_seed(0)
    rule = build_rule("usf", build_model("mlp", (1, 28, 28), 10, hidden=(32,)))
    metrics = measure_alignment(rule, *_batch((1, 28, 28)))
    weight = rule.model[1].weight.detach().double().flatten()
    expected = math.degrees(math.acos(float(weight.abs().sum() / (weight.numel() ** 0.5 * weight.norm()))))
    assert metrics["1.weight"]["weight_feedback_angle_deg"] == pytest.approx(expected, abs=1e-6)


def test_dfa_alignment_readout_exact_hidden_layers_not() -> None:
    torch.manual_seed(0)
    rule = build_rule("dfa", build_model("mlp", (1, 28, 28), 10, hidden=(64, 32)))
    metrics = measure_alignment(rule, *_batch((1, 28, 28)))
    assert metrics["5.weight"]["angle_deg"] == pytest.approx(0.0, abs=1e-3)
    assert metrics["1.weight"]["angle_deg"] > 45.0


class DropNet(nn.Module):
    """BatchNorm (running statistics) and dropout (global RNG): both must be left as they were."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(36, 16), nn.BatchNorm1d(16), nn.ReLU(),
                                  nn.Dropout(0.3), nn.Linear(16, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.body(x)


@pytest.mark.parametrize("rule_name", ["brsf", "bp", "dfa"])
def test_measuring_does_not_change_the_training_trajectory(rule_name: str) -> None:
    torch.manual_seed(0)
    base = DropNet()
    base.input_shape = (1, 6, 6)
    x, y = _batch((1, 6, 6), n=16)
    probe_x, probe_y = _batch((1, 6, 6), n=8)

    def train(measure: bool) -> tuple[nn.Module, list[torch.Tensor]]:
        torch.manual_seed(123)
        rule = build_rule(rule_name, copy.deepcopy(base), **({"seed": 3} if rule_name != "bp" else {}))
        optimizer = torch.optim.SGD(rule.model.parameters(), lr=0.1)
        for step in range(6):
            rule.step(x, y)
            if measure and step in (2, 4):
                grads = [p.grad.clone() for p in rule.model.parameters()]
                rule.model.eval()  # e.g. a trainer that evaluated just before the callback
                measure_alignment(rule, probe_x, probe_y)
                assert not rule.model.training  # modes restored
                rule.model.train()
                params = rule.model.parameters()
                assert all(torch.equal(g, p.grad) for g, p in zip(grads, params, strict=True))
            optimizer.step()
        return rule.model, [p.detach() for p in rule.model.parameters()]

    plain_model, plain = train(measure=False)
    measured_model, measured = train(measure=True)
    assert all(torch.equal(a, b) for a, b in zip(plain, measured, strict=True))
    states = zip(plain_model.state_dict().items(), measured_model.state_dict().values(), strict=True)
    for (key, a), b in states:
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b), key
        else:
            assert a == b, key


def test_alignment_tracker_callback() -> None:
    torch.manual_seed(0)
    rule = build_rule("fa", build_model("mlp", (1, 28, 28), 10, hidden=(16,)))
    tracker = AlignmentTracker(*_batch((1, 28, 28)), every=2)
    assert tracker.on_epoch_end(rule, 1) == {}
    record = tracker.on_epoch_end(rule, 2)
    assert set(record) == {"alignment"}
    assert set(record["alignment"]["1.weight"]) == {"angle_deg", "sign_agreement", "norm_ratio",
                                                    "weight_feedback_angle_deg"}
    with pytest.raises(ValueError, match="batch size"):
        AlignmentTracker(torch.zeros(3, 1, 28, 28), torch.zeros(2, dtype=torch.long))


def test_true_gradients_are_autograd() -> None:
    """Independent check of the reference itself on a tiny closed form: d/dw CE(w x) = (p - y) x^T."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4, bias=False))
    rule = build_rule("bp", model)
    x, y = torch.randn(2, 3), torch.tensor([1, 3])
    true = rule.true_gradients(x, y)["0.weight"]
    expected = (torch.softmax(model(x), 1) - F.one_hot(y, 4)).T @ x / 2
    torch.testing.assert_close(true, expected.detach())
