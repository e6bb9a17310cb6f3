"""Feedback alignment family: conversion, exact-transpose limit, hand-checked backward, state, variants."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import loss_before_and_after_steps
from creditlab.errors import IncompatibleModelError
from creditlab.models import build_model
from creditlab.models.vnn_layers import LocallyConnected2d
from creditlab.rules import build_rule
from creditlab.rules.fa import (
    FeedbackConv2d,
    FeedbackLinear,
    FeedbackLocallyConnected2d,
    convert_to_feedback_alignment,
    exact_backward,
    feedback_layers,
    feedback_matrices,
)

FA_RULES = ("fa", "usf", "brsf", "frsf")


class UserNet(nn.Module):
    """A user's model: strided/grouped/'same'-padded and bias-free convs, BN, a skip, Linear on 3-D input."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(3, 8, 3, padding="same", bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.conv_b = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=2)
        self.conv_c = nn.Conv2d(8, 8, 4, padding="same", padding_mode="reflect")
        self.mix = nn.Linear(8, 8)
        self.head = nn.Linear(8 * 16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        h = F.relu(self.bn(self.conv_a(x)))
        h = F.relu(self.conv_b(h))
        h = h + torch.tanh(self.conv_c(h))  # skip connection
        tokens = h.flatten(2).transpose(1, 2)  # (batch, 16 positions, 8 channels)
        tokens = F.gelu(self.mix(tokens))
        return self.head(tokens.flatten(1))


def _models() -> list[tuple[str, nn.Module, tuple[int, ...]]]:
    torch.manual_seed(0)
    return [("mlp", build_model("mlp", (1, 28, 28), 10, hidden=(32, 16)), (1, 28, 28)),
            ("lenet", build_model("lenet", (1, 28, 28), 10), (1, 28, 28)),
            ("resnet20", build_model("resnet20", (3, 32, 32), 10), (3, 32, 32)),
            ("user", UserNet(), (3, 8, 8)),
            ("arelu-lc", build_model("arelu-lc", (1, 28, 28), 10), (1, 28, 28))]


def _batch(shape: tuple[int, ...], classes: int = 5, n: int = 6, seed: int = 1
           ) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=gen), torch.randint(0, classes, (n,), generator=gen)


@pytest.mark.parametrize("mode", FA_RULES)
def test_conversion_keeps_forward_bit_identical_and_original_untouched(mode: str) -> None:
    for name, model, shape in _models():
        before = copy.deepcopy(model.state_dict())
        converted = convert_to_feedback_alignment(model, mode, seed=3)
        x, _ = _batch(shape)
        reference = copy.deepcopy(model)
        # training mode, grad enabled: the custom autograd functions run
        assert torch.equal(converted(x), reference(x)), name
        converted.eval()
        reference.eval()
        with torch.no_grad():
            assert torch.equal(converted(x), reference(x)), name
        # the original: same classes, same values, no feedback buffers
        assert not any(isinstance(m, FeedbackLinear | FeedbackConv2d | FeedbackLocallyConnected2d)
                       for m in model.modules())
        assert model.state_dict().keys() == before.keys()
        assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
        n_layers = sum(isinstance(m, nn.Linear | nn.Conv2d | LocallyConnected2d) for m in model.modules())
        assert len(list(feedback_layers(converted))) == n_layers, name
        assert getattr(converted, "creditlab_name", None) == getattr(model, "creditlab_name", None)


#: models whose FA backward runs other kernels than autograd's BP backward: the locally connected
#: layer's patch and weight gradients are bmm's of contiguous copies, autograd's are bmm's of transposed
#: views, and the GEMM library may sum those in another order (MKL_CBWR=COMPATIBLE does: 3 float32 ulps)
REORDERED_SUMS = ("arelu-lc",)


