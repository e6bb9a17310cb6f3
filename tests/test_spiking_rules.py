"""Supervised STDP rules on hand-worked two-input cases; NCG; refusals."""

from __future__ import annotations

import pytest
import torch

from creditlab.errors import IncompatibleModelError
from creditlab.models import build_model
from creditlab.rules import build_rule
from creditlab.spiking import kernels
from creditlab.spiking.ncg import CompetitionGroups, regulate_thresholds


@pytest.fixture(autouse=True, params=["torch", "compiled"])
def backend(request, monkeypatch):
    """Every case on the torch code and on the compiled CPU kernels (numba, when installed)."""
    if request.param == "compiled" and not kernels.enabled():
        pytest.skip("numba not installed (extra 'fast'): the compiled kernels are not used")
    monkeypatch.setenv("CREDITLAB_KERNELS", request.param)
    return request.param


def two_neuron_layer(**options):
    model = build_model("spiking-fc", (2,), 2, threshold=0.6, **options)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.5, 0.5], [0.3, 0.3]]))
    return model


X = torch.tensor([[0.2, 0.6]])  # neuron 0 fires at 0.6 (V = 1.0 > 0.6); neuron 1 stays silent (V = 0.6)


def apply(rule, x, y):
    rule.step(x, torch.tensor([y]))
    with torch.no_grad():
        for p in rule.model.parameters():  # plain SGD, lr 1 (the rules' fixed optimizer)
            p -= p.grad
    return rule.model.weight.detach()


def test_s2stdp_hand_example() -> None:
    # label 1: U = {0, 1}, n_t = 1, g = 0.1 -> g_t = g_nt = 0.05; t_base = mean(0.6) = 0.6
    # target n1 (silent, t = 1): T = 0.55, e = +0.45, all inputs causal -> +0.45 * 0.1 = +0.045
    # non-target n0 (t = 0.6): T = 0.65, e = -0.05, both inputs causal -> -0.05 * 0.1 = -0.005
    rule = build_rule("s2stdp", two_neuron_layer(), t_gap=0.1, a_plus=0.1, a_minus=-0.05)
    w = apply(rule, X, 1)
    assert torch.allclose(w, torch.tensor([[0.495, 0.495], [0.345, 0.345]]))


def test_s2stdp_depresses_non_causal_inputs() -> None:
    model = two_neuron_layer()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.7, 0.5], [0.3, 0.3]]))  # n0 fires at 0.2 (V = 0.7)
    rule = build_rule("s2stdp", model, t_gap=0.1, a_plus=0.1, a_minus=-0.05)
    # t_base = 0.2; n0: T = 0.15, e = +0.05 -> causal (0.2) +0.005, non-causal (0.6) -0.0025
    # n1 (silent): T = 0.25, e = 0.75 -> both causal: +0.075
    w = apply(rule, X, 0)
    assert torch.allclose(w, torch.tensor([[0.705, 0.4975], [0.375, 0.375]]))


def test_sstdp_leaves_a_neuron_on_the_right_side_alone() -> None:
    # label 0: t_base = 0.6; n0 target: T = min(0.6, 0.55) = 0.55, e = +0.05 -> +0.005
    # n1 non-target, silent: T = max(1, 0.65) = 1 -> e = 0, no update (S2-STDP would move it)
    rule = build_rule("sstdp", two_neuron_layer(), t_gap=0.1, a_plus=0.1, a_minus=-0.05)
    w = apply(rule, X, 0)
    assert torch.allclose(w, torch.tensor([[0.505, 0.505], [0.3, 0.3]]))
    s2 = apply(build_rule("s2stdp", two_neuron_layer(), t_gap=0.1, a_plus=0.1, a_minus=-0.05), X, 0)
    assert torch.allclose(s2[1], torch.tensor([0.335, 0.335]))


def test_rstdp_rewards_and_punishes_the_first_spike() -> None:
    # winner n0 (t = 0.6); accuracy starts at 1 / C = 0.5
    # label 0: reward, a_plus (1 - 0.5) = 0.05 on both (causal) inputs; label 1: anti 0.5 * -0.1
    reward = apply(build_rule("rstdp", two_neuron_layer(), a_plus=0.1, a_minus=-0.01), X, 0)
    assert torch.allclose(reward, torch.tensor([[0.55, 0.55], [0.3, 0.3]]))
    punish = apply(build_rule("rstdp", two_neuron_layer(), a_plus=0.1, a_minus=-0.01, anti_a_plus=-0.1,
                              anti_a_minus=0.01), X, 1)
    assert torch.allclose(punish, torch.tensor([[0.45, 0.45], [0.3, 0.3]]))


