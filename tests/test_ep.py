"""Equilibrium propagation (issue #30): the estimates against the gradient at the free fixed point
computed independently here (Φ written out and differentiated by autograd, the fixed point's
Jacobian solved densely: implicit differentiation), the bias orders on a β sweep, hEP's exactness at
finite β, the refusals, and a run from the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from creditlab.cli import app
from creditlab.errors import IncompatibleModelError
from creditlab.models import build_model
from creditlab.rules import build_rule

STEPS = 400  # relaxation steps: the small net's fixed-point iteration converges far below 1e-12
CONV_STEPS = 150  # the same for the tiny conv net (autograd per step: fewer)


def _tiny(output: str = "readout", activation: str = "my-sigmoid"):
    return build_model("energy-mlp", (1, 3, 3), 3, hidden=[5, 4], dtype="float64", seed=3, output=output,
                       activation=activation)


def _batch():
    generator = torch.Generator().manual_seed(7)
    return torch.rand(6, 1, 3, 3, generator=generator, dtype=torch.float64), torch.tensor([0, 1, 2, 2, 1, 0])


def _implicit_gradient(model, x, y, loss: str) -> list[torch.Tensor]:
    """dL/dθ at s* = σ(∂Φ/∂s(s*)) from Φ itself (autograd), by a dense solve of (I − ∂G/∂s)ᵀ λ = ∂L/∂s."""
    params = [p.detach().clone().requires_grad_(True) for p in model.parameters()]
    flat = x.reshape(x.shape[0], -1)
    widths = model.state_widths
    sizes = [flat.shape[0] * w for w in widths]

    def split(vector):
        return [part.reshape(flat.shape[0], -1) for part in torch.split(vector, sizes)]

    def phi(vector, theta):
        states = [flat, *split(vector)]
        return sum(((states[k] @ theta[2 * k].T + theta[2 * k + 1]) * states[k + 1]).sum()
                   for k in range(len(widths)))

    def sigma(u):
        return 1 / (1 + torch.exp(2 - 4 * u)) if model.activation == "my-sigmoid" else u.clamp(0, 1)

    def step(vector, theta):
        vector = vector if vector.requires_grad else vector.requires_grad_(True)
        (drive,) = torch.autograd.grad(phi(vector, theta), vector, create_graph=True)
        return sigma(drive)

    def loss_of(vector, theta):
        last = split(vector)[-1]
        out = last @ theta[-2].T + theta[-1] if model.output_kind == "readout" else last
        if loss == "ce":
            return torch.nn.functional.cross_entropy(out, y)
        return 0.5 * ((out - torch.nn.functional.one_hot(y, 3).double()) ** 2).sum(1).mean()

    state = torch.zeros(sum(sizes), dtype=torch.float64)
    for _ in range(STEPS):
        state = step(state.detach(), params).detach()
    assert (step(state.clone(), params) - state).abs().max() < 1e-13  # a fixed point
    state = state.requires_grad_(True)
    jacobian = torch.autograd.functional.jacobian(lambda v: step(v, params), state)
    (loss_state,) = torch.autograd.grad(loss_of(state, params), state)
    adjoint = torch.linalg.solve((torch.eye(len(state), dtype=torch.float64) - jacobian).T, loss_state)
    mapped = step(state, params)
    through = torch.autograd.grad(mapped, params, adjoint, allow_unused=True)
    direct = (torch.autograd.grad(loss_of(state.detach(), params), params, allow_unused=True)
              if model.output_kind == "readout" else [None] * len(params))
    return [(a if a is not None else 0) + (b if b is not None else 0) for a, b in zip(direct, through, strict=True)]


def _error(rule: str, beta: float, loss: str = "ce", output: str = "readout", **options) -> float:
    model = _tiny(output)
    x, y = _batch()
    true = _implicit_gradient(model, x, y, loss)
    learner = build_rule(rule, model, T1=STEPS, T2=STEPS, beta=beta, loss=loss, **options)
    learner.step(x, y)
    scale = max(t.abs().max().item() for t in true)
    return max((p.grad - t).abs().max().item() for p, t in zip(model.parameters(), true, strict=True)) / scale


@pytest.mark.parametrize(("loss", "output"), [("ce", "readout"), ("mse", "neurons")])
def test_bias_of_ep_is_first_order_and_of_symmetric_ep_second_order_in_beta(loss, output) -> None:
    betas = [0.08, 0.04, 0.02, 0.01]
    for rule, order in (("ep", 1.0), ("ep-sym", 2.0)):
        errors = [_error(rule, b, loss, output) for b in betas]
        slopes = [math.log(errors[i] / errors[i + 1]) / math.log(2) for i in range(len(betas) - 1)]
        assert all(abs(s - order) < 0.15 for s in slopes), (rule, errors, slopes)
        assert errors[-1] < (0.05 if order == 1 else 1e-3)


def test_symmetric_ep_equals_the_mean_of_plus_and_minus_one_sided_estimates() -> None:
    model = _tiny()
    x, y = _batch()
    grads = {}
    for rule, beta in (("ep", 0.1), ("ep", -0.1), ("ep-sym", 0.1)):
        build_rule(rule, model, T1=STEPS, T2=STEPS, beta=beta).step(x, y)
        grads[(rule, beta)] = [p.grad.clone() for p in model.parameters()]
    for plus, minus, sym in zip(grads[("ep", 0.1)], grads[("ep", -0.1)], grads[("ep-sym", 0.1)], strict=True):
        torch.testing.assert_close(sym, (plus + minus) / 2, rtol=0, atol=1e-12)


def test_holomorphic_ep_is_exact_at_finite_beta() -> None:
    """hEP with 16 points matches the implicit gradient to ~1e-8 at β = 0.1 and 1e-12 at 0.05 (Laborieux &
    Zenke 2022); the error falls geometrically with N (trapezoid rule of an analytic function)."""
    assert _error("hep", 0.1, N=16) < 1e-7
    errors = [_error("hep", 0.05, N=n) for n in (4, 8, 16)]
    assert errors[2] < 1e-11 and errors[1] < 1e-5 < errors[0], errors


def test_true_gradients_are_the_implicit_gradient() -> None:
    model = _tiny()
    x, y = _batch()
    true = _implicit_gradient(model, x, y, "ce")
    got = build_rule("ep", model, T1=STEPS).true_gradients(x, y)
    for (name, _), t in zip(model.named_parameters(), true, strict=True):
        torch.testing.assert_close(got[name], t, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("rule", "options", "word"), [
    ("ep", {"T1": 0}, "T1"), ("ep", {"T2": 0}, "T2"), ("ep", {"beta": 0.0}, "beta"),
    ("ep-sym", {"beta": 0.0}, "beta"), ("hep", {"N": 1}, "N"), ("hep", {"beta": 0.0}, "beta"),
    ("ep", {"loss": "hinge"}, "loss"), ("ep", {"noise": -1.0}, "noise")])
def test_bad_options_are_refused_naming_the_option(rule, options, word) -> None:
    with pytest.raises(ValueError, match=word):
        build_rule(rule, _tiny(), **options)


def test_incompatible_models_are_refused() -> None:
    with pytest.raises(IncompatibleModelError, match="energy"):
        build_rule("ep", build_model("mlp", (1, 3, 3), 3))
    with pytest.raises(IncompatibleModelError, match="holomorphic"):
        build_rule("hep", _tiny(activation="hard-sigmoid"))
    with pytest.raises(IncompatibleModelError, match="only rules"):
        build_rule("fa", _tiny())


@pytest.mark.parametrize(("options", "word"), [(["--rule-opt", "T1=0"], "T1"), (["--rule-opt", "N=1"], "N"),
                                               (["--rule-opt", "beta=0"], "beta")])
def test_cli_refuses_bad_options_with_exit_2(options, word, tmp_path) -> None:
    result = CliRunner().invoke(app, ["train", "--rule", "hep", "--model", "energy-mlp", "--epochs", "1",
                                      "--train-limit", "8", "--test-limit", "8", "--out", str(tmp_path),
                                      "--quiet", *options])
    assert result.exit_code == 2, result.output
    assert word in result.output


def test_cli_trains_each_variant_with_alignment(tmp_path, data_root) -> None:
    for rule in ("ep", "ep-sym", "hep"):
        result = CliRunner().invoke(app, [
            "train", "--rule", rule, "--model", "energy-mlp", "--model-opt", "hidden=[16]", "--epochs", "1",
            "--train-limit", "40", "--test-limit", "20", "--batch-size", "20", "--rule-opt", "T1=5",
            "--rule-opt", "T2=3", "--rule-opt", "beta=0.5", "--track-alignment", "--quiet", "--json",
            "--out", str(tmp_path / rule)])
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        assert summary["rule"] == rule and summary["epochs"] == 1


@pytest.mark.parametrize(("rule", "options"), [("ep", {"random_sign": True, "noise": 0.05}),
                                               ("hep", {"N": 3, "noise": 0.05})])
def test_killed_and_resumed_run_equals_the_uninterrupted_one(rule, options, mnist_small, tmp_path, monkeypatch,
                                                             one_thread) -> None:
    """The rule's generator (random signs, relaxation noise) survives the kill; states are recomputed."""
    from conftest import killed_at_step
    from creditlab.train import train_from_names

    settings = {"epochs": 2, "train_limit": 200, "test_limit": 100, "batch_size": 20, "progress": False,
                "model_options": {"hidden": [16], "seed": 0}, "rule_options": {"T1": 4, "T2": 2, **options}}
    full = train_from_names(rule, "energy-mlp", "mnist", loaded=mnist_small, out_dir=str(tmp_path / "full"),
                            **settings)
    with killed_at_step(monkeypatch, 15):  # in the middle of the second epoch (10 steps per epoch)
        train_from_names(rule, "energy-mlp", "mnist", loaded=mnist_small, out_dir=str(tmp_path / "cut"), **settings)
    resumed = train_from_names(rule, "energy-mlp", "mnist", loaded=mnist_small, out_dir=str(tmp_path / "cut"),
                               resume=True, **settings)
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in full["history"]]
    full_state = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=False)
    cut_state = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)
    for key, value in full_state["model"].items():
        assert torch.equal(value, cut_state["model"][key]), key
    assert torch.equal(full_state["rule"]["_extra_state"]["generator"], cut_state["rule"]["_extra_state"]["generator"])