def test_fa_with_feedback_equal_to_weights_reproduces_backprop_exactly() -> None:
    for name, model, shape in _models():
        classes = 5 if name == "user" else 10
        x, y = _batch(shape, classes)
        if name in REORDERED_SUMS:  # the same sums in another order: compare in float64
            model, x = model.double(), x.double()
        rule = build_rule("fa", model)
        for _, layer in feedback_layers(rule.model):
            layer.feedback_weight.copy_(layer.weight.detach())
        rule.step(x, y)
        bp = build_rule("bp", copy.deepcopy(model))
        bp.step(x, y)
        for (pname, p), q in zip(rule.model.named_parameters(), bp.model.parameters(), strict=True):
            if name not in REORDERED_SUMS:  # the same kernels on the same data: bitwise on any CPU
                assert torch.equal(p.grad, q.grad), f"{name}: {pname}"
                continue
            # Two orders of one sum of n terms differ by <= 2 n u sum|terms| (u = 2^-53); the longest sums
            # reordered here have n = 32 + 6 (a position's output channels, then the batch): 8.4e-15.
            # The tolerance, 1e-12 of the gradient's largest element, leaves 100x for sum|terms| > max|g|.
            # Measured: equal with the AVX2 and AVX-512 GEMMs, 2.6e-16 with MKL_CBWR=COMPATIBLE.
            scale = float(q.grad.abs().max())
            torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=1e-12 * scale, msg=f"{name}: {pname}")


def test_fa_update_matches_hand_computed_backward() -> None:
    """Two-layer net: dW1 = ((e B2) * relu'(h1))^T x, with B2 the fixed feedback of the readout."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(7, 5), nn.ReLU(), nn.Linear(5, 3)).double()
    x, y = torch.randn(4, 7, dtype=torch.float64), torch.tensor([0, 2, 1, 2])
    rule = build_rule("fa", model, seed=5)
    rule.step(x, y)
    w1, b1, w2, b2 = (p.detach() for p in model.parameters())
    feedback = rule.feedback_matrices()["2.weight"]
    pre = x @ w1.T + b1
    hidden = pre.clamp_min(0)
    error = (torch.softmax(hidden @ w2.T + b2, 1) - F.one_hot(y, 3)) / len(y)  # dL/dlogits, mean CE
    delta = (error @ feedback) * (pre > 0)
    grads = dict(rule.model.named_parameters())
    torch.testing.assert_close(grads["2.weight"].grad, error.T @ hidden)
    torch.testing.assert_close(grads["2.bias"].grad, error.sum(0))
    torch.testing.assert_close(grads["0.weight"].grad, delta.T @ x)
    torch.testing.assert_close(grads["0.bias"].grad, delta.sum(0))
    assert not torch.allclose(feedback, w2)


@pytest.mark.parametrize("mode", FA_RULES)
def test_every_variant_update_matches_hand_computed_backward(mode: str) -> None:
    """Three layers, tanh: delta2 = (e B3) * tanh'(a2), delta1 = (delta2 B2) * tanh'(a1), dW_l = delta_l^T h_{l-1},
    with each variant's B built here from its definition (float64 matrix products, no autograd)."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    x, y = torch.randn(5, 6, dtype=torch.float64), torch.tensor([0, 2, 1, 2, 0])
    weights = [model[i].weight.detach().clone() for i in (0, 2, 4)]
    biases = [model[i].bias.detach().clone() for i in (0, 2, 4)]
    rule = build_rule(mode, model, seed=2)
    rule.step(x, y)
    layers = [layer for _, layer in feedback_layers(rule.model)]
    feedback = []
    for weight, layer in zip(weights, layers, strict=True):
        sigma = weight.std()
        if mode == "fa":
            matrix = layer.feedback_weight  # fixed random: only its draw is taken from the layer
        elif mode == "usf":
            matrix = sigma * weight.sign()  # sigma: std of W at conversion (taken in float32 there)
        elif mode == "frsf":
            matrix = layer.feedback_magnitude * weight.sign()
        else:  # brsf: this step's draw; check it has the definition's form
            matrix = layer.feedback_matrix()
            assert torch.equal(matrix.sign(), weight.sign())
            assert float(matrix.abs().max()) <= 3**0.5 * float(sigma) + 1e-12
        feedback.append(matrix)
    h0 = x
    a1 = h0 @ weights[0].T + biases[0]
    h1 = torch.tanh(a1)
    a2 = h1 @ weights[1].T + biases[1]
    h2 = torch.tanh(a2)
    error = (torch.softmax(h2 @ weights[2].T + biases[2], 1) - F.one_hot(y, 3)) / len(y)
    delta2 = (error @ feedback[2]) * (1 - h2**2)
    delta1 = (delta2 @ feedback[1]) * (1 - h1**2)
    grads = dict(rule.model.named_parameters())
    for name, delta, below in (("4", error, h2), ("2", delta2, h1), ("0", delta1, h0)):
        torch.testing.assert_close(grads[f"{name}.weight"].grad, delta.T @ below)
        torch.testing.assert_close(grads[f"{name}.bias"].grad, delta.sum(0))
    true = rule.true_gradients(x, y)
    assert not torch.allclose(true["0.weight"], grads["0.weight"].grad)  # not backprop in disguise


