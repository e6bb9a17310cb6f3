"""Predictive coding (rule ``pc``): exactly backprop under the fixed-prediction assumption (float64,
autograd), the standard variant's alignment with BP as the theory says, refusals, kill-and-resume."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from conftest import killed_and_resumed
from creditlab.cli import app
from creditlab.errors import IncompatibleModelError
from creditlab.models import build_model
from creditlab.rules import build_rule
from creditlab.train import train_from_names

HIDDEN = (12, 9, 7)  # L = 4 weight layers


def _setup(activation: str = "relu", batch: int = 16, seed: int = 0):  # noqa: ANN202
    torch.manual_seed(seed)
    net = build_model("mlp", (1, 4, 4), 5, hidden=HIDDEN, activation=activation).double()
    x = torch.randn(batch, 1, 4, 4, dtype=torch.float64)
    y = torch.randint(0, 5, (batch,))
    return net, x, y


def _bp(net, x, y, energy: str = "ce"):  # noqa: ANN001, ANN202
    out = net(x)
    loss = F.cross_entropy(out, y) if energy == "ce" else \
        0.5 * (out - F.one_hot(y, 5).double()).pow(2).sum(1).mean()
    return torch.autograd.grad(loss, list(net.parameters()))


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("energy", ["ce", "se"])
def test_fixed_prediction_pc_equals_backprop_exactly(activation: str, energy: str) -> None:
    """Millidge et al. 2022: fixed predictions, inference rate 1, T = L - 1 steps -> BP's gradient."""
    net, x, y = _setup(activation)
    build_rule("pc", net, T=len(HIDDEN), inference_rate=1.0, fixed_prediction=True, energy=energy).step(x, y)
    for param, grad in zip(net.parameters(), _bp(net, x, y, energy), strict=True):
        assert float((param.grad - grad).abs().max()) <= 1e-10


def _layer_cosines(T: int, rate: float) -> list[float]:
    net, x, y = _setup(batch=32)
    build_rule("pc", net, T=T, inference_rate=rate).step(x, y)
    weights = [p for name, p in net.named_parameters() if name.endswith("weight")]
    grads = [g for (name, _), g in zip(net.named_parameters(), _bp(net, x, y), strict=True) if name.endswith("weight")]
    return [float(F.cosine_similarity(p.grad.flatten(), g.flatten(), 0)) for p, g in zip(weights, grads, strict=True)]


def test_standard_pc_aligns_with_backprop_as_the_inference_rate_shrinks() -> None:
    """Each layer's update direction tends to BP's as the inference rate goes to 0 (T >= L - 1 fixed)."""
    rates = (0.5, 0.1, 0.01, 0.001)
    cosines = [_layer_cosines(20, rate) for rate in rates]
    for layer in range(len(HIDDEN) + 1):
        series = [c[layer] for c in cosines]
        assert all(a < b + 1e-6 for a, b in zip(series[:-1], series[1:], strict=True)), (layer, series)
    assert min(cosines[-1]) > 0.99
    assert min(cosines[0]) < 0.9  # not BP at a large rate


def test_errors_reach_one_layer_further_down_per_inference_step() -> None:
    """At a small rate, after T steps only the T layers below the output have errors (the others' updates
    are exactly zero); at T = L - 1 every layer's update is aligned with BP's."""
    depth = len(HIDDEN) + 1
    for T in range(1, depth):
        net, x, y = _setup(batch=32)
        build_rule("pc", net, T=T, inference_rate=0.01).step(x, y)
        weights = [p for name, p in net.named_parameters() if name.endswith("weight")]
        for index, weight in enumerate(weights):
            assert bool((weight.grad == 0).all()) == (depth - 1 - index > T), (T, index)
    assert min(_layer_cosines(depth - 1, 0.01)) > 0.99


def test_bad_options_are_refused() -> None:
    net, _, _ = _setup()
    with pytest.raises(ValueError, match="option T .* must be an integer >= 1, got 0"):
        build_rule("pc", net, T=0)
    with pytest.raises(ValueError, match="option energy must be one of se, ce"):
        build_rule("pc", net, energy="kl")
    with pytest.raises(ValueError, match="inference_rate must be a finite number > 0"):
        build_rule("pc", net, inference_rate=0.0)
    with pytest.raises(ValueError, match="variant must be one of pc, ipc"):
        build_rule("pc", net, variant="zil")
    with pytest.raises(IncompatibleModelError, match="rule 'pc' cannot train model 'mlp'.*GELU"):
        build_rule("pc", build_model("mlp", (1, 4, 4), 5, activation="gelu"))
    with pytest.raises(IncompatibleModelError, match="rule 'pc' cannot train model 'lenet'"):
        build_rule("pc", build_model("lenet", (1, 28, 28), 10))


@pytest.mark.parametrize(("option", "name"), [("T=0", "T"), ("energy=kl", "energy")])
def test_cli_refuses_bad_options_with_exit_2(option: str, name: str, tmp_path) -> None:  # noqa: ANN001
    result = CliRunner().invoke(app, ["train", "--rule", "pc", "--model", "mlp", "--epochs", "1", "--quiet",
                                      "--rule-opt", option, "--out", str(tmp_path)])
    assert result.exit_code == 2 and name in result.output, result.output


def test_ipc_moves_the_weights_during_inference_and_needs_plain_sgd(mnist_small, one_thread) -> None:  # noqa: ANN001
    net, x, y = _setup()
    rule = build_rule("pc", net, T=4, variant="ipc")
    rule.weight_lr = 0.1
    before = [p.detach().clone() for p in net.parameters()]
    rule.step(x, y)
    assert any(not torch.equal(a, p) for a, p in zip(before, net.parameters(), strict=True))
    with pytest.raises(Exception, match="optimizer"):
        train_from_names("pc", "mlp", "mnist", loaded=mnist_small, rule_options={"variant": "ipc"}, epochs=1,
                         train_limit=100, optimizer="adam", progress=False)


def test_killed_and_resumed_pc_run_equals_the_uninterrupted_one(mnist_small, tmp_path, monkeypatch,
                                                                one_thread) -> None:  # noqa: ANN001
    options = {"model_options": {"hidden": (32, 32)}, "epochs": 2, "train_limit": 1000, "test_limit": 200,
               "batch_size": 100, "progress": False, "rule_options": {"T": 3}}
    full, resumed, a, b = killed_and_resumed("pc", "mlp", mnist_small, tmp_path, monkeypatch, 15, **options)
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in full["history"]]
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert full["test_accuracy"] > 0.5
