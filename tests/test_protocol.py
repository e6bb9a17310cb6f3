"""The trainer protocol of issue #15 part B, each item with a small stand-in of the rule or model that
will use it: seeds, optimizer requirements (STDP-like rule, sketched reducers), rules without a true
gradient, regression targets, evaluation variants, trainer and rule hooks, early stopping."""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from typer.testing import CliRunner

from conftest import killed_at_step
from creditlab.analysis.alignment import AlignmentTracker, measure_alignment
from creditlab.cli import app
from creditlab.data import Dataset
from creditlab.data.specs import DatasetSpec
from creditlab.distributed import reducer_requirement
from creditlab.errors import CreditlabError
from creditlab.hooks import StepInfo, TrainerHook
from creditlab.models import build_model
from creditlab.optim import OptimizerRequirement, apply_requirements
from creditlab.rules import RULES, Rule, StepOutput
from creditlab.seeding import mix_seed, seeded_generator
from creditlab.tasks import CLASSIFICATION, REGRESSION
from creditlab.train import TrainConfig, _epoch_generator, config_for, evaluate, fit, train_from_names

runner = CliRunner()
TIMING = ("epoch_time_s", "samples_per_s")


def _without_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in record.items() if k not in TIMING} for record in history]


@pytest.fixture
def tiny(mnist) -> Dataset:
    """256 training, 128 validation and 128 test MNIST images."""
    return Dataset(mnist.spec, mnist.train_x[:256], mnist.train_y[:256], mnist.train_x[256:384],
                   mnist.train_y[256:384], mnist.test_x[:128], mnist.test_y[:128])


def _config(**overrides) -> TrainConfig:
    settings = {"epochs": 2, "batch_size": 32, "lr": 2e-3, "progress": False, **overrides}
    return TrainConfig(**settings)


def _bp(model: Callable[[], nn.Module] | None = None, **options) -> Rule:
    """Backprop on a freshly seeded model: ``model()`` or an mlp 784-32-10."""
    torch.manual_seed(0)
    return RULES.get("bp")(model() if model is not None else build_model("mlp", (1, 28, 28), 10, hidden=(32,)),
                           **options)


# -- seeding -------------------------------------------------------------------------------------------

def _old_fa_mix_seed(seed: int, counter: int) -> int:
    """rules/fa.py's _mix_seed as it was before the move (the splitmix64 finalizer), verbatim."""
    z = (seed * 0x9E3779B97F4A7C15 + counter + 1) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (z ^ (z >> 31)) & 0x7FFFFFFFFFFFFFFF


@pytest.mark.parametrize(("seed", "counter"), [(0, 0), (0, 1), (7, 12345), (2**62, 3), (-5, 2**40),
                                                (123, 1_000_003 * 4)])
def test_mix_seed_equals_the_old_fa_helper_bit_for_bit(seed, counter):
    assert mix_seed(seed, counter) == _old_fa_mix_seed(seed, counter)


def test_mix_seed_chains_and_hashes_names_stably():
    assert mix_seed(3, 4, 5) == _old_fa_mix_seed(_old_fa_mix_seed(3, 4), 5)
    assert mix_seed(3, "eval") == _old_fa_mix_seed(3, zlib.crc32(b"eval"))
    assert mix_seed(3, "ensemble-1") != mix_seed(3, "ensemble-2")
    a, b = seeded_generator(3, "eval", "x", 1), seeded_generator(3, "eval", "x", 1)
    assert torch.equal(torch.rand(5, generator=a), torch.rand(5, generator=b))
    with pytest.raises(TypeError, match="int or str"):
        mix_seed(3, 1.5)


def test_epoch_generator_streams_are_unchanged():
    for seed, epoch, stream in [(0, 0, 0), (0, 3, 1), (17, 9, 0)]:
        legacy = torch.Generator().manual_seed(seed * 1_000_003 + epoch * 7919 + stream)
        assert torch.equal(torch.randperm(100, generator=_epoch_generator(seed, epoch, stream)),
                           torch.randperm(100, generator=legacy))


