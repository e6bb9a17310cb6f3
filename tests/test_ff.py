"""Forward-Forward (rule ``ff``, model ``ff-mlp``): the layer loss by hand, no gradient across layers
(autograd), negative labels from the rule's seeded draw counter, refusals, kill-and-resume, quick run."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from conftest import killed_and_resumed
from creditlab.cli import app
from creditlab.errors import IncompatibleModelError
from creditlab.models import build_model
from creditlab.rules import build_rule
from creditlab.rules.ff import ff_layer_loss


def _net(hidden=(6, 5, 4), seed=0):  # noqa: ANN001, ANN202
    torch.manual_seed(seed)
    return build_model("ff-mlp", (1, 4, 4), 3, hidden=hidden).double()


def test_goodness_loss_matches_a_hand_computation() -> None:
    z = torch.tensor([[1.0, 2.0], [0.5, 0.0]], dtype=torch.float64)  # goodness 5 and 0.25, D = 2
    labels = torch.tensor([1.0, 0.0], dtype=torch.float64)
    theta = 1.5  # threshold 3
    by_hand = 0.5 * (math.log(1 + math.exp(-(5 - 3))) + math.log(1 + math.exp(0.25 - 3)))
    assert float(ff_layer_loss(z, labels, theta)) == pytest.approx(by_hand, abs=1e-12)


def test_each_layer_update_is_the_gradient_of_its_own_loss_only() -> None:
    """Autograd: layer l's .grad equals the gradient of L_l with every lower layer's output detached,
    and perturbing layer l's loss changes no other layer's update (no gradient crosses layers)."""
    net = _net()
    rule = build_rule("ff", net, peer_normalization=0.0, weight_decay=0.0, relu_gradient="exact", seed=3)
    x = torch.rand(7, 1, 4, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (7,))
    negatives = rule.negative_labels(y)
    rule.negative_draws.zero_()  # the step redraws the same labels
    rule.step(x, y)
    h = torch.cat([net.embed_label(x, y), net.embed_label(x, negatives)])
    is_positive = torch.cat([torch.ones(7), torch.zeros(7)]).double()
    for layer in net.layers:
        inp = h.detach() / (h.detach().pow(2).mean(1, keepdim=True).sqrt() + 1e-8)
        z = torch.relu(inp @ layer.weight.T + layer.bias)
        logits = z.pow(2).sum(1) - z.shape[1]
        loss = F.binary_cross_entropy_with_logits(logits, is_positive)
        gw, gb = torch.autograd.grad(loss, [layer.weight, layer.bias])
        assert torch.allclose(layer.weight.grad, gw, atol=1e-12) and torch.allclose(layer.bias.grad, gb, atol=1e-12)
        h = z
    # the whole-network gradient of the summed losses differs from the local one in the lower layers
    first = net.layers[0].weight
    zs = net.activities(torch.cat([net.embed_label(x, y), net.embed_label(x, negatives)]))
    total = sum(F.binary_cross_entropy_with_logits(z.pow(2).sum(1) - z.shape[1], is_positive) for z in zs)
    (through,) = torch.autograd.grad(total, [first])
    assert not torch.allclose(through, first.grad, atol=1e-6)


def test_negative_labels_are_wrong_seeded_and_counted() -> None:
    rule = build_rule("ff", _net(), seed=11)
    y = torch.randint(0, 3, (2000,), generator=torch.Generator().manual_seed(0))
    first = rule.negative_labels(y)
    assert (first != y).all() and int(rule.negative_draws) == 1
    assert set(first.tolist()) == {0, 1, 2}
    again = build_rule("ff", _net(), seed=11)
    assert torch.equal(again.negative_labels(y), first)  # same seed, same draw
    assert not torch.equal(rule.negative_labels(y), first)  # the next draw differs
    assert {"negative_label_seed", "negative_draws", "peer_mean_0"} <= set(rule.state_dict())


def test_readout_update_is_its_scaled_gradient_and_alignment_uses_the_readout_loss() -> None:
    net = _net()
    rule = build_rule("ff", net, readout_lr_scale=10.0, readout_weight_decay=0.0)
    with torch.no_grad():
        net.classifier.weight.normal_()
    x, y = torch.rand(5, 1, 4, 4, dtype=torch.float64), torch.randint(0, 3, (5,))
    rule.step(x, y)
    features = net.readout_features(net.activities(net.embed_neutral(x))).detach()
    (g,) = torch.autograd.grad(F.cross_entropy(net.classifier(features), y), [net.classifier.weight])
    assert torch.allclose(net.classifier.weight.grad, 10 * g, atol=1e-12)
    true = rule.true_gradients(x, y)
    (through,) = torch.autograd.grad(F.cross_entropy(net(x), y), [net.layers[0].weight])
    assert torch.allclose(true["layers.0.weight"], through)


def test_goodness_variant_scores_each_label() -> None:
    net = _net()
    x = torch.rand(4, 1, 4, 4, dtype=torch.float64)
    scores = net.evaluation_variants()["goodness"](x, torch.Generator())
    zs = net.activities(net.embed_label(x, torch.full((4,), 2)))
    assert torch.allclose(scores[:, 2], zs[1].pow(2).sum(1) + zs[2].pow(2).sum(1))


def test_bad_settings_and_models_are_refused() -> None:
    with pytest.raises(ValueError, match="threshold must be a finite number >= 0"):
        build_rule("ff", _net(), threshold=-1.0)
    with pytest.raises(ValueError, match="relu_gradient must be one of straight-through, exact"):
        build_rule("ff", _net(), relu_gradient="nope")
    with pytest.raises(IncompatibleModelError, match="rule 'ff' cannot train model 'mlp'"):
        build_rule("ff", build_model("mlp", (1, 28, 28), 10))


def test_cli_refuses_a_negative_threshold(tmp_path) -> None:  # noqa: ANN001
    result = CliRunner().invoke(app, ["train", "--rule", "ff", "--model", "ff-mlp", "--epochs", "1", "--quiet",
                                      "--rule-opt", "threshold=-2", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "threshold" in result.output, result.output


def test_killed_and_resumed_ff_run_equals_the_uninterrupted_one(mnist_small, tmp_path, monkeypatch,
                                                                one_thread) -> None:  # noqa: ANN001
    options = {"model_options": {"hidden": (32, 32)}, "epochs": 2, "train_limit": 1000, "test_limit": 200,
               "batch_size": 100, "progress": False}
    full, resumed, a, b = killed_and_resumed("ff", "ff-mlp", mnist_small, tmp_path, monkeypatch, 15, **options)
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in full["history"]]
    for part in ("model", "rule"):
        for key, value in a[part].items():
            assert torch.equal(value, b[part][key]), (part, key)
    assert int(a["rule"]["negative_draws"]) == 20


def test_reproduce_ff_mnist_quick_runs(tmp_path, one_thread) -> None:  # noqa: ANN001
    result = CliRunner().invoke(app, ["reproduce", "ff-mnist", "--quick", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "results.jsonl").is_file() and (tmp_path / "ff_mnist_curves.png").is_file()
    refused = CliRunner().invoke(app, ["reproduce", "ff-mnist", "--opt", "max_epochs=70", "--out", str(tmp_path)])
    assert refused.exit_code == 2 and "max_epochs" in refused.output
