"""Step-time ratios to BP of the public reference implementations ("anchors"), each timed interleaved
with its own BP (``shared/research/anchor_perf.md`` §1, §2; batch 128)."""

from __future__ import annotations

from creditlab.papers.value import PaperValue

SOURCE = "anchor_perf.md (public reference code timed interleaved with its own BP, batch 128)"

#: (rule, model, device type) -> the anchor's step-time ratio to its own BP
STEP_TIME_RATIO: dict[tuple[str, str, str], PaperValue] = {
    (rule, model, device): PaperValue(ratio, None, "verified", SOURCE, "", setting)
    for (rule, model, device, ratio, setting) in (
        ("fa", "lenet", "cpu", 1.05, "BioTorch LeNet 32x32, Adam, 2 CPU threads, N=50"),
        ("dfa", "lenet", "cpu", 1.21, "BioTorch LeNet 32x32, Adam, 2 CPU threads, N=50"),
        ("usf", "lenet", "cpu", 1.04, "BioTorch LeNet 32x32, Adam, 2 CPU threads, N=50"),
        ("fa", "lenet", "cuda", 1.29, "BioTorch LeNet 32x32, Adam, H100, N=100"),
        ("dfa", "lenet", "cuda", 1.80, "BioTorch LeNet 32x32, Adam, H100, N=100"),
        ("usf", "lenet", "cuda", 1.43, "BioTorch LeNet 32x32, Adam, H100, N=100"),
        ("fa", "resnet20", "cuda", 1.34, "BioTorch ResNet-20, Adam, H100, N=100"),
        ("dfa", "resnet20", "cuda", 1.89, "BioTorch ResNet-20, Adam, H100, N=100"),
        ("usf", "resnet20", "cuda", 1.44, "BioTorch ResNet-20, Adam, H100, N=100"),
        ("gevb", "vnn-fc", "cpu", 0.95, "VectorizedNets FC-Vec vs the authors' vec-BP, 2 CPU threads, N=25"),
        ("gevb", "vnn-fc", "cuda", 0.97, "VectorizedNets FC-Vec vs the authors' vec-BP, H100, N=100"),
        ("gevb", "vnn-conv", "cpu", 0.95, "VectorizedNets Conv-Vec vs the authors vec-BP, 2 threads, N=25"),
        ("gevb", "vnn-conv", "cuda", 0.88, "VectorizedNets Conv-Vec vs the authors' vec-BP, H100, N=100"),
    )
}

__all__ = ["SOURCE", "STEP_TIME_RATIO"]
