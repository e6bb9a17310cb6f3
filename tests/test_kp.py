"""Kolen-Pollack: FA's W update, B's update by hand, B -> W on a linear net, bad options."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from creditlab.analysis.alignment import angle_degrees
from creditlab.models import build_model
from creditlab.rules import build_rule
from creditlab.rules.fa import feedback_layers


def _tiny_mlp() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(7, 5), nn.ReLU(), nn.Linear(5, 3)).double()
    return model, torch.randn(4, 7, dtype=torch.float64), torch.tensor([0, 2, 1, 2])


def _hand_gradients(model: nn.Module, feedback: torch.Tensor, x: torch.Tensor, y: torch.Tensor
                    ) -> dict[str, torch.Tensor]:
    """FA on x -> W1 -> relu -> W2, in float64 by hand: dW1 = ((e B2) * relu'(a1))^T x, dW2 = e^T h1."""
    w1, b1, w2, b2 = (p.detach() for p in model.parameters())
    pre = x @ w1.T + b1
    hidden = pre.clamp_min(0)
    error = (torch.softmax(hidden @ w2.T + b2, 1) - F.one_hot(y, 3)) / len(y)  # dL/dlogits, mean CE
    delta = (error @ feedback) * (pre > 0)
    return {"0.weight": delta.T @ x, "0.bias": delta.sum(0), "2.weight": error.T @ hidden, "2.bias": error.sum(0)}


def test_kp_weight_update_equals_fa_with_the_same_feedback() -> None:
    model, x, y = _tiny_mlp()
    kp = build_rule("kp", model, seed=5)
    fa = build_rule("fa", copy.deepcopy(model), seed=6)
    for (_, kp_layer), (_, fa_layer) in zip(feedback_layers(kp.model), feedback_layers(fa.model), strict=True):
        fa_layer.feedback_weight.copy_(kp_layer.feedback_weight)
    readout_feedback = kp.feedback_matrices()["2.weight"].clone()
    kp.step(x, y)
    fa.step(x, y)
    expected = _hand_gradients(model, readout_feedback, x, y)
    for (name, p), q in zip(kp.model.named_parameters(), fa.model.parameters(), strict=True):
        torch.testing.assert_close(p.grad, expected[name])
        assert torch.equal(p.grad, q.grad), name
    assert not torch.allclose(readout_feedback, model[2].weight)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_kp_feedback_update_is_the_weight_gradient_outer_product_plus_decay(momentum: float) -> None:
    model, x, y = _tiny_mlp()
    lr, decay = 0.3, 0.05
    rule = build_rule("kp", model, seed=1, feedback_lr=lr, feedback_momentum=momentum, decay=decay)
    velocity = {key: torch.zeros_like(b) for key, b in rule.feedback_matrices().items()}
    for _ in range(2):  # the second step checks the velocity carried over
        before = {key: b.clone() for key, b in rule.feedback_matrices().items()}
        expected_grads = _hand_gradients(rule.model, before["2.weight"], x, y)
        rule.step(x, y)
        after = rule.feedback_matrices()
        for key in before:
            velocity[key] = momentum * velocity[key] + expected_grads[key] + decay * before[key]
            torch.testing.assert_close(after[key], before[key] - lr * velocity[key])
        with torch.no_grad():
            for p in rule.model.parameters():
                p -= 0.1 * p.grad


def test_kp_feedback_converges_to_the_weights_of_a_linear_net(one_thread) -> None:  # noqa: ANN001
    """SGD at the feedback's own lr/momentum/decay: W - B decays as the KP identity says, the angle falls."""
    torch.manual_seed(0)
    teacher = torch.randn(10, 4)
    x = torch.randn(256, 10)
    y = (x @ teacher).argmax(1)
    model = nn.Sequential(nn.Linear(10, 20, bias=False), nn.Linear(20, 4, bias=False))
    lr, decay = 0.1, 0.1
    rule = build_rule("kp", model, seed=3, feedback_lr=lr, feedback_momentum=0.0, decay=decay)
    optimizer = torch.optim.SGD(rule.model.parameters(), lr=lr, weight_decay=decay)
    layers = [layer for _, layer in feedback_layers(rule.model)]
    start = [angle_degrees(layer.weight, layer.feedback_weight) for layer in layers]
    gaps = [(layer.weight - layer.feedback_weight).detach().clone() for layer in layers]
    steps = 300
    for step in range(steps):
        batch = slice((step * 32) % 256, (step * 32) % 256 + 32)
        rule.step(x[batch], y[batch])
        optimizer.step()
    end = [angle_degrees(layer.weight, layer.feedback_weight) for layer in layers]
    for gap, layer in zip(gaps, layers, strict=True):  # D_t = (1 - lr decay)^t D_0, whatever the data
        torch.testing.assert_close(layer.weight - layer.feedback_weight, gap * (1 - lr * decay) ** steps,
                                   rtol=1e-4, atol=1e-6)
    assert all(75 < a < 105 for a in start), start
    assert all(a < 10 for a in end), end  # measured: 88.9, 88.9 degrees -> 4.8, 1.8


def test_kp_trains_what_fa_trains_and_refuses_what_fa_refuses() -> None:
    torch.manual_seed(0)
    rule = build_rule("kp", build_model("arelu-lc", (1, 28, 28), 10))
    assert len(list(feedback_layers(rule.model))) == 4
    from creditlab.errors import IncompatibleModelError

    with pytest.raises(IncompatibleModelError, match="Conv1d"):
        build_rule("kp", nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(2, 2)))


@pytest.mark.parametrize(("option", "value"), [("feedback_lr", -0.1), ("feedback_momentum", 1.0),
                                               ("decay", float("nan"))])
def test_kp_refuses_bad_options(option: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"kp option {option} must be"):
        build_rule("kp", nn.Sequential(nn.Linear(3, 2)), **{option: value})
