"""node-perturbation: its expected update is the true gradient (Monte Carlo against autograd), resume is
bit-identical, evaluation draws nothing, refusals."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from creditlab.errors import IncompatibleModelError
from creditlab.models import build_model
from creditlab.rules import build_rule


def _tiny_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)).double()


@pytest.mark.parametrize("baseline", ["running", "clean"])
def test_expected_update_is_the_true_gradient_by_monte_carlo(baseline: str) -> None:
    """One example repeated 3e5 times: the batch-mean update is a Monte Carlo mean over the noise.

    Tolerance: relative error < 2.5% per parameter (measured ~0.5% at this size), sigma = 0.01 so the
    smoothing bias O(sigma^2) is negligible; compared with autograd's exact gradient.
    """
    model = _tiny_mlp()
    rule = build_rule("node-perturbation", model, sigma=1e-2, baseline=baseline)
    x = torch.randn(1, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([2])
    true = rule.true_gradients(x, y)
    n = 300_000
    rule.step(x.expand(n, 6), y.expand(n))
    for name, param in rule.model.named_parameters():
        error = (param.grad - true[name]).norm() / true[name].norm()
        assert error < 0.025, (name, float(error))


def test_linear_layer_update_is_advantage_noise_input_by_hand() -> None:
    """A single Linear layer, batch of one: grad W = (L - Lbar) / sigma^2 * xi x^T with the rule's own noise."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2)).double()
    rule = build_rule("node-perturbation", model, sigma=0.5, baseline="clean")
    x, y = torch.randn(1, 3, dtype=torch.float64), torch.tensor([1])
    generator = torch.Generator().set_state(rule.generator.get_state())
    xi = torch.randn((1, 2), generator=generator, dtype=torch.float64) * 0.5
    with torch.no_grad():
        clean_out = model(x)
        clean = nn.functional.cross_entropy(clean_out, y)
        noisy = nn.functional.cross_entropy(clean_out + xi, y)
    rule.step(x, y)
    expected = (noisy - clean) / 0.25 * xi.T @ x
    torch.testing.assert_close(rule.model[0].weight.grad, expected)
    torch.testing.assert_close(rule.model[0].bias.grad, ((noisy - clean) / 0.25 * xi)[0])


def test_resume_from_state_dict_is_bit_identical() -> None:
    x, y = torch.randn(16, 6, dtype=torch.float64), torch.randint(0, 3, (16,))

    def run(steps: int, rule: nn.Module) -> None:
        opt = torch.optim.SGD(rule.model.parameters(), lr=0.1)
        for _ in range(steps):
            rule.step(x, y)
            opt.step()

    straight = build_rule("node-perturbation", _tiny_mlp(), seed=3)
    run(6, straight)
    first = build_rule("node-perturbation", _tiny_mlp(), seed=3)
    run(3, first)
    saved_model, saved_rule = first.model.state_dict(), first.state_dict()
    resumed = build_rule("node-perturbation", _tiny_mlp(), seed=99)  # a different seed: the state must win
    resumed.model.load_state_dict(saved_model)
    resumed.load_state_dict(saved_rule)
    run(3, resumed)
    for a, b in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(straight.loss_baseline, resumed.loss_baseline)


def test_evaluation_draws_no_noise() -> None:
    rule = build_rule("node-perturbation", _tiny_mlp())
    state = rule.generator.get_state()
    with torch.no_grad():
        rule.forward_logits(torch.randn(4, 6, dtype=torch.float64))
    assert torch.equal(state, rule.generator.get_state())


def test_trains_the_registered_models_bp_trains() -> None:
    for name in ("mlp", "lenet"):
        torch.manual_seed(0)
        model = build_model(name, (1, 28, 28), 10)
        rule = build_rule("node-perturbation", model)
        rule.step(torch.randn(4, 1, 28, 28), torch.randint(0, 10, (4,)))
        assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in rule.model.parameters())


def test_refusals() -> None:
    with pytest.raises(ValueError, match="sigma .* must be a positive number"):
        build_rule("node-perturbation", _tiny_mlp(), sigma=0.0)
    with pytest.raises(ValueError, match="unknown baseline 'mean'; valid: running, clean"):
        build_rule("node-perturbation", _tiny_mlp(), baseline="mean")
    with pytest.raises(ValueError, match="baseline_tau must be >= 1"):
        build_rule("node-perturbation", _tiny_mlp(), baseline_tau=0.5)
    frozen = _tiny_mlp().requires_grad_(False)
    with pytest.raises(IncompatibleModelError, match="no trainable parameter"):
        build_rule("node-perturbation", frozen)
    vnn = build_model("vnn-fc", (1, 28, 28), 10)
    with pytest.raises(IncompatibleModelError, match="custom backward"):
        build_rule("node-perturbation", vnn)
