"""Vectorized nonnegative networks: exact scalar-credit backprop, block-structured input layer, ON/OFF
init, nonnegative projection, the conventional aReLU baselines and the registry entries."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import perturbed_vnn
from creditlab.models import MODELS, apply_constraints, build_model
from creditlab.models.vnn import (
    AReluNet,
    VectorizedNet,
    build_vectorized,
    credit_alignment_angles,
    init_generator,
    output_error,
)
from creditlab.models.vnn_layers import AlternatingReLU, VecGate, VecInputConv2d, VecInputLinear
from creditlab.rules import build_rule

TINY_LAYOUTS = {
    "fc": (("fc", 8), ("fc", 6)),
    "conv": (("conv", 4, 3, 1, 1), ("pool", 2), ("conv", 6, 3, 1, 1), ("pool", 2), ("conv", 4, 2, 2, 0),
             ("fc", 8)),
    "lc": (("lc", 4, 3, 1, 1), ("pool", 2), ("lc", 6, 3, 1, 1), ("pool", 2), ("lc", 4, 2, 2, 0), ("fc", 8)),
}


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_net(kind: str, nonnegative: bool, seed: int = 0, classes: int = 5) -> VectorizedNet:
    """A small double-precision VNN on 2x8x8 inputs with perturbed (nonzero) biases, projected."""
    return perturbed_vnn(TINY_LAYOUTS[kind], classes, nonnegative, seed, noise=0.1, noise_seed=seed + 100)


def autograd_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    loss = F.cross_entropy(model(x), y)
    names, params = zip(*model.named_parameters(), strict=True)
    return dict(zip(names, torch.autograd.grad(loss, params), strict=True))


@pytest.mark.parametrize("kind", ["fc", "conv", "lc"])
@pytest.mark.parametrize("nonnegative", [True, False])
def test_scalar_credit_backprop_equals_autograd(kind: str, nonnegative: bool) -> None:
    net = tiny_net(kind, nonnegative, seed=3)
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(6, 2, 8, 8, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 5, (6,), generator=gen)
    expected = autograd_grads(net, x, y)
    rule = build_rule("bp", net)  # rule bp delegates to the model's backprop_update
    out = rule.step(x, y)
    assert torch.allclose(out.loss, F.cross_entropy(net(x), y))
    for name, param in net.named_parameters():
        assert torch.allclose(param.grad, expected[name], rtol=1e-10, atol=1e-12), name


def expand_input(x: torch.Tensor, k: int) -> torch.Tensor:
    """The authors' dense block-sparse expansion: (B, D) -> (B, K, K*D), block k of component k is x."""
    batch, features = x.shape
    expanded = torch.zeros(batch, k, k * features, dtype=x.dtype)
    for i in range(k):
        expanded[:, i, i * features:(i + 1) * features] = x
    return expanded


def test_output_error_closed_form_equals_autograd_on_the_logits() -> None:
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(7, 5, generator=generator, dtype=torch.float64) * 4
    targets = torch.tensor([0, 4, 4, 2, 1, 3, 0])
    loss, error = output_error(logits, targets, F.cross_entropy)  # closed form softmax - onehot
    z = logits.clone().requires_grad_(True)
    reference_loss = F.cross_entropy(z, targets)
    (reference_error,) = torch.autograd.grad(reference_loss, z)
    torch.testing.assert_close(loss, reference_loss.detach())
    torch.testing.assert_close(error, reference_error)
    # any other loss goes through autograd on the logits: label smoothing changes e
    smoothed_loss, smoothed = output_error(logits, targets, lambda z, y: F.cross_entropy(z, y, label_smoothing=0.1))
    assert not torch.allclose(smoothed, error)
    torch.testing.assert_close(smoothed.sum(dim=1), torch.zeros(7, dtype=torch.float64))


def test_block_structured_first_layer_equals_dense_expansion() -> None:
    gen = torch.Generator().manual_seed(0)
    layer = VecInputLinear(12, 6, 4, nonnegative=False, generator=gen).double()
    with torch.no_grad():
        layer.bias.normal_(generator=gen)
    x = torch.randn(5, 12, generator=gen, dtype=torch.float64)
    dense = expand_input(x, 4) @ layer.dense_weight().t() + layer.bias  # (B, K, out)
    assert torch.allclose(layer(x), dense)

    conv = VecInputConv2d(2, 4, 3, 3, nonnegative=True, generator=gen, padding=1).double()
    with torch.no_grad():
        conv.bias.normal_(generator=gen)
    image = torch.randn(5, 2, 6, 6, generator=gen, dtype=torch.float64)
    expanded = torch.zeros(5, 3, 3 * 2, 6, 6, dtype=torch.float64)  # (B, K, K*C, H, W)
    for k in range(3):
        expanded[:, k, 2 * k:2 * k + 2] = image
    dense = F.conv2d(expanded.view(15, 6, 6, 6), conv.dense_weight(), padding=1).view(5, 3, 4, 6, 6)
    assert torch.allclose(conv(image), dense + conv.bias[None, :, :, None, None])


