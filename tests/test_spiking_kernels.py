"""The compiled CPU kernels (numba, extra ``fast``) against a brute-force simulation and the torch code."""

from __future__ import annotations

import pytest
import torch

from creditlab.models import build_model
from creditlab.rules import build_rule
from creditlab.spiking import kernels
from creditlab.spiking.event_layer import first_spikes, uses_compiled_kernel
from creditlab.spiking.extractor import STDPCSNN, paper_config
from test_spiking_layer import brute_force, random_case

pytestmark = pytest.mark.skipif(not kernels.enabled(), reason="numba not installed (extra 'fast')")


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_kernel_matches_brute_force_simulation(seed: int, signed: bool) -> None:
    times, weights, thresholds = random_case(seed, batch=8, n_in=40, n=6, signed=signed)
    # dyadic weights: every float32 partial sum is exact, so ties and V == theta are real
    got = first_spikes(times.float(), weights.float(), thresholds.float())
    assert uses_compiled_kernel(times.float(), weights.float())
    want_t, want_v = brute_force(times, weights, thresholds)
    assert torch.equal(got.times.double(), want_t)
    assert torch.equal(got.potentials.double(), want_v)


def test_kernel_matches_the_torch_layer_at_the_benchmark_size(monkeypatch) -> None:
    g = torch.Generator().manual_seed(0)
    times = torch.rand(16, 4608, generator=g)
    times[torch.rand(16, 4608, generator=g) < 0.3] = 1.0
    times[:, :100] = 0.5  # a large tie group
    weights = (torch.randn(50, 4608, generator=g) * 0.01 + 0.3).clamp(0, 1)
    thresholds = torch.full((50,), 200.0)
    thresholds[3] = 1e9  # one neuron never fires: its potential is the sum over every input spike
    compiled = first_spikes(times, weights, thresholds)
    monkeypatch.setenv("CREDITLAB_KERNELS", "torch")
    reference = first_spikes(times, weights, thresholds, time_chunk=None)
    assert torch.equal(compiled.times, reference.times)
    assert torch.allclose(compiled.potentials, reference.potentials, rtol=1e-6)


def _train(rule_name: str, backend: str, monkeypatch) -> tuple[torch.nn.Module, object, torch.Tensor]:
    monkeypatch.setenv("CREDITLAB_KERNELS", backend)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(96, 300, generator=g)
    x[torch.rand(96, 300, generator=g) < 0.3] = 1.0
    y = torch.randint(0, 4, (96,), generator=g)
    model = build_model("spiking-fc", (300,), 4, neurons_per_class=4, non_target_per_class=1, regulation="cr2",
                        threshold=20.0, weight_norm=True, seed=2)
    rule = build_rule(rule_name, model, t_gap=0.05, a_plus=0.05, a_minus=-0.1, threshold_lr=2.0)
    scores = []
    for start in range(0, 96, 32):
        scores.append(rule.step(x[start:start + 32], y[start:start + 32]).output)
        with torch.no_grad():
            model.weight -= model.weight.grad
    return model, rule, torch.cat(scores)


@pytest.mark.parametrize("rule_name", ["s2stdp", "sstdp"])
def test_training_kernel_matches_the_torch_rule(rule_name: str, monkeypatch) -> None:
    fast_model, fast_rule, fast_scores = _train(rule_name, "compiled", monkeypatch)
    ref_model, ref_rule, ref_scores = _train(rule_name, "torch", monkeypatch)
    assert torch.equal(fast_rule.updates, ref_rule.updates)
    assert torch.equal(fast_rule.target_updates, ref_rule.target_updates)
    assert torch.equal(fast_scores.argmax(1), ref_scores.argmax(1))
    assert torch.allclose(fast_model.weight, ref_model.weight, atol=1e-5)
    assert torch.allclose(fast_model.training_thresholds, ref_model.training_thresholds, atol=1e-4)


def test_extractor_fit_kernel_matches_the_torch_loop(monkeypatch) -> None:
    images = torch.rand(24, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    fitted = {}
    for backend in ("compiled", "torch"):
        monkeypatch.setenv("CREDITLAB_KERNELS", backend)
        extractor = STDPCSNN((1, 16, 16), paper_config("mnist", epochs=2, filters=8),
                             generator=torch.Generator().manual_seed(4))
        stats = extractor.fit(images, torch.Generator().manual_seed(5))
        fitted[backend] = (extractor, stats)
    (fast, fast_stats), (ref, ref_stats) = fitted["compiled"], fitted["torch"]
    assert fast_stats["updates"] == ref_stats["updates"]
    assert torch.allclose(fast.weight, ref.weight, atol=1e-5)
    assert torch.allclose(fast.thresholds, ref.thresholds, atol=1e-4)
    assert torch.equal(fast.encode(images), ref.encode(images))


def test_labels_outside_the_classes_are_refused() -> None:
    model = build_model("spiking-fc", (8,), 2)
    rule = build_rule("s2stdp", model)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\]"):
        rule.step(torch.rand(2, 8), torch.tensor([0, 2]))


def test_bad_times_and_shapes_are_refused_before_the_kernel() -> None:
    weights = torch.rand(3, 4)
    for bad in (torch.tensor([[0.1, float("nan"), 0.2, 1.0]]), torch.tensor([[0.1, 1.5, 0.2, 1.0]])):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            first_spikes(bad, weights, torch.ones(3))
    with pytest.raises(ValueError, match="4 inputs"):
        first_spikes(torch.rand(2, 5), weights, torch.ones(3))
