"""Direct feedback alignment: hand-computed updates, conv blocks, no backward chain, model checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import loss_before_and_after_steps
from creditlab.errors import IncompatibleModelError
from creditlab.models import build_model
from creditlab.rules import build_rule


def test_dfa_one_hidden_layer_equals_hand_computed_update() -> None:
    """x -> W1 -> tanh -> W2 -> logits: dW2 = e^T h, dW1 = ((e B1) * (1 - h^2))^T x, e = (p - y)/B."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    x = torch.randn(5, 6, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 2, 1])
    rule = build_rule("dfa", model, seed=7, input_shape=(6,))
    rule.step(x, y)
    w1, b1, w2, b2 = (p.detach() for p in model.parameters())
    feedback = rule.feedback_blocks()["1"]  # B1: (classes, hidden)
    assert feedback.shape == (3, 4)
    hidden = torch.tanh(x @ w1.T + b1)
    error = (torch.softmax(hidden @ w2.T + b2, 1) - F.one_hot(y, 3)) / len(y)
    delta = (error @ feedback) * (1 - hidden**2)
    grads = [p.grad for p in model.parameters()]
    torch.testing.assert_close(grads[0], delta.T @ x)
    torch.testing.assert_close(grads[1], delta.sum(0))
    torch.testing.assert_close(grads[2], error.T @ hidden)  # the readout's exact gradient
    torch.testing.assert_close(grads[3], error.sum(0))


