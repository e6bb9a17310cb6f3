"""DTP (Lee et al. 2015) on an ordinary MLP: against hand computations of its feedback mapping, targets and
updates, the reconstruction loss it descends, learning on MNIST, and its refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from creditlab.cli import app
from creditlab.errors import IncompatibleModelError
from creditlab.models import build_model
from creditlab.rules import build_rule
from creditlab.train import train_from_names

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny_rule(**options):  # noqa: ANN003, ANN202
    """3 inputs -> tanh 2 -> tanh 2 -> 2 classes, weights set by hand (float64 for the comparison)."""
    net = build_model("mlp", (1, 1, 3), 2, hidden=(2, 2), activation="tanh").double()
    values = {0: ([[0.5, -0.3, 0.8], [0.2, 0.7, -0.4]], [0.1, -0.2]),
              1: ([[0.9, -0.6], [0.4, 1.1]], [0.05, 0.0]),
              2: ([[1.2, -0.7], [-0.5, 0.9]], [0.0, 0.3])}
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for index, (weight, bias) in values.items():
            linears[index].weight.copy_(torch.tensor(weight))
            linears[index].bias.copy_(torch.tensor(bias))
    rule = build_rule("dtp", net, **options).double()
    with torch.no_grad():
        rule.feedback_weight_1.copy_(torch.tensor([[0.3, -1.0], [0.8, 0.6]]))
        rule.feedback_bias_1.copy_(torch.tensor([0.1, -0.1]))
    return rule, {k: (np.array(w), np.array(b)) for k, (w, b) in values.items()}


X = np.array([[1.0, 0.5, -1.0], [-0.5, 2.0, 0.3]])
Y = np.array([1, 0])


def _hand(params: dict, feedback: tuple[np.ndarray, np.ndarray], eta: float) -> dict[str, np.ndarray]:
    """Lee et al.'s equations written out in numpy for the tiny net."""
    (w1, b1), (w2, b2), (w3, b3) = params[0], params[1], params[2]
    v, c = feedback
    h1 = np.tanh(X @ w1.T + b1)
    h2 = np.tanh(h1 @ w2.T + b2)
    logits = h2 @ w3.T + b3
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    onehot = np.eye(2)[Y]
    dlogits = (p - onehot) / len(X)  # ∂ of the batch-mean cross-entropy
    t2 = h2 - eta * dlogits @ w3  # the top target
    g = lambda h: np.tanh(h @ v.T + c)  # noqa: E731  g(h) = f(V h + c)
    t1 = h1 + g(t2) - g(h2)  # the difference correction
    # ∂/∂W mean_n ‖tanh(W h_prev + b) − t‖² = mean_n 2 (h − t) (1 − h²) h_prev^T
    d1 = 2 * (h1 - t1) * (1 - h1 ** 2) / len(X)
    d2 = 2 * (h2 - t2) * (1 - h2 ** 2) / len(X)
    return {"t1": t1, "t2": t2, "g_h2": g(h2), "w1": d1.T @ X, "b1": d1.sum(0), "w2": d2.T @ h1, "b2": d2.sum(0),
            "w3": dlogits.T @ h2, "b3": dlogits.sum(0)}


def test_feedback_mapping_and_difference_targets_match_a_hand_computation():
    rule, params = _tiny_rule(target_step=0.5)
    x = torch.tensor(X).reshape(2, 1, 1, 3)
    forward = rule.forward_pass(x)
    hand = _hand(params, (rule.feedback_weight_1.detach().numpy(), rule.feedback_bias_1.detach().numpy()), 0.5)
    # g(h) = f(V h + c): the nonlinearity after the feedback weights (not V f^-1(h) + c)
    assert np.allclose(rule.apply_feedback(1, forward.post[1]).detach().numpy(), hand["g_h2"], atol=1e-12)
    targets, _, _ = rule.layer_targets(forward, torch.tensor(Y))
    assert np.allclose(targets[1].numpy(), hand["t2"], atol=1e-12)
    assert np.allclose(targets[0].numpy(), hand["t1"], atol=1e-12)
    assert targets[2] is None  # the output layer is trained by its gradient, not a target


def test_update_is_the_local_gradient_towards_the_difference_targets():
    """One step: a feedback step on this batch, then .grad from the targets of the updated feedback."""
    rule, params = _tiny_rule(target_step=0.5)
    rule.step(torch.tensor(X).reshape(2, 1, 1, 3), torch.tensor(Y))
    hand = _hand(params, (rule.feedback_weight_1.detach().numpy(), rule.feedback_bias_1.detach().numpy()), 0.5)
    linears = [m for m in rule.model if isinstance(m, torch.nn.Linear)]
    for index, name in enumerate(("1", "2", "3")):
        assert np.allclose(linears[index].weight.grad.numpy(), hand["w" + name], atol=1e-12), name
        assert np.allclose(linears[index].bias.grad.numpy(), hand["b" + name], atol=1e-12), name
    assert int(rule.noise_draws) == 1