@pytest.mark.parametrize("mode", FA_RULES)
def test_true_gradients_use_exact_transposes(mode: str) -> None:
    _, model, shape = _models()[1]
    x, y = _batch(shape, 10)
    rule = build_rule(mode, model)
    true = rule.true_gradients(x, y)
    bp = build_rule("bp", copy.deepcopy(model))
    bp.step(x, y)
    for (pname, _), q in zip(rule.model.named_parameters(), bp.model.parameters(), strict=True):
        torch.testing.assert_close(true[pname], q.grad, rtol=1e-5, atol=1e-7)
    rule.step(x, y)
    first = rule.model.features[0].weight
    assert not torch.allclose(first.grad, true["features.0.weight"], atol=1e-6)  # FA differs below the top
    assert all(not layer.exact_backward for _, layer in feedback_layers(rule.model))
    with exact_backward(rule.model):
        assert all(layer.exact_backward for _, layer in feedback_layers(rule.model))


@pytest.mark.parametrize("mode", FA_RULES)
def test_feedback_travels_with_state_dict(mode: str) -> None:
    torch.manual_seed(0)
    model = build_model("lenet", (1, 28, 28), 10)
    source = build_rule(mode, model, seed=1)
    x, y = _batch((1, 28, 28), 10)
    source.step(x, y)  # brSF: advances the draw counter
    target = build_rule(mode, model, seed=2)
    assert any("feedback" in key for key in source.model.state_dict())
    target.model.load_state_dict(source.model.state_dict())
    for key, matrix in feedback_matrices(source.model).items():
        assert torch.equal(matrix, feedback_matrices(target.model)[key]), key
    # the next steps agree too (brSF draws the same magnitudes after a round trip)
    source.step(x, y)
    target.step(x, y)
    for p, q in zip(source.model.parameters(), target.model.parameters(), strict=True):
        assert torch.equal(p.grad, q.grad)
    converted = target.model.double()  # buffers follow .to(dtype / device)
    assert all(m.dtype == torch.float64 for m in feedback_matrices(converted).values())


def test_fa_feedback_is_fixed_random_and_seeded() -> None:
    torch.manual_seed(0)
    model = build_model("mlp", (1, 28, 28), 10, hidden=(32,))
    a, b, c = (convert_to_feedback_alignment(model, "fa", seed) for seed in (0, 0, 1))
    for key, matrix in feedback_matrices(a).items():
        weight = dict(a.named_parameters())[key]
        assert torch.equal(matrix, feedback_matrices(b)[key])
        assert not torch.equal(matrix, feedback_matrices(c)[key])
        assert matrix.shape == weight.shape
        # same scale as the forward init, and no correlation with W even under the same global seed
        assert 0.8 < float(matrix.std() / weight.detach().std()) < 1.25
        cosine = float(F.cosine_similarity(matrix.flatten(), weight.detach().flatten(), 0))
        assert abs(cosine) < 0.1