def test_dfa_conv_block_gets_projection_reshaped_to_block_output() -> None:
    """conv-ReLU-maxpool | conv-ReLU-flatten | linear: each conv gets the local gradient of <h, B e>."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 4 * 4, 5)).double()
    x = torch.randn(4, 2, 8, 8, dtype=torch.float64)
    y = torch.tensor([0, 4, 2, 1])
    rule = build_rule("dfa", model, input_shape=(2, 8, 8))
    assert rule.hidden_layer_names == ["0", "3"]
    assert rule.block_shapes == [(3, 4, 4), (64,)]  # the input of the next weight layer, per example
    rule.step(x, y)
    conv1, conv2, readout = model[0], model[3], model[6]
    block1 = F.max_pool2d(F.relu(conv1(x)), 2)
    block2 = F.relu(conv2(block1.detach())).flatten(1)
    error = (torch.softmax(readout(block2).detach(), 1) - F.one_hot(y, 5)) / len(y)
    feedback = rule.feedback_blocks()
    signal1 = (error @ feedback["0"]).reshape(block1.shape)  # broadcast reshaped to (C, H, W)
    expected1 = torch.autograd.grad((block1 * signal1).sum(), [conv1.weight, conv1.bias])
    expected2 = torch.autograd.grad((block2 * (error @ feedback["3"])).sum(), [conv2.weight, conv2.bias])
    torch.testing.assert_close(conv1.weight.grad, expected1[0])
    torch.testing.assert_close(conv1.bias.grad, expected1[1])
    torch.testing.assert_close(conv2.weight.grad, expected2[0])
    torch.testing.assert_close(conv2.bias.grad, expected2[1])
    torch.testing.assert_close(readout.weight.grad, error.T @ block2.detach())


def test_dfa_signal_enters_at_marked_feedback_sites_before_pooling() -> None:
    """aReLU marks a feedback site: B e enters at its output (full resolution), as in the GEVB authors' DFA."""
    from creditlab.models.vnn_layers import AlternatingReLU

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), AlternatingReLU(), nn.AvgPool2d(2), nn.Flatten(),
                          nn.Linear(3 * 4 * 4, 5), AlternatingReLU(), nn.Linear(5, 4)).double()
    x = torch.randn(4, 2, 8, 8, dtype=torch.float64)
    y = torch.tensor([0, 3, 2, 1])
    rule = build_rule("dfa", model, input_shape=(2, 8, 8))
    assert rule.block_shapes == [(3, 8, 8), (5,)]  # the aReLU outputs, before pooling
    rule.step(x, y)
    conv, hidden, readout = model[0], model[4], model[6]
    site1 = model[1](conv(x))
    site2 = model[5](hidden(model[3](model[2](site1)).detach()))
    error = (torch.softmax(readout(site2).detach(), 1) - F.one_hot(y, 4)) / len(y)
    feedback = rule.feedback_blocks()
    signal1 = (error @ feedback["0"]).reshape(site1.shape)
    expected_conv = torch.autograd.grad((site1 * signal1).sum(), [conv.weight, conv.bias])
    expected_hidden = torch.autograd.grad((site2 * (error @ feedback["4"])).sum(), [hidden.weight])
    torch.testing.assert_close(conv.weight.grad, expected_conv[0])
    torch.testing.assert_close(conv.bias.grad, expected_conv[1])
    torch.testing.assert_close(hidden.weight.grad, expected_hidden[0])
    torch.testing.assert_close(readout.weight.grad, error.T @ site2.detach())
    unmarked = nn.Sequential(nn.Linear(4, 4), AlternatingReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(IncompatibleModelError, match="exactly one inside every hidden block"):
        build_rule("dfa", unmarked, input_shape=(4,))


def test_dfa_signal_angles_against_hand_computation() -> None:
    """One hidden layer: the exact gradient at h is e W2 and the DFA signal e B; the metric is the mean
    per-example angle between them, 0 when B = W2, and it leaves .grad alone."""
    from creditlab.analysis.alignment import angle_degrees

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    x, y = torch.randn(7, 6, dtype=torch.float64), torch.randint(0, 3, (7,))
    rule = build_rule("dfa", model, input_shape=(6,))
    hidden = torch.tanh(model[0](x))
    error = torch.softmax(model[2](hidden), 1) - F.one_hot(y, 3)
    feedback = rule.feedback_blocks()["0"]
    expected = sum(angle_degrees(e @ model[2].weight.detach(), e @ feedback) for e in error) / len(error)
    assert rule.signal_angles(x, y) == pytest.approx({"0": expected}, abs=1e-6)
    assert all(p.grad is None for p in model.parameters())
    feedback.copy_(model[2].weight.detach())  # B = W2: DFA's signal is the exact gradient
    assert rule.signal_angles(x, y) == pytest.approx({"0": 0.0}, abs=1e-4)
    from creditlab.analysis.alignment import measure_alignment

    metrics = measure_alignment(rule, x, y)  # --track-alignment reports it on the hidden weight
    assert metrics["0.weight"]["signal_angle_deg"] == pytest.approx(0.0, abs=1e-4)


def test_dfa_sends_no_error_through_the_chain() -> None:
    """Changing a hidden layer's feedback leaves the other hidden layers' updates unchanged."""
    torch.manual_seed(0)
    model = build_model("mlp", (1, 6, 6), 4, hidden=(8, 8, 8))
    rule = build_rule("dfa", model)
    x, y = torch.randn(5, 1, 6, 6), torch.randint(0, 4, (5,))
    rule.step(x, y)
    before = [p.grad.clone() for p in model.parameters()]
    rule.feedback_blocks()["3"].mul_(-2.0)  # B of the second hidden layer (a view into the buffer)
    rule.step(x, y)
    after = [p.grad for p in model.parameters()]
    changed = [not torch.equal(a, b) for a, b in zip(before, after, strict=True)]
    assert changed == [False, False, True, True, False, False, False, False]
    # the true gradients are the exact ones (autograd on the unhooked model)
    true = rule.true_gradients(x, y)
    reference = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
    for (name, grad), ref in zip(true.items(), reference, strict=True):
        assert torch.equal(grad, ref), name


def test_dfa_plus_feedback_nonnegative_and_state_dict_round_trip() -> None:
    torch.manual_seed(0)
    model = build_model("lenet", (1, 28, 28), 10)
    plus, mixed = build_rule("dfa+", model, seed=1), build_rule("dfa", model, seed=1)
    assert plus.hidden_layer_names == ["features.0", "features.3", "classifier.1", "classifier.3"]
    assert plus.block_sizes == [6 * 14 * 14, 400, 120, 84]
    assert (plus.feedback_matrix >= 0).all()
    assert (mixed.feedback_matrix < 0).any()
    torch.testing.assert_close(plus.feedback_matrix, mixed.feedback_matrix.abs())
    other = build_rule("dfa", model, seed=2)
    assert not torch.equal(other.feedback_matrix, mixed.feedback_matrix)
    other.load_state_dict(mixed.state_dict())
    assert torch.equal(other.feedback_matrix, mixed.feedback_matrix)
    # scale: variance 1/d_l per entry, so ||B_l e|| ~ ||e||
    for block in mixed.feedback_blocks().values():
        assert 0.85 < float(block.pow(2).mean() * block.shape[1]) < 1.15


def test_dfa_rejects_models_it_cannot_handle() -> None:
    with pytest.raises(IncompatibleModelError, match="skip connection"):
        build_rule("dfa", build_model("resnet20", (3, 32, 32), 10))
    with pytest.raises(IncompatibleModelError, match="at least one hidden"):
        build_rule("dfa", nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), input_shape=(4,))
    with pytest.raises(IncompatibleModelError, match="Conv1d"):
        build_rule("dfa+", nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(4, 2), nn.Linear(2, 2)),
                   input_shape=(1, 4))

    class Reuse(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(torch.relu(self.a(torch.relu(self.a(x)))))

    with pytest.raises(IncompatibleModelError, match="more than once"):
        build_rule("dfa", Reuse(), input_shape=(4,))
    with pytest.raises(ValueError, match="input_shape"):
        build_rule("dfa", nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)))


