"""Rule sal: the spiking phase moves B toward W (FA's B stays), the model's FC chain is required,
bad options are refused; the sal-deep quick reproduction end to end."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

from creditlab.analysis.alignment import angle_degrees
from creditlab.errors import IncompatibleModelError
from creditlab.experiments import ExperimentContext
from creditlab.rules import build_rule
from creditlab.rules.fa import feedback_layers


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 4))
    with torch.no_grad():
        for layer in (model[0], model[2]):
            layer.weight.uniform_(-1.5, 1.5)  # strong synapses: a clear spike-timing signal in a short phase
    return model


def test_a_sal_phase_turns_the_feedback_toward_the_forward_weights() -> None:
    rule = build_rule("sal", _mlp(), seed=1, sal_lr=0.5, iterations=3, steps=1500, chains=8)
    layers = [layer for _, layer in feedback_layers(rule.model)]
    before = [angle_degrees(layer.weight, layer.feedback_matrix()) for layer in layers]
    forward = [layer.weight.detach().clone() for layer in layers]
    rule.symmetrize()
    after = [angle_degrees(layer.weight, layer.feedback_matrix()) for layer in layers]
    assert all(80 < b < 100 for b in before)  # FA's random start: nearly orthogonal
    assert all(a < b - 20 for a, b in zip(after, before, strict=True)), (before, after)
    assert all(torch.equal(layer.weight, w) for layer, w in zip(layers, forward, strict=True))  # W untouched
    assert rule.phases == 1 and rule.state_dict()["_extra_state"] == {"phases": 1}


def test_the_fc_layers_must_form_a_chain_and_options_are_checked() -> None:
    class Split(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 3), nn.Linear(5, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.a(x)

    with pytest.raises(IncompatibleModelError, match="nn.Linear layers to form a chain"):
        build_rule("sal", Split())
    with pytest.raises(ValueError, match="sal option steps must be an integer >= 1, got 0"):
        build_rule("sal", _mlp(), steps=0)
    with pytest.raises(ValueError, match="sal option sal_lr must be a finite number >= 0"):
        build_rule("sal", _mlp(), sal_lr=float("nan"))


def test_the_phase_budget_follows_the_run_size_unless_set(mnist) -> None:
    """Issue #27: a 128-image run got the authors' 5 x 2000-step phase before every epoch (minutes).
    Unset, ``steps`` keeps the authors' ratio (2000 per 469-step epoch, at least 100); set, it is kept."""
    from creditlab.train import train_from_names

    small = mnist.subset(train=128, test=64)
    summary = train_from_names("sal", "lenet", "mnist", loaded=small, epochs=1, batch_size=64, progress=False,
                               rule_options={"chains": 2})
    assert summary["history"][-1]["sal_phase_steps"] == 5 * 100  # 2 training steps: the floor
    rule = build_rule("sal", _mlp())
    context = type("Context", (), {"steps_per_epoch": 469})()
    rule.on_fit_start(context)
    assert rule.steps == 2000  # a full-size epoch: the authors' phase
    context.steps_per_epoch = 100
    rule.on_fit_start(context)
    assert rule.steps == 427  # ceil(2000 * 100 / 469)
    explicit = build_rule("sal", _mlp(), steps=50)
    explicit.on_fit_start(context)
    assert explicit.steps == 50


def test_sal_deep_quick_writes_accuracy_and_angles(tmp_path, data_root) -> None:
    from creditlab.experiments import sal_deep

    records = sal_deep.run(ExperimentContext(quick=True, out_dir=tmp_path, data_dir=data_root))
    lines = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["final"]["rule"] for r in lines] == ["bp", "fa", "kp", "sal"] == [r["final"]["rule"] for r in records]
    sal = lines[-1]["final"]
    assert set(sal["final_feedback_angle_deg"]) == {"features.0", "features.4", "classifier.0", "classifier.3",
                                                    "classifier.6"}
    assert lines[0]["final"]["final_feedback_angle_deg"] == {}  # backprop has no separate feedback
    assert 0.0 <= sal["test_accuracy"] <= 1.0


def _chain_100_40_10() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(100, 40), nn.ReLU(), nn.Linear(40, 10))


def test_a_diverging_sal_update_stops_with_a_named_error_on_the_100_40_10_chain() -> None:
    from creditlab.errors import DivergenceError, FeedbackDivergenceError

    # measured: sal_lr 1 settles at ||B - W|| / ||W|| ~ 0.8 / 0.5; from ~3.3 every update overshoots
    # W and the distance grows (4.7 after two updates at sal_lr 4)
    stable = build_rule("sal", _chain_100_40_10(), seed=0, sal_lr=1.0, iterations=3)
    stable.symmetrize()
    assert all(error < 1.2 for error in stable.last_feedback_error), stable.last_feedback_error
    diverging = build_rule("sal", _chain_100_40_10(), seed=0, sal_lr=4.0, iterations=3)
    with pytest.raises(FeedbackDivergenceError, match=r"diverged: .*sal_lr 4.*smaller sal_lr") as caught:
        diverging.symmetrize()
    assert isinstance(caught.value, DivergenceError)  # the CLI's exit 3, like the trainer's divergence
    with pytest.raises(ValueError, match="divergence_limit must be a finite number > 0"):
        build_rule("sal", _mlp(), divergence_limit=0.0)


def test_the_spiking_phase_reads_the_fc_biases_anew_each_phase() -> None:
    model = _mlp()
    with torch.no_grad():
        model[0].bias.fill_(-60.0)  # silent hidden layer: no pairs on either feedback matrix
    rule = build_rule("sal", model, seed=1, sal_lr=0.5, iterations=1, steps=300, chains=4)
    before = [layer.feedback_weight.clone() for _, layer in feedback_layers(rule.model)]
    rule.symmetrize()
    assert all(torch.equal(layer.feedback_weight, b)
               for (_, layer), b in zip(feedback_layers(rule.model), before, strict=True))
    rule.model[0].bias.data.zero_()  # the network's bias changed (build_rule trains a copy): the next phase sees it
    rule.symmetrize()
    assert all(not torch.equal(layer.feedback_weight, b)
               for (_, layer), b in zip(feedback_layers(rule.model), before, strict=True))