def _sgd_step(rule, x: torch.Tensor, y: torch.Tensor, lr: float = 0.5) -> None:  # noqa: ANN001
    rule.step(x, y)
    with torch.no_grad():
        for p in rule.model.parameters():
            p -= lr * p.grad


def test_usf_feedback_is_scaled_sign_of_current_weights() -> None:
    torch.manual_seed(0)
    rule = build_rule("usf", build_model("lenet", (1, 28, 28), 10))
    x, y = _batch((1, 28, 28), 10)
    for _ in range(2):
        for _, layer in feedback_layers(rule.model):
            matrix = layer.feedback_matrix()
            assert torch.equal(matrix, layer.weight.detach().sign() * layer.feedback_scale)
            assert torch.unique(matrix.abs()).numel() == 1  # one magnitude per layer
        _sgd_step(rule, x, y)


def test_frsf_sign_follows_weights_magnitude_fixed() -> None:
    torch.manual_seed(0)
    rule = build_rule("frsf", build_model("mlp", (1, 28, 28), 10, hidden=(32,)))
    x, y = _batch((1, 28, 28), 10)
    magnitudes = {k: m.abs().clone() for k, m in rule.feedback_matrices().items()}
    for _ in range(3):
        _sgd_step(rule, x, y, lr=5.0)
    params = dict(rule.model.named_parameters())
    for key, matrix in rule.feedback_matrices().items():
        assert torch.equal(matrix.sign(), params[key].detach().sign())
        assert torch.equal(matrix.abs(), magnitudes[key])


def test_brsf_magnitude_redrawn_each_step_sign_follows_weights_and_seeded() -> None:
    torch.manual_seed(0)
    model = build_model("mlp", (1, 28, 28), 10, hidden=(32,))
    rule = build_rule("brsf", model, seed=4)
    twin = build_rule("brsf", model, seed=4)
    x, y = _batch((1, 28, 28), 10)
    previous = None
    for _ in range(3):
        rule.step(x, y)
        twin.step(x, y)
        current = rule.feedback_matrices()
        params = dict(rule.model.named_parameters())
        for key, matrix in current.items():
            assert torch.equal(matrix.sign(), params[key].detach().sign())
            assert torch.equal(matrix, twin.feedback_matrices()[key])
            if previous is not None:
                assert not torch.equal(matrix.abs(), previous[key].abs())
        previous = current
    with torch.no_grad():  # evaluation draws nothing
        rule.model(x)
    assert all(torch.equal(m, previous[k]) for k, m in rule.feedback_matrices().items())


def test_unsupported_models_raise_clear_errors() -> None:
    with pytest.raises(IncompatibleModelError, match="Conv1d"):
        build_rule("fa", nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(2, 2)))
    with pytest.raises(IncompatibleModelError, match="no nn.Linear, nn.Conv2d or LocallyConnected2d"):
        build_rule("usf", nn.Sequential(nn.Flatten(), nn.BatchNorm1d(4)))
    converted = convert_to_feedback_alignment(nn.Sequential(nn.Linear(3, 2)), "fa")
    with pytest.raises(IncompatibleModelError, match="already converted"):
        convert_to_feedback_alignment(converted, "fa")
    with pytest.raises(ValueError, match="unknown feedback mode"):
        convert_to_feedback_alignment(nn.Sequential(nn.Linear(3, 2)), "xyz")