def test_weight_norm_restores_each_neurons_l1_norm() -> None:
    model = two_neuron_layer(weight_norm=True)
    model.initial_norm.copy_(model.weight.detach().abs().sum(1))  # the norms of the hand-set weights
    rule = build_rule("s2stdp", model, t_gap=0.1, a_plus=0.1, a_minus=-0.05)
    w = apply(rule, X, 1)
    assert torch.allclose(w.sum(1), torch.tensor([1.0, 0.6]))


def test_ncg_updates_one_neuron_per_class_and_the_non_target_label() -> None:
    g = torch.Generator().manual_seed(0)
    model = build_model("spiking-fc", (20,), 2, neurons_per_class=3, non_target_per_class=1, threshold=1.0)
    rule = build_rule("s2stdp", model, t_gap=0.05, a_plus=0.1, a_minus=-0.05)
    x = torch.rand(1, 20, generator=g)
    rule.step(x, torch.tensor([0]))
    changed = (model.weight.grad != 0).any(1)
    assert changed.view(2, 3).sum(1).tolist() == [1, 1]  # intra-class WTA: one update per group
    groups = CompetitionGroups(2, 3, 1)
    assert groups.is_target_labelled().tolist() == [False, True, True, False, True, True]


def test_regulation_conserves_the_group_threshold_sum() -> None:
    g = torch.Generator().manual_seed(3)
    thresholds = 100 + torch.rand(8, generator=g, dtype=torch.float64) * 10
    times = torch.rand(8, generator=g, dtype=torch.float64)
    group = torch.tensor([1, 2, 3, 4])
    before = thresholds[group].sum()
    winner = regulate_thresholds(thresholds, times, torch.zeros(8, dtype=torch.float64), group, 5.0, floor=50.0)
    assert winner == int(group[times[group].argmin()])
    assert torch.isclose(thresholds[group].sum(), before)
    assert regulate_thresholds(thresholds, times, times, torch.tensor([2]), 5.0, 50.0) is None


def test_cr2_training_thresholds_reset_each_epoch() -> None:
    model = build_model("spiking-fc", (20,), 2, neurons_per_class=3, regulation="cr2", threshold=1.0)
    rule = build_rule("s2stdp", model, t_gap=0.05, a_plus=0.1, a_minus=-0.05, threshold_lr=1.0,
                      threshold_annealing=0.5)
    rule.step(torch.rand(4, 20, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 0, 1]))
    # the floor (the smallest test threshold) keeps losers from going below 1: only winners rise
    assert bool((model.training_thresholds >= model.thresholds).all())
    assert not torch.equal(model.training_thresholds, model.thresholds)
    stats = rule.on_epoch_end(1)
    assert sum(stats["target_updates"]) == 4 and float(rule.threshold_lr) == 0.5
    rule.on_epoch_start(2)
    assert torch.equal(model.training_thresholds, model.thresholds)


def test_refusals() -> None:
    with pytest.raises(IncompatibleModelError, match="only rules s2stdp, sstdp, rstdp train it"):
        build_rule("bp", build_model("spiking-fc", (4,), 2))
    with pytest.raises(IncompatibleModelError, match="no spiking classification layer"):
        build_rule("s2stdp", build_model("mlp", (1, 28, 28), 10))
    with pytest.raises(ValueError, match="a_minus"):
        build_rule("sstdp", two_neuron_layer(), a_minus=0.1)
    with pytest.raises(ValueError, match="t_gap"):
        build_rule("s2stdp", two_neuron_layer(), t_gap=1.5)
    with pytest.raises(ValueError, match="at least 2 target-labelled"):
        build_model("spiking-fc", (4,), 2, neurons_per_class=2, non_target_per_class=1, regulation="cr2")
    with pytest.raises(ValueError, match="non_target_per_class"):
        build_model("spiking-fc", (4,), 2, neurons_per_class=2, non_target_per_class=2)
    with pytest.raises(ValueError, match=r"spike times must lie in \[0, 1\]"):
        build_rule("s2stdp", two_neuron_layer()).step(torch.tensor([[0.5, 2.0]]), torch.tensor([0]))


def test_gap_split_counts_the_labels_group_as_the_target_even_when_its_winner_is_non_target() -> None:
    # +L: the label's group was won by its non-target-labelled neuron; the authors keep n_t = 1, so
    # g_nt = g / |U| = 0.05 and t_base = mean(0.2, 0.4) = 0.3: both winners want 0.35 (n_t = 0 gave 0.3)
    from creditlab.spiking.supervised import temporal_targets

    desired = temporal_targets(torch.tensor([0.2, 0.5, 0.4, 0.6]), torch.tensor([0, 2]),
                               torch.tensor([False, False]), gap=0.1, ranges=False)
    assert torch.allclose(desired, torch.tensor([0.35, 0.35]))