def _fixed_point_loss(model, x, y) -> float:
    """L at the free fixed point (relaxed to convergence), for finite differences."""
    with torch.no_grad():
        flat = model.flatten_input(x)
        states = model.relax(model.params(), flat, model.initial_state(x.shape[0], model.dtype, x.device), CONV_STEPS)
        return torch.nn.functional.cross_entropy(model.output(model.params(), states), y).item()


@pytest.mark.parametrize(("pooling", "rule", "options", "tolerance"), [
    ("avg", "hep", {"beta": 0.1, "N": 12}, 1e-7), ("max", "ep-sym", {"beta": 0.01}, 1e-3)])
def test_conv_energy_net_estimates_match_finite_differences_at_the_fixed_point(pooling, rule, options,
                                                                               tolerance) -> None:
    """energy-convnet: the EP estimate vs central differences of the loss at the converged free state."""
    model = build_model("energy-convnet", (2, 8, 8), 3, channels=[2, 3], paddings=[1, 1], dtype="float64", seed=2,
                        pooling=pooling)
    generator = torch.Generator().manual_seed(5)
    x, y = torch.rand(4, 2, 8, 8, generator=generator, dtype=torch.float64), torch.tensor([0, 1, 2, 1])
    build_rule(rule, model, T1=CONV_STEPS, T2=CONV_STEPS, **options).step(x, y)
    params = list(model.parameters())
    picks = [(i, j) for i, p in enumerate(params) for j in (0, p.numel() - 1)]
    worst, scale = 0.0, 0.0
    for i, j in picks:
        flat = params[i].data.view(-1)
        original, h = flat[j].item(), 1e-5
        flat[j] = original + h
        up = _fixed_point_loss(model, x, y)
        flat[j] = original - h
        down = _fixed_point_loss(model, x, y)
        flat[j] = original
        numeric = (up - down) / (2 * h)
        worst = max(worst, abs(params[i].grad.view(-1)[j].item() - numeric))
        scale = max(scale, abs(numeric))
    assert worst / scale < tolerance, (worst, scale)


def test_hep_refuses_the_max_pooled_conv_net() -> None:
    model = build_model("energy-convnet", (2, 8, 8), 3, channels=[2, 3], paddings=[1, 1], seed=2)
    with pytest.raises(IncompatibleModelError, match="holomorphic"):
        build_rule("hep", model)