@pytest.mark.parametrize("kind", ["fc", "conv", "lc"])
def test_gate_scores_shortcut_matches_vector_dot(kind: str) -> None:
    net = tiny_net(kind, nonnegative=False, seed=1)
    x = torch.randn(4, 2, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    h = net.layers[0](x)
    gate: VecGate = net.layers[1]
    assert torch.equal(net._gate_mask(1, gate, h, x), gate.gate_mask(h))


@pytest.mark.parametrize("kind", ["fc", "conv", "lc"])
def test_on_off_init_pairs_units(kind: str) -> None:
    """At ON/OFF init (zero biases) unit 2m+1 = -(unit 2m) in every hidden layer, sharing one gate."""
    net = build_vectorized((2, 8, 8), 5, TINY_LAYOUTS[kind], True, init_generator(4)).double()
    net.fuse_first_block = False  # keep the first gated activation in the record
    x = torch.randn(3, 2, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    record = net.record_forward(x)
    for index, layer in enumerate(net.layers):
        if isinstance(layer, VecGate):
            assert torch.equal(layer.t[1::2], -layer.t[0::2])
            gated = record.layer_inputs[index + 1]  # (batch, K, units, ...): what the next layer reads
            assert torch.allclose(gated[:, :, 1::2], -gated[:, :, 0::2])
            assert gated.abs().sum() > 0
    for index, layer in net.weight_layers():
        if index > 0:
            assert bool((layer.weight >= 0).all())


def test_nonnegative_projection() -> None:
    net = tiny_net("conv", nonnegative=True)
    with torch.no_grad():
        for p in net.parameters():
            p.sub_(1.0)
    first = net.layers[0].weight.clone()
    biases = [layer.bias.clone() for _, layer in net.weight_layers()]
    apply_constraints(net)
    assert torch.equal(net.layers[0].weight, first)  # the first layer stays mixed-sign
    for (index, layer), bias in zip(net.weight_layers(), biases, strict=True):
        assert torch.equal(layer.bias, bias)  # biases are free
        if index > 0:
            assert bool((layer.weight >= 0).all()) and bool((layer.weight == 0).any())
    mixed = tiny_net("conv", nonnegative=False)
    before = [p.clone() for p in mixed.parameters()]
    with torch.no_grad():
        apply_constraints(mixed)
    assert all(torch.equal(a, b) for a, b in zip(before, mixed.parameters(), strict=True))


def test_last_hidden_layer_angle_at_init_is_arccos_inverse_sqrt_pi() -> None:
    """The last hidden credit is the ON/OFF readout (half zeros): cos = E|A| / sqrt(2 E A^2) = 1/sqrt(pi)."""
    expected = math.degrees(math.acos(1 / math.sqrt(math.pi)))  # 55.57 degrees
    x = torch.randn(16, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    def last_angle(seed: int, mixed_sign: bool = False) -> float:
        net = build_model("vnn-fc", (1, 28, 28), 10, hidden=(64, 1024), seed=seed, mixed_sign=mixed_sign)
        return credit_alignment_angles(net, x)[-1]

    angles = [last_angle(s) for s in range(8)]
    mean = sum(angles) / len(angles)
    # each angle has sd ~ 1 degree at 512 readout pairs; the mean of 8 is within 1 degree
    assert abs(mean - expected) < 1.0, (mean, angles)
    mixed = [last_angle(s, mixed_sign=True) for s in range(4)]
    assert abs(sum(mixed) / len(mixed) - 90.0) < 4.0


def test_registry_entries_and_defaults() -> None:
    for name in ("vnn-fc", "vnn-conv", "vnn-lc", "arelu-fc", "arelu-conv", "arelu-lc"):
        entry = MODELS.get(name)
        assert entry.defaults["lr"] == 3e-4 and entry.defaults["batch_size"] == 128
        assert entry.defaults["normalization"] == "symmetric" and entry.defaults["optimizer"] == "adam"
    net = build_model("vnn-conv", (1, 28, 28), 10, mixed_sign=True, seed=0)
    assert isinstance(net, VectorizedNet) and not net.nonnegative
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="layout"):
        build_model("vnn-conv", (2, 10, 10), 10)


def test_arelu_baselines_are_plain_stacks_with_projection() -> None:
    net = build_model("arelu-conv", (1, 28, 28), 10, nonnegative=True, seed=0)
    assert isinstance(net, AReluNet) and isinstance(net, nn.Sequential)
    kinds = [type(m).__name__ for m in net]
    assert kinds == ["Conv2d", "AlternatingReLU", "AvgPool2d", "Conv2d", "AlternatingReLU", "AvgPool2d",
                     "Flatten", "Linear", "AlternatingReLU", "Linear"]
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    with torch.no_grad():
        for p in net.parameters():
            p.sub_(1.0)
    net.apply_constraints()
    layers = net.weight_layers()
    assert bool((layers[0].weight < 0).any())
    assert all(bool((layer.weight >= 0).all()) for layer in layers[1:])
    lc = build_model("arelu-lc", (1, 28, 28), 10, seed=0)
    assert lc(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    # aReLU: even units pass h <= 0, odd units pass h >= 0
    h = torch.tensor([[-1.0, -1.0, 2.0, 2.0]])
    assert torch.equal(AlternatingReLU()(h), torch.tensor([[-1.0, 0.0, 0.0, 2.0]]))


def test_fused_first_block_equals_layer_by_layer() -> None:
    """The chunked input conv -> gate -> pool gives the same record, logits and GEVB/BP updates."""
    from creditlab.rules import build_rule

    net = build_model("vnn-conv", (1, 28, 28), 10, seed=3).double()
    net.first_block_chunk = 3  # several chunks, the last one short
    x = torch.rand(10, 1, 28, 28, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    y = torch.arange(10) % 10
    fused = net.record_forward(x)
    net.fuse_first_block = False
    plain = net.record_forward(x)
    assert torch.equal(fused.gate_masks[1], plain.gate_masks[1])
    assert torch.allclose(fused.layer_inputs[3], plain.layer_inputs[3])
    assert fused.layer_inputs[2].shape == plain.layer_inputs[2].shape
    assert torch.allclose(fused.logits, plain.logits)
    with torch.no_grad():
        plain_eval = net(x)
        net.fuse_first_block = True
        assert torch.allclose(net(x), plain_eval)
    for rule_name in ("gevb", "bp"):
        updates = []
        for fuse in (True, False):
            net.fuse_first_block = fuse
            build_rule(rule_name, net).step(x, y)
            updates.append([p.grad.clone() for p in net.parameters() if p.requires_grad])
        assert all(torch.allclose(a, b) for a, b in zip(*updates, strict=True)), rule_name


@pytest.mark.parametrize("kind", ["vnn-lc", "arelu-lc"])
def test_locally_connected_forward_in_batch_chunks_equals_whole_batch(kind: str, monkeypatch) -> None:
    """A batch too big for the LC memory budget runs in chunks: same outputs, same autograd gradients."""
    from creditlab.models import vnn_layers

    net = build_model(kind, (1, 28, 28), 10, seed=2).double()
    x = torch.rand(7, 1, 28, 28, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = torch.arange(7) % 10

    def logits_and_grads() -> tuple[torch.Tensor, list[torch.Tensor]]:
        net.zero_grad(set_to_none=True)
        logits = net(x)
        F.cross_entropy(logits, y).backward()
        return logits.detach(), [p.grad.clone() for p in net.parameters()]

    whole, whole_grads = logits_and_grads()
    calls = []
    original = vnn_layers._in_batch_chunks

    def counting(forward, batch, per_example):  # noqa: ANN001, ANN202
        calls.append(max(1, vnn_layers.LOCAL_FORWARD_ELEMENTS // per_example))
        return original(forward, batch, per_example)

    monkeypatch.setattr(vnn_layers, "_in_batch_chunks", counting)
    monkeypatch.setattr(vnn_layers, "LOCAL_FORWARD_ELEMENTS", 1 << 17)  # one to a few examples a chunk
    chunked, chunked_grads = logits_and_grads()
    assert calls and min(calls) < len(x)  # at least one layer really split the batch
    torch.testing.assert_close(chunked, whole)
    for a, b in zip(chunked_grads, whole_grads, strict=True):
        torch.testing.assert_close(a, b)