def test_feedback_training_reduces_the_noisy_reconstruction_error(mnist_subset):
    net = build_model("mlp", (1, 28, 28), 10, hidden=(32, 32, 32), activation="tanh", init="orthogonal")
    rule = build_rule("dtp", net, feedback_lr=1e-3)
    forward = rule.forward_pass(mnist_subset[0][:256])

    def reconstruction() -> list[float]:  # mean_n ‖tanh(V_l h_l + c_l) − h_{l-1}‖², written out
        errors = []
        for index in (1, 2):
            weight, bias = rule.feedback(index)
            rebuilt = torch.tanh(forward.post[index] @ weight.detach().T + bias.detach())
            errors.append(float(((rebuilt - forward.post[index - 1]) ** 2).sum(1).mean()))
        return errors

    before = reconstruction()
    for _ in range(200):
        rule.train_feedback(forward)
    after = reconstruction()
    assert all(a < 0.5 * b for a, b in zip(after, before, strict=True)), (before, after)


def test_dtp_learns_an_mnist_subset_well_above_chance(mnist_small):
    summary = train_from_names("dtp", "mlp", "mnist", loaded=mnist_small, epochs=2, batch_size=100,
                               model_options={"hidden": (64, 64, 64), "activation": "tanh", "init": "orthogonal"},
                               progress=False)
    assert summary["config"]["optimizer"] == "rmsprop-centered"  # the rule's defaults: Lee et al.'s
    assert summary["test_accuracy"] > 0.75, summary["test_accuracy"]


@pytest.mark.parametrize("options,message", [
    ({"target_step": 0.0}, "target_step must be > 0"),
    ({"feedback_noise": -0.1}, "feedback_noise must be > 0"),
    ({"feedback_lr": 0.0}, "feedback_lr must be > 0"),
    ({"feedback_steps": 0}, "feedback_steps must be an integer >= 1"),
    ({"feedback_steps": 1.5}, "feedback_steps must be an integer >= 1"),
    ({"feedback_optimizer": "sgd"}, "unknown feedback_optimizer 'sgd'; valid: rmsprop-centered, adam"),
])
def test_dtp_refuses_bad_settings(options, message):
    with pytest.raises(ValueError, match=message):
        build_rule("dtp", build_model("mlp", (1, 8, 8), 10, hidden=(16, 16)), **options)


def test_dtp_refuses_models_it_cannot_train():
    with pytest.raises(IncompatibleModelError, match="rule 'dtp' cannot train model 'mlp'.*1 hidden layer"):
        build_rule("dtp", build_model("mlp", (1, 8, 8), 10, hidden=(16,)))
    with pytest.raises(IncompatibleModelError, match="cannot train model 'invertible-mlp'.*--model mlp"):
        build_rule("dtp", build_model("invertible-mlp", (1, 8, 8), 10, width=64, depth=2))
    with pytest.raises(ValueError, match="option 'init' takes one of default, orthogonal"):
        build_model("mlp", (1, 8, 8), 10, init="xavier")


def test_cli_refuses_a_bad_dtp_option_before_training(tmp_path: Path, data_root: Path):
    result = CliRunner().invoke(app, ["train", "--rule", "dtp", "--model", "mlp", "--data", "mnist", "--data-dir",
                                      str(data_root), "--rule-opt", "feedback_steps=0", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "feedback_steps" in result.output, result.output
    assert not (tmp_path / "metrics.jsonl").exists()


def test_quick_reproduction_records_the_curve_beside_the_paper(tmp_path, data_root):
    from creditlab.experiments import ExperimentContext, load_all
    from creditlab.experiments.dtp import dtp_headline, summary_tables

    records = load_all().get("dtp-mnist").run(ExperimentContext(quick=True, out_dir=tmp_path, data_dir=data_root))
    final = records[0]["final"]
    assert records[0]["name"] == "dtp-mnist/dtp" and final["paper_test_error_pct"] == 1.94
    assert len(final["test_error_curve_pct"]) == final["epochs_run"] == 1
    assert records[0]["config"]["model_options"]["hidden"] == [32] * 3 and records[0]["config"]["quick"]
    assert summary_tables(records)[0].rows[0][0] == "dtp"
    assert dtp_headline(records) == []  # quick records never reach the README
