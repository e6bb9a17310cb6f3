"""Model ``stdp-csnn``: the extractor is trained first (unsupervised), features are cached, the rules
train its classifier through the trainer; bad options are refused."""

from __future__ import annotations

import pytest
import torch

from creditlab.data import Dataset
from creditlab.data.specs import DATASETS
from creditlab.models import build_model
from creditlab.rules import build_rule
from creditlab.train import TrainConfig, fit


def tiny_images(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 1, 12, 12, generator=torch.Generator().manual_seed(seed))


def test_extractor_trained_first_then_features_cached_and_classifier_trained(monkeypatch) -> None:
    model = build_model("stdp-csnn", (1, 12, 12), 2, neurons_per_class=3, regulation="cr2", threshold=20.0,
                        extractor_train=8)
    assert model.classifier.num_inputs == 128 * 2 * 2  # 12 - 5 + 1 = 8, pooled by 4
    rule = build_rule("s2stdp", model, t_gap=0.05, threshold_lr=1.0)
    spec = DATASETS.get("fashion-mnist")
    train_x, test_x = tiny_images(16, 1), tiny_images(6, 2)
    data = Dataset(spec, train_x, torch.arange(16) % 2, train_x[:0], torch.zeros(0, dtype=torch.long),
                   test_x, torch.arange(6) % 2)
    calls = []
    real_fit = model.extractor.fit
    monkeypatch.setattr(model.extractor, "fit", lambda images, g: calls.append(len(images)) or real_fit(images, g))
    before = model.classifier.weight.detach().clone()
    fit(rule, data, TrainConfig(epochs=1, batch_size=8, optimizer="sgd", lr=1.0, progress=False))
    assert calls == [8] and bool(model.extractor.trained)  # fitted once, on the first extractor_train images
    assert not torch.equal(model.classifier.weight.detach(), before)
    monkeypatch.setattr(model.extractor, "encode", lambda images: pytest.fail("features re-extracted"))
    features = model.encode(torch.cat([test_x, train_x]))  # every split was cached by prepare()
    assert features.shape == (22, 512) and bool(((features >= 0) & (features <= 1)).all())


def test_refusals() -> None:
    with pytest.raises(ValueError, match=r"images \(C, H, W\)"):
        build_model("stdp-csnn", (784,), 10)
    with pytest.raises(ValueError, match="expects 3-channel"):
        build_model("stdp-csnn", (1, 12, 12), 10, features_of="cifar10")
    with pytest.raises(ValueError, match="extractor_train must be >= 1"):
        build_model("stdp-csnn", (1, 12, 12), 10, extractor_train=0)
    with pytest.raises(ValueError, match="no STDP-CSNN configuration"):
        build_model("stdp-csnn", (1, 12, 12), 10, features_of="svhn")