# -- 1. optimizer requirements -------------------------------------------------------------------------

class _StdpLike(Rule):
    """Stand-in of an STDP rule: writes a weight change (not a gradient) that must be applied as is."""

    name = "stdp-like"
    optimizer_requirement = OptimizerRequirement(
        owner="rule 'stdp-like'",
        fixed={"optimizer": "sgd", "lr": 1.0, "momentum": 0.0, "weight_decay": 0.0, "schedule": "none"},
        reason="its .grad is the weight change itself")

    def compute_update(self, inputs, targets):  # noqa: D102
        output = self.model(inputs)
        with torch.no_grad():
            self.before = [p.detach().clone() for p in self.model.parameters()]
            for p in self.model.parameters():  # a deterministic, non-gradient "plasticity" change
                p.grad = -0.01 * torch.tanh(p.detach()) + 1e-3 * output.mean()
        return StepOutput(F.cross_entropy(output, targets), output)


class _AppliedExactly(TrainerHook):
    def __init__(self) -> None:
        self.checked = 0

    def on_step_end(self, rule, step):  # noqa: D102
        for before, param in zip(rule.before, rule.model.parameters(), strict=True):
            assert torch.equal(param.detach(), before - param.grad)
        self.checked += 1


@pytest.fixture
def stdp_registered(monkeypatch):
    monkeypatch.setitem(RULES._entries, "stdp-like", _StdpLike)


def test_a_rule_that_fixes_its_optimizer_gets_its_weight_change_applied_exactly(stdp_registered, tiny):
    hook = _AppliedExactly()
    summary = train_from_names("stdp-like", "mlp", "mnist", loaded=tiny, model_options={"hidden": (16,)},
                               hooks=[hook], epochs=1, batch_size=64, progress=False)
    # the mlp's defaults (Adam, lr 0.002, cosine) gave way to the rule's fixed settings
    assert {k: summary["config"][k] for k in ("optimizer", "lr", "momentum", "schedule")} == \
        {"optimizer": "sgd", "lr": 1.0, "momentum": 0.0, "schedule": "none"}
    assert hook.checked == 4


def test_an_explicit_conflicting_lr_is_refused_naming_the_rule(stdp_registered, data_root, tmp_path):
    with pytest.raises(CreditlabError, match=r"rule 'stdp-like' needs --lr 1.0, got --lr 0.01"):
        config_for("mlp", requirements=(_StdpLike.optimizer_requirement,), lr=0.01)
    result = runner.invoke(app, ["train", "--rule", "stdp-like", "--lr", "0.01", "--epochs", "1",
                                 "--data-dir", str(data_root), "--out", str(tmp_path), "--quiet"])
    assert result.exit_code == 2
    assert "rule 'stdp-like' needs --lr 1.0, got --lr 0.01" in result.output


def test_fit_refuses_a_config_that_breaks_the_rules_requirement(tiny):
    rule = _StdpLike(build_model("mlp", (1, 28, 28), 10, hidden=(8,)))
    with pytest.raises(CreditlabError, match="rule 'stdp-like' needs --optimizer sgd"):
        fit(rule, tiny, _config())


def test_requirement_defaults_apply_only_where_the_user_gave_no_value():
    need = OptimizerRequirement("owner A", fixed={"optimizer": "sgd"}, defaults={"lr": 0.05})
    assert apply_requirements([need], {"lr": None, "optimizer": None}) == {"lr": 0.05, "optimizer": "sgd"}
    assert apply_requirements([need], {"lr": 0.3})["lr"] == 0.3
    other = OptimizerRequirement("owner B", fixed={"optimizer": "adam"})
    with pytest.raises(CreditlabError, match="owner B needs --optimizer adam but owner A needs --optimizer sgd"):
        apply_requirements([need, other], {})


