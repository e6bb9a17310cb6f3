"""Throughput of the NCG classifier (S2-STDP+NCG, 4608 features -> 50 neurons) and of STDP-CSNN
feature extraction, with peak memory; the inputs match the SpikeNN anchor (anchor_perf.md §3):
synthetic TTFS spikes, U[0, 1) with 30% silent, random labels.

    python benchmarks/ncg_throughput.py [--threads 2] [--samples 2000] [--device cpu|cuda] [--out FILE]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch

from creditlab.models import build_model
from creditlab.results import append_record, make_record
from creditlab.rules import build_rule
from creditlab.spiking.extractor import STDPCSNN, paper_config

ANCHOR = {"train_samples_per_s": 549, "inference_samples_per_s": 1994}  # SpikeNN, one core


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="results/ncg/perf.jsonl")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.samples, 4608, generator=g)
    x[torch.rand(args.samples, 4608, generator=g) < 0.3] = 1.0
    y = torch.randint(0, 10, (args.samples,), generator=g)
    x, y = x.to(device), y.to(device)
    model = build_model("spiking-fc", (4608,), 10, neurons_per_class=5, non_target_per_class=1, regulation="cr2",
                        threshold=200, weight_norm=True).to(device)
    rule = build_rule("s2stdp", model, t_gap=0.03, a_plus=0.05, a_minus=-0.1, threshold_lr=10).to(device)
    rule.step(x[:32], y[:32])  # warm-up
    train, infer = [], []
    for _ in range(args.rounds):  # interleaved rounds
        start = time.perf_counter()
        for i in range(0, args.samples, 256):
            rule.step(x[i:i + 256], y[i:i + 256])
            with torch.no_grad():
                model.weight -= model.weight.grad  # SGD lr 1
        train.append(args.samples / (time.perf_counter() - start))
        start = time.perf_counter()
        with torch.no_grad():
            model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        infer.append(args.samples / (time.perf_counter() - start))
    images = torch.rand(64, 1, 28, 28, generator=g).to(device)
    extractor = STDPCSNN((1, 28, 28), paper_config("fashion-mnist", epochs=1)).to(device)
    start = time.perf_counter()
    extractor.fit(images, torch.Generator().manual_seed(0))
    fit_rate = len(images) / (time.perf_counter() - start)
    start = time.perf_counter()
    extractor.encode(images)
    encode_rate = len(images) / (time.perf_counter() - start)
    final = {"train_samples_per_s": statistics.median(train), "inference_samples_per_s": statistics.median(infer),
             "train_rounds": train, "inference_rounds": infer,
             "extractor_fit_samples_per_s": fit_rate, "extractor_encode_samples_per_s": encode_rate,
             "peak_memory_mb": _peak_mb(device), "anchor": ANCHOR,
             "ratio_train_to_anchor": statistics.median(train) / ANCHOR["train_samples_per_s"],
             "ratio_inference_to_anchor": statistics.median(infer) / ANCHOR["inference_samples_per_s"]}
    append_record(args.out, make_record("perf", "ncg-throughput/s2stdp+ncg", vars(args), final, device=device))
    for key in ("train_samples_per_s", "inference_samples_per_s", "extractor_fit_samples_per_s",
                "extractor_encode_samples_per_s", "peak_memory_mb", "ratio_train_to_anchor",
                "ratio_inference_to_anchor"):
        print(f"{key:<34} {final[key]:10.2f}")


if __name__ == "__main__":
    main()
