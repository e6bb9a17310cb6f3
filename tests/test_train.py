"""The trainer and the backprop rule: exactness, determinism, resume, and bad input."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from typer.testing import CliRunner

from conftest import killed_at_step
from creditlab.cli import app
from creditlab.errors import DivergenceError, IncompatibleModelError, UnknownNameError
from creditlab.models import build_model
from creditlab.rules import build_rule
from creditlab.rules.base import Rule, require
from creditlab.train import train_from_names

QUICK = {"epochs": 2, "train_limit": 1000, "test_limit": 300, "batch_size": 100, "progress": False}


def _state(summary_dir) -> dict[str, torch.Tensor]:
    return torch.load(summary_dir / "checkpoint.pt", weights_only=False)["model"]


def test_bp_writes_the_autograd_gradient():
    torch.manual_seed(0)
    model = build_model("lenet", (1, 28, 28), 10)
    inputs, targets = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    expected = torch.autograd.grad(F.cross_entropy(model(inputs), targets), list(model.parameters()))
    rule = build_rule("bp", model)
    out = rule.step(inputs, targets)
    for param, grad in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(param.grad, grad, rtol=0, atol=0)
    assert out.output.shape == (8, 10) and out.loss.ndim == 0


def test_bp_gradient_matches_finite_differences():
    torch.manual_seed(1)
    model = build_model("mlp", (1, 2, 2), 3, hidden=(5,)).double()
    inputs, targets = torch.randn(4, 1, 2, 2, dtype=torch.float64), torch.tensor([0, 2, 1, 2])
    build_rule("bp", model).step(inputs, targets)
    weight = model[1].weight
    eps = 1e-6
    for index in [(0, 0), (3, 2), (4, 1)]:
        original = weight.data[index].item()
        weight.data[index] = original + eps
        plus = F.cross_entropy(model(inputs), targets).item()
        weight.data[index] = original - eps
        minus = F.cross_entropy(model(inputs), targets).item()
        weight.data[index] = original
        assert abs((plus - minus) / (2 * eps) - weight.grad[index].item()) < 1e-7


def test_runs_are_bit_reproducible(mnist_small, tmp_path):
    a = train_from_names("bp", "mlp", "mnist", loaded=mnist_small, out_dir=str(tmp_path / "a"), **QUICK)
    b = train_from_names("bp", "mlp", "mnist", loaded=mnist_small, out_dir=str(tmp_path / "b"), **QUICK)
    assert a["history"][-1]["train_loss"] == b["history"][-1]["train_loss"]
    for key, value in _state(tmp_path / "a").items():
        assert torch.equal(value, _state(tmp_path / "b")[key]), key


def test_resume_after_a_kill_equals_an_uninterrupted_run(mnist_small, tmp_path, monkeypatch):
    settings = {**QUICK, "epochs": 3}
    full = train_from_names("bp", "lenet", "mnist", loaded=mnist_small, out_dir=str(tmp_path / "full"), **settings)

    with killed_at_step(monkeypatch, 15):  # in the middle of the second epoch (10 steps per epoch)
        train_from_names("bp", "lenet", "mnist", loaded=mnist_small, out_dir=str(tmp_path / "cut"), **settings)
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)["epoch"] == 0
    resumed = train_from_names("bp", "lenet", "mnist", loaded=mnist_small, out_dir=str(tmp_path / "cut"),
                               resume=True, **settings)
    assert resumed["epochs"] == 3
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in full["history"]]
    for key, value in _state(tmp_path / "full").items():
        assert torch.equal(value, _state(tmp_path / "cut")[key]), key


def test_divergence_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(mnist_small, tmp_path,
                                                                                    monkeypatch):
    calls = {"n": 0}
    original_step = Rule.step

    def poisoning_step(self, inputs, targets):
        calls["n"] += 1
        if calls["n"] == 13:  # second epoch (10 steps per epoch): a weight blows up
            with torch.no_grad():
                next(self.model.parameters()).fill_(float("inf"))
        return original_step(self, inputs, targets)

    monkeypatch.setattr(Rule, "step", poisoning_step)
    with pytest.raises(DivergenceError, match=r"diverged.*epoch 2, step 3.*last good checkpoint.*after epoch 1"):
        train_from_names("bp", "mlp", "mnist", loaded=mnist_small, out_dir=str(tmp_path), **QUICK)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert saved["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in saved["model"].values())


def test_huge_learning_rate_diverges_cleanly(mnist_small):
    with pytest.raises(DivergenceError, match="smaller --lr"):
        train_from_names("bp", "mlp", "mnist", loaded=mnist_small, optimizer="sgd", lr=1e12, **QUICK)


class _NeedsConv(Rule):
    name = "needs-conv"
    accepts = "models with a Conv2d layer (lenet, resnet20)"

    @classmethod
    def check_model(cls, model: nn.Module) -> None:
        require(any(isinstance(m, nn.Conv2d) for m in model.modules()), cls, model, "it has no Conv2d layer")


def test_incompatible_model_fails_at_construction_with_the_reason():
    with pytest.raises(IncompatibleModelError, match=r"'needs-conv' cannot train model 'mlp'.*no Conv2d.*lenet"):
        _NeedsConv(build_model("mlp", (1, 28, 28), 10))


def test_wrong_shapes_are_refused():
    rule = build_rule("bp", build_model("mlp", (1, 28, 28), 10))
    with pytest.raises(ValueError, match=r"per-example shape \(3, 32, 32\).*\(1, 28, 28\)"):
        rule.step(torch.randn(2, 3, 32, 32), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="targets must have shape"):
        rule.step(torch.randn(2, 1, 28, 28), torch.tensor([[0, 1]]))


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(UnknownNameError, match="valid models: .*lenet.*mlp"):
        build_model("transformer", (1, 28, 28), 10)
    with pytest.raises(UnknownNameError, match="valid rules: .*bp"):
        build_rule("magic", build_model("mlp", (1, 28, 28), 10))


runner = CliRunner()


def test_cli_train_json_summary(data_root, tmp_path):
    result = runner.invoke(app, ["train", "--rule", "bp", "--model", "mlp", "--data", "mnist", "--epochs", "1",
                                 "--train-limit", "500", "--test-limit", "200", "--data-dir", str(data_root),
                                 "--out", str(tmp_path / "run"), "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("rule", "model", "dataset", "epochs", "test_accuracy", "train_loss", "wall_time_s", "device",
                "commit"):
        assert key in summary
    assert summary["rule"] == "bp" and summary["epochs"] == 1 and 0.0 <= summary["test_accuracy"] <= 1.0
    assert (tmp_path / "run" / "metrics.jsonl").is_file() and (tmp_path / "run" / "checkpoint.pt").is_file()


@pytest.mark.parametrize(("args", "message"), [
    (["--rule", "nope"], "valid rules"),
    (["--model", "nope"], "valid models"),
    (["--data", "nope"], "valid datasets"),
    (["--rule", "gevb", "--model", "mlp"], "cannot train model 'mlp'"),
    (["--optimizer", "lion"], "valid: adam"),
])
def test_cli_bad_input_exits_with_a_message(args, message, tmp_path):
    result = runner.invoke(app, ["train", *args, "--epochs", "1", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert message in result.output


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_step(mnist_small):
    # 3 epochs of 40 steps: 0.90 test accuracy on CPU; 2 epochs of 10 steps leave LeNet at ~0.42 on both
    options = {**QUICK, "epochs": 3, "train_limit": 2000, "batch_size": 50, "lr": 3e-3}
    summary = train_from_names("bp", "lenet", "mnist", loaded=mnist_small, device="cuda", **options)
    summary.pop("history", None)
    assert summary["device"].startswith("cuda") and summary["test_accuracy"] > 0.8, summary


def test_cli_track_alignment_puts_final_angles_in_the_json(data_root, tmp_path):
    result = runner.invoke(app, ["train", "--rule", "fa", "--model", "mlp", "--epochs", "1", "--train-limit", "300",
                                 "--test-limit", "100", "--data-dir", str(data_root), "--out", str(tmp_path),
                                 "--quiet", "--json", "--track-alignment"])
    assert result.exit_code == 0, result.output
    alignment = json.loads(result.stdout.strip().splitlines()[-1])["alignment"]
    readout = [name for name in alignment if name.startswith("5.weight")]
    assert readout and alignment[readout[0]]["angle_deg"] < 1e-3  # FA's readout gets its exact gradient
    assert all(0.0 <= v["angle_deg"] <= 180.0 for v in alignment.values() if v["angle_deg"] == v["angle_deg"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_resume_continues_the_run(mnist_small, tmp_path):
    options = {**QUICK, "epochs": 1}
    train_from_names("bp", "mlp", "mnist", loaded=mnist_small, device="cuda", out_dir=str(tmp_path), **options)
    options["epochs"] = 2
    summary = train_from_names("bp", "mlp", "mnist", loaded=mnist_small, device="cuda", out_dir=str(tmp_path),
                               resume=True, **options)
    assert summary["epochs"] == 2 and len(summary["history"]) == 2