@pytest.mark.parametrize("mode", FA_RULES)
def test_a_few_steps_on_mnist_lower_the_loss(mode: str,
                                             mnist_subset: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = mnist_subset
    torch.manual_seed(0)
    rule = build_rule(mode, build_model("mlp", (1, 28, 28), 10, hidden=(64,)))
    before, after = loss_before_and_after_steps(rule, x, y)
    assert after < 0.7 * before, (before, after)


class OwnLayer(nn.Module):
    """A user's weight layer the FA family does not know: x -> x K (its backward would use K^T)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.kernel = nn.Parameter(torch.randn(features, features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x @ self.kernel


class WideLinear(nn.Linear):
    """A subclass of nn.Linear (its forward could differ)."""


@pytest.mark.parametrize(("layer", "message"), [
    (OwnLayer(4), r"OwnLayer at 1 owning parameters \(kernel\)"),
    (nn.Bilinear(4, 4, 4), "Bilinear at 1 owning parameters"),
    (nn.ConvTranspose1d(4, 4, 1), "ConvTranspose1d at 1"),
    (WideLinear(4, 4), "WideLinear at 1, a subclass of Linear"),
])
def test_an_unknown_weight_owning_module_is_refused_not_left_exact(layer: nn.Module, message: str) -> None:
    model = nn.Sequential(nn.Linear(4, 4), layer, nn.Linear(4, 3))
    for mode in FA_RULES:
        with pytest.raises(IncompatibleModelError, match=message):
            build_rule(mode, model)


def test_layers_with_local_backward_are_kept_exact_and_everything_else_converted() -> None:
    """Norms, PReLU and embeddings have per-unit parameters (nothing to transport); they stay exact."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.PReLU(8), nn.Linear(8, 8), nn.BatchNorm1d(8),
                          nn.GroupNorm(2, 8), nn.RMSNorm(8), nn.Linear(8, 3))
    rule = build_rule("fa", model)
    assert [path for path, _ in feedback_layers(rule.model)] == ["0", "3", "7"]
    embedded = nn.Sequential(nn.Embedding(10, 6), nn.Flatten(), nn.Linear(12, 3))
    assert [path for path, _ in feedback_layers(build_rule("fa", embedded).model)] == ["2"]


@pytest.mark.parametrize("mode", FA_RULES)
def test_locally_connected_backward_uses_feedback_tensor(mode: str) -> None:
    """dx of a converted LC layer = autograd of the plain LC layer with W replaced by B; dW, db exact."""
    torch.manual_seed(0)
    plain = LocallyConnected2d(3, 4, 3, (7, 7), stride=2, padding=1).double()
    with torch.no_grad():
        plain.bias.normal_()
    rule = build_rule(mode, nn.Sequential(plain, nn.Flatten()))
    layer = rule.model[0]
    assert isinstance(layer, FeedbackLocallyConnected2d)
    x = torch.randn(5, 3, 7, 7, dtype=torch.float64, requires_grad=True)
    out = rule.model(x)
    assert torch.equal(out, plain(x).flatten(1))  # forward bit-identical
    upstream = torch.randn_like(out)
    grad_x, grad_w, grad_b = torch.autograd.grad(out, [x, layer.weight, layer.bias], upstream)
    feedback = layer.feedback_matrix()  # brSF: this forward's draw (no draw since)
    assert feedback.shape == plain.weight.shape
    assert not torch.allclose(feedback, plain.weight)
    stand_in = copy.deepcopy(plain)
    with torch.no_grad():
        stand_in.weight.copy_(feedback)
    expected_x, = torch.autograd.grad(stand_in(x).flatten(1), x, upstream)
    expected_w, expected_b = torch.autograd.grad(plain(x).flatten(1), [plain.weight, plain.bias], upstream)
    torch.testing.assert_close(grad_x, expected_x)
    torch.testing.assert_close(grad_w, expected_w)
    torch.testing.assert_close(grad_b, expected_b)
    with exact_backward(rule.model):
        exact_x, = torch.autograd.grad(rule.model(x), x, upstream)
    torch.testing.assert_close(exact_x, torch.autograd.grad(plain(x).flatten(1), x, upstream)[0])