def test_sketched_reducers_default_to_a_plain_sgd_learning_rate():
    requirement = reducer_requirement("sketch")
    config = config_for("mlp", requirements=(requirement,))
    assert (config.optimizer, config.momentum, config.lr) == ("sgd", 0.0, 0.05)  # not the mlp's Adam lr 0.002
    assert config_for("mlp", requirements=(requirement,), lr=0.01).lr == 0.01  # an explicit --lr stays
    for kind in ("fetchsgd", "topk", "localtopk"):
        assert reducer_requirement(kind).fixed == {"optimizer": "sgd", "momentum": 0.0}
    assert reducer_requirement("allreduce") is None and reducer_requirement("powersgd") is None
    with pytest.raises(CreditlabError, match=r"--distributed sketch needs --optimizer sgd, got --optimizer adam"):
        config_for("mlp", requirements=(requirement,), optimizer="adam")


def test_cli_distributed_sketch_uses_the_reducers_lr_unless_given(data_root, tmp_path):
    common = ["train", "--distributed", "sketch", "--epochs", "1", "--train-limit", "256", "--test-limit", "64",
              "--data-dir", str(data_root), "--quiet", "--json", "--sketch-cols", "2000", "--topk", "500"]
    default = runner.invoke(app, [*common, "--out", str(tmp_path / "a")])
    assert default.exit_code == 0, default.output
    config = json.loads(default.stdout.strip().splitlines()[-1])["config"]
    assert (config["optimizer"], config["momentum"], config["lr"]) == ("sgd", 0.0, 0.05)
    given = runner.invoke(app, [*common, "--out", str(tmp_path / "b"), "--lr", "0.01", "--momentum", "0.5"])
    assert json.loads(given.stdout.strip().splitlines()[-1])["config"]["lr"] == 0.01
    refused = runner.invoke(app, [*common, "--out", str(tmp_path / "c"), "--optimizer", "adam"])
    assert refused.exit_code == 2 and "--distributed sketch needs --optimizer sgd" in refused.output


# -- 2. rules without a true gradient ------------------------------------------------------------------

class _Spiking(_StdpLike):
    name = "spiking-like"
    has_true_gradient = False
    optimizer_requirement = None


def test_alignment_refuses_a_rule_without_a_true_gradient(tiny, monkeypatch):
    rule = _Spiking(build_model("mlp", (1, 28, 28), 10, hidden=(8,)))
    x, y = tiny.train_x[:16], tiny.train_y[:16]
    with pytest.raises(CreditlabError, match="rule 'spiking-like' has no true gradient to compare with"):
        measure_alignment(rule, x, y)
    steps = {"n": 0}
    original = Rule.step
    monkeypatch.setattr(Rule, "step", lambda self, *a: (steps.__setitem__("n", steps["n"] + 1), original(self, *a))[1])
    with pytest.raises(CreditlabError, match="has no true gradient"):
        fit(rule, tiny, _config(optimizer="sgd", lr=1.0), hooks=[AlignmentTracker(x, y)])
    assert steps["n"] == 0  # refused before training


def test_cli_track_alignment_refuses_a_rule_without_a_true_gradient(monkeypatch, data_root, tmp_path):
    monkeypatch.setitem(RULES._entries, "spiking-like", _Spiking)
    result = runner.invoke(app, ["train", "--rule", "spiking-like", "--optimizer", "sgd", "--epochs", "1",
                                 "--train-limit", "64", "--test-limit", "32", "--track-alignment",
                                 "--data-dir", str(data_root), "--out", str(tmp_path), "--quiet"])
    assert result.exit_code == 2
    assert "rule 'spiking-like' has no true gradient to compare with" in result.output


# -- 3. tasks: regression, integer targets -------------------------------------------------------------