def test_dfa_keeps_batchnorm_local_and_restores_modes() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    model.train()
    rule = build_rule("dfa", model, input_shape=(5,))
    assert model.training and model[1].running_mean.abs().sum() == 0  # the probe changed nothing
    rule.step(torch.randn(8, 5), torch.randint(0, 3, (8,)))
    assert model[1].weight.grad.abs().sum() > 0


@pytest.mark.parametrize(("rule_name", "model_name"), [("dfa", "mlp"), ("dfa+", "mlp"), ("dfa", "lenet")])
def test_a_few_steps_on_mnist_lower_the_loss(rule_name: str, model_name: str,
                                             mnist_subset: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = mnist_subset
    torch.manual_seed(0)
    options = {"hidden": (64,)} if model_name == "mlp" else {}
    rule = build_rule(rule_name, build_model(model_name, (1, 28, 28), 10, **options))
    before, after = loss_before_and_after_steps(rule, x, y)
    assert after < 0.8 * before, (before, after)


class _OwnScale(nn.Module):
    """A user's module owning a parameter not named ``weight``: x -> x K."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.kernel = nn.Parameter(torch.randn(features, features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x @ self.kernel


@pytest.mark.parametrize("rule_name", ["dfa", "dfa+"])
def test_dfa_refuses_a_parameter_owning_module_it_does_not_understand(rule_name: str) -> None:
    """Inside a block its error would travel backprop-style through K: refused, naming it, not left exact."""
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), _OwnScale(4), nn.Linear(4, 2))
    with pytest.raises(IncompatibleModelError, match=r"_OwnScale at 2 owning parameters \(kernel\)"):
        build_rule(rule_name, model, input_shape=(4,))


def test_dfa_accepts_per_unit_parameter_layers_inside_blocks() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.LayerNorm(6), nn.PReLU(6), nn.Linear(6, 3))
    rule = build_rule("dfa", model, input_shape=(5,))
    assert rule.hidden_layer_names == ["0"]
    rule.step(torch.randn(8, 5), torch.randint(0, 3, (8,)))
    assert model[1].weight.grad.abs().sum() > 0 and model[2].weight.grad.abs().sum() > 0