def _teacher_student(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (n, 1, 1, 8) and the outputs (n, 3) of a fixed random tanh teacher."""
    generator = torch.Generator().manual_seed(0)
    teacher = torch.randn(8, 3, generator=generator) / math.sqrt(8)
    inputs = torch.randn(n, 1, 1, 8, generator=generator)
    return inputs, torch.tanh(inputs.reshape(n, 8) @ teacher)


def test_a_regression_dataset_trains_and_reports_mse_not_accuracy():
    spec = DatasetSpec("teacher-student", "", "synthetic", (), (), (1, 1, 8), 3, 512, 128, (0.0,), (1.0,))
    inputs, targets = _teacher_student(640)
    train_x, train_y, test_x, test_y = inputs[:512], targets[:512], inputs[512:], targets[512:]
    data = Dataset(spec, train_x, train_y, train_x[:0], train_y[:0], test_x, test_y, task=REGRESSION)
    rule = _bp(lambda: build_model("mlp", (1, 1, 8), 3, hidden=(32,)), task=REGRESSION)
    before = evaluate(rule, test_x, test_y)
    summary = fit(rule, data, _config(epochs=4, lr=1e-2))
    after = evaluate(rule, test_x, test_y)
    assert set(after) == {"mse", "loss"}
    with torch.no_grad():
        independent = float(((rule.model(test_x) - test_y) ** 2).mean())
    assert after["mse"] == pytest.approx(independent, rel=1e-5)
    assert after["mse"] < 0.5 * before["mse"]
    record = summary["history"][-1]
    assert "test_mse" in record and "train_mse" in record and not any("accuracy" in k for k in record)
    assert summary["test_mse"] == record["test_mse"] == pytest.approx(after["mse"])


@pytest.mark.parametrize(("task", "targets", "message"), [
    (REGRESSION, torch.tensor([0, 1]), "regression targets must be floating point"),
    (CLASSIFICATION, torch.tensor([0.0, 1.0]), "must be integer class indices"),
    (CLASSIFICATION, torch.tensor([[0, 1]]), "targets must have shape"),
])
def test_wrong_targets_for_the_task_are_refused(task, targets, message):
    with pytest.raises(ValueError, match=message):
        task.check_targets(targets, 2)


def test_int32_targets_train_and_give_the_same_loss_as_int64(tiny):
    x, y = tiny.train_x[:32], tiny.train_y[:32]
    a, b = _bp(), _bp()
    loss64, loss32 = a.step(x, y).loss, b.step(x, y.to(torch.int32)).loss
    assert torch.equal(loss64, loss32)
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(pa.grad, pb.grad)
    narrow = Dataset(tiny.spec, tiny.train_x, tiny.train_y.int(), tiny.val_x, tiny.val_y.int(), tiny.test_x,
                     tiny.test_y.to(torch.int16))
    wide, converted = fit(_bp(), tiny, _config()), fit(_bp(), narrow, _config())
    assert _without_timing(wide["history"]) == _without_timing(converted["history"])


# -- 4. evaluation variants ----------------------------------------------------------------------------

class _Sampled(nn.Module):
    """Stand-in of a sampled network: deterministic in training, noisy samples at evaluation."""

    input_shape = (1, 28, 28)

    def __init__(self) -> None:
        super().__init__()
        self.net = build_model("mlp", (1, 28, 28), 10, hidden=(32,))

    def forward(self, x):  # noqa: D102
        return self.net(x)


class _SampledWithVariants(_Sampled):
    def evaluation_variants(self):  # noqa: D102
        def ensemble(size):
            def run(x, generator):
                draws = [self.net(x + 0.5 * torch.randn(x.shape, generator=generator)) for _ in range(size)]
                return torch.stack(draws).mean(0)
            return run
        return {"expectation": lambda x, generator: self.net(x), "ensemble-2": ensemble(2)}


def test_evaluation_variants_are_reported_every_epoch_without_moving_training(tiny):
    plain_rule, variant_rule = _bp(_Sampled), _bp(_SampledWithVariants)
    plain = fit(plain_rule, tiny, _config(epochs=3))
    varied = fit(variant_rule, tiny, _config(epochs=3))
    for record in varied["history"]:
        assert set(record["variants"]) == {"expectation", "ensemble-2"}
        for entry in record["variants"].values():
            assert set(entry) == {"test_accuracy", "test_loss", "val_accuracy", "val_loss"}
        # the expectation variant is the plain forward: the same metrics as the main evaluation
        assert record["variants"]["expectation"]["test_accuracy"] == record["test_accuracy"]
        assert record["variants"]["ensemble-2"]["test_loss"] != record["test_loss"]
    assert _without_timing(plain["history"]) == [{k: v for k, v in r.items() if k != "variants"}
                                                 for r in _without_timing(varied["history"])]
    for a, b in zip(plain_rule.model.state_dict().values(), variant_rule.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert varied["variants"] == varied["history"][-1]["variants"]
    again = fit(_bp(_SampledWithVariants), tiny, _config(epochs=3))  # draws from seeded generators
    assert [r["variants"] for r in again["history"]] == [r["variants"] for r in varied["history"]]


# -- 5. hooks ------------------------------------------------------------------------------------------

class _ActivityRecorder(TrainerHook):
    """Stand-in of rule identification's recorder: stateful, looks at every step."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, int]] = []
        self.output_sum = torch.zeros(10, dtype=torch.float64)

    def on_step_end(self, rule, step):  # noqa: D102
        self.steps.append((step.epoch, step.step))
        self.output_sum += step.output.double().sum(0)

    def state_dict(self):  # noqa: D102
        return {"steps": list(self.steps), "output_sum": self.output_sum.clone()}

    def load_state_dict(self, state):  # noqa: D102
        self.steps = [tuple(s) for s in state["steps"]]
        self.output_sum = state["output_sum"].clone()


class _PhasedBackprop(RULES.get("bp")):
    """Stand-in of a rule with phases (SAL's symmetrization before each epoch, STDP annealing after)."""

    def __init__(self, model):
        super().__init__(model)
        self.calls: list[tuple[str, int]] = []

    def on_epoch_start(self, epoch):  # noqa: D102
        self.calls.append(("start", epoch))

    def on_epoch_end(self, epoch):  # noqa: D102
        self.calls.append(("end", epoch))
        return {"annealed_rate": 0.5 ** epoch}


def test_step_hooks_run_once_per_step_and_rule_phases_are_called(tiny):
    torch.manual_seed(0)
    rule, hook = _PhasedBackprop(build_model("mlp", (1, 28, 28), 10, hidden=(16,))), _ActivityRecorder()
    summary = fit(rule, tiny, _config(epochs=2), hooks=[hook])
    assert hook.steps == [(epoch, step) for epoch in (1, 2) for step in range(8)]  # 256 / 32 = 8 steps
    assert rule.calls == [("start", 1), ("end", 1), ("start", 2), ("end", 2)]
    assert [r["annealed_rate"] for r in summary["history"]] == [0.5, 0.25]


def test_unused_hooks_add_no_per_step_call(tiny, monkeypatch):
    made = {"n": 0}

    class CountingStepInfo(StepInfo):
        def __init__(self, *args, **kwargs):
            made["n"] += 1
            super().__init__(*args, **kwargs)

    monkeypatch.setattr("creditlab.train.StepInfo", CountingStepInfo)

    class EpochOnly(TrainerHook):
        def on_epoch_end(self, rule, epoch):  # noqa: D102
            return {"seen_epoch": epoch}

    summary = fit(_bp(), tiny, _config(epochs=1), hooks=[EpochOnly(), TrainerHook()])
    assert made["n"] == 0 and summary["history"][0]["seen_epoch"] == 1
    fit(_bp(), tiny, _config(epochs=1), hooks=[_ActivityRecorder()])
    assert made["n"] == 8  # the same counter sees the steps of a hook that asks for them


def test_a_stateful_hook_is_checkpointed_and_a_killed_run_resumes_bit_identically(tiny, tmp_path, monkeypatch):
    settings = {"rule": "bp", "model": "mlp", "dataset": "mnist", "loaded": tiny, "epochs": 3, "batch_size": 32,
                "model_options": {"hidden": (16,)}, "progress": False}
    full_hook = _ActivityRecorder()
    full = train_from_names(**settings, hooks=[full_hook], out_dir=str(tmp_path / "full"))
    with killed_at_step(monkeypatch, 12):  # in the middle of the second epoch (8 steps per epoch)
        train_from_names(**settings, hooks=[_ActivityRecorder()], out_dir=str(tmp_path / "cut"))
    resumed_hook = _ActivityRecorder()
    resumed = train_from_names(**settings, hooks=[resumed_hook], out_dir=str(tmp_path / "cut"), resume=True)
    assert resumed_hook.steps == full_hook.steps and torch.equal(resumed_hook.output_sum, full_hook.output_sum)
    assert _without_timing(resumed["history"]) == _without_timing(full["history"])
    with pytest.raises(CreditlabError, match="no state for hook 1"):  # resumed without its state
        train_from_names(**settings, hooks=[_ActivityRecorder()], out_dir=str(tmp_path / "full"), resume=True,
                         callbacks=[TrainerHook()])


# -- 6. early stopping ---------------------------------------------------------------------------------

class _Overshooting(RULES.get("bp")):
    """Stand-in of a rule past its best epoch: from epoch 3 on it climbs the loss."""

    def on_epoch_start(self, epoch):  # noqa: D102
        self.sign = 1.0 if epoch < 3 else -1.0

    def compute_update(self, inputs, targets):  # noqa: D102
        out = super().compute_update(inputs, targets)
        for p in self.model.parameters():
            p.grad.mul_(self.sign)
        return out


def test_early_stopping_stops_and_restores_the_best_epoch(tiny, tmp_path):
    torch.manual_seed(0)
    rule = _Overshooting(build_model("mlp", (1, 28, 28), 10, hidden=(32,)))
    config = _config(epochs=10, early_stopping=2, out_dir=str(tmp_path))
    summary = fit(rule, tiny, config)
    history, best = summary["history"], summary["best_epoch"]
    assert summary["stopped_early"] and len(history) == best + 2 < 10
    assert history[best - 1]["val_accuracy"] == max(r["val_accuracy"] for r in history)
    restored = evaluate(rule, tiny.val_x, tiny.val_y)
    assert restored == {"accuracy": history[best - 1]["val_accuracy"], "loss": history[best - 1]["val_loss"]}
    assert summary["test_accuracy"] == history[best - 1]["test_accuracy"] != history[-1]["test_accuracy"]
    config.resume = True  # a stopped run stays stopped, with the same best epoch
    torch.manual_seed(0)
    again = fit(_Overshooting(build_model("mlp", (1, 28, 28), 10, hidden=(32,))), tiny, config)
    assert (again["epochs"], again["best_epoch"], again["test_accuracy"]) == (len(history), best,
                                                                               summary["test_accuracy"])


def test_early_stopping_without_a_validation_split_is_refused_before_data_loads(tiny, monkeypatch, data_root,
                                                                                  tmp_path):
    monkeypatch.setattr("creditlab.train.load_dataset", lambda *a, **k: pytest.fail("data was loaded"))
    with pytest.raises(ValueError, match="--early-stopping needs a validation split"):
        train_from_names("bp", "mlp", "mnist", early_stopping=3, epochs=1)
    no_val = Dataset(tiny.spec, tiny.train_x, tiny.train_y, tiny.val_x[:0], tiny.val_y[:0], tiny.test_x,
                     tiny.test_y)
    with pytest.raises(CreditlabError, match="--early-stopping needs a validation split"):
        fit(_bp(), no_val, _config(early_stopping=2))
    result = runner.invoke(app, ["train", "--early-stopping", "3", "--epochs", "1", "--data-dir", str(data_root),
                                 "--out", str(tmp_path), "--quiet"])
    assert result.exit_code == 2 and "--val-fraction" in result.output
