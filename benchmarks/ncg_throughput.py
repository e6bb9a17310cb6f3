"""Throughput of the NCG classifier (S2-STDP+NCG, 4608 features -> 50 neurons, M = 5, L = 1) and of
STDP-CSNN feature extraction, with peak memory, optionally side by side with the authors' code.

Like for like (the default): one thread for ours as for SpikeNN (single-threaded by design), real
Fashion-MNIST STDP-CSNN features (the first ``--samples`` training images' features, from the
feature cache ``creditlab reproduce ncg-fmnist`` fills, extracted here if missing) and the paper's
Fashion-MNIST configuration (the authors' ``config/STDP-CSNN/F-MNIST/s2stdp+ncg.json``, the same one
``experiments.ncg.CONFIGS`` holds), so both implementations see the same input sparsity and thresholds.
Other settings, labelled in the record: ``--inputs synthetic`` (the SpikeNN anchor, anchor_perf.md
§3: TTFS spikes U[0, 1) with 30% silent, random labels), ``--config mnist``, ``--threads 2``. The
same samples go to both implementations. Rounds are interleaved: each round
trains one epoch over the samples with ours, then with SpikeNN's ``Readout.fit``, then runs both
inferences. SpikeNN is never part of this repository: pass a checkout of ggoupy/SpikeNN with
``--spikenn`` and run this with a Python that has numba (e.g. a separate venv whose ``PYTHONPATH``
also reaches torch and ``src/``). Our times start from dense spike-time tensors (the sort included);
SpikeNN's start from its ``SpikingDataset``, whose construction sorts every sample beforehand (timed
separately, as ``spikenn_dataset_s``). On a CPU with numba installed ours run the compiled kernels
(``creditlab.spiking.kernels``; ``CREDITLAB_KERNELS=torch`` times the torch code instead). Extractor
rates: training patches/s (one patch per image and epoch) and encoded images/s.

    python benchmarks/ncg_throughput.py [--threads 1] [--samples 2000] [--rounds 5] [--spikenn DIR]
                                        [--inputs fashion-mnist|synthetic] [--config fashion-mnist|mnist]
                                        [--device cpu|cuda] [--out results/ncg/perf.jsonl]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import resource
import statistics
import sys
import time
from typing import Any

import torch

from creditlab.experiments.ncg import CONFIGS
from creditlab.models import build_model
from creditlab.results import append_record, make_record
from creditlab.rules import build_rule
from creditlab.spiking import kernels
from creditlab.spiking.extractor import STDPCSNN, paper_config

ANCHOR = {"train_samples_per_s": 549, "inference_samples_per_s": 1994,
          "source": "anchor_perf.md §3 (SpikeNN @ b3d1865, one core, another session's run of the same VM type)"}


def spikenn_config(dataset: str) -> dict[str, Any]:
    """The authors' S2-STDP+NCG configuration for ``dataset`` in SpikeNN's format, one epoch, built from
    ``experiments.ncg.CONFIGS`` (which transcribes config/STDP-CSNN/<DS>/s2stdp+ncg.json)."""
    setting = CONFIGS[dataset]["s2stdp+ncg"]
    model, rule = setting["model"], setting["rule_options"]
    return {
        "network": [{"n_neurons": 10 * model["neurons_per_class"], "firing_threshold": model["threshold"],
                     "w_init_normal": True, "w_init_mean": model["w_init_mean"], "w_init_std": 0.01,
                     "w_norm": model["weight_norm"], "w_min": 0, "w_max": 1}],
        "optimizer": {"method": "s2stdp", "stdp": "additive", "class_inhib": True, "t_gap": rule["t_gap"],
                      "ap": rule["a_plus"], "am": rule["a_minus"], "annealing": rule["annealing"]},
        "regularizer": {"thr_lr": rule["threshold_lr"], "thr_anneal": rule["threshold_annealing"]},
        "trainer": {"epochs": 1, "nt_neurons": model["non_target_per_class"], "early_stopping": 0},
    }


def real_features(samples: int, cache_root: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``samples`` Fashion-MNIST training images' STDP-CSNN features (the paper's extractor,
    100 epochs on all images) and labels, through ``experiments.ncg.features`` and its cache."""
    from pathlib import Path

    from creditlab.experiments import ExperimentContext
    from creditlab.experiments.ncg import FULL, features

    ctx = ExperimentContext(out_dir=Path(cache_root))
    data, _info = features(ctx, "fashion-mnist", FULL, with_cost=False)
    return data.train_x[:samples].flatten(1).contiguous(), data.train_y[:samples].clone()


def synthetic_inputs(samples: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The SpikeNN anchor's inputs: TTFS spike times U[0, 1) with 30% silent (1.0), random labels."""
    x = torch.rand(samples, 4608, generator=g)
    x[torch.rand(samples, 4608, generator=g) < 0.3] = 1.0
    return x, torch.randint(0, 10, (samples,), generator=g)


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _spikenn(path: str, x: torch.Tensor, y: torch.Tensor, config: dict[str, Any]) -> tuple[Any, Any, float]:
    """SpikeNN's Readout for ``config`` and its dataset of ``x`` (and the build time)."""
    sys.path[:0] = [path, f"{path}/app"]
    from readout import Readout  # noqa: PLC0415 - the authors' code, outside this repository
    from spikenn.dataset import SpikingDataset  # noqa: PLC0415

    start = time.perf_counter()
    dataset = SpikingDataset.from_numpy(x.numpy(), y.numpy(), max_time=1.0)
    built = time.perf_counter() - start
    with contextlib.redirect_stdout(io.StringIO()):
        readout = Readout.init_from_dict(config, x.shape[1], 10, None, 1.0)
    return readout, dataset, built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="ours (SpikeNN runs on 1 by design)")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--spikenn", default=None, help="a checkout of ggoupy/SpikeNN to time side by side")
    parser.add_argument("--inputs", choices=("fashion-mnist", "synthetic"), default="fashion-mnist")
    parser.add_argument("--config", choices=("fashion-mnist", "mnist"), default="fashion-mnist",
                        help="whose tuned S2-STDP+NCG configuration (the authors')")
    parser.add_argument("--feature-cache", default="results/ncg", help="where ncg-fmnist caches its features")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="results/ncg/perf.jsonl")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    if args.inputs == "synthetic":
        x, y = synthetic_inputs(args.samples, g)
    else:
        x, y = real_features(args.samples, args.feature_cache)
    xd, yd = x.to(device), y.to(device)
    setting = CONFIGS[args.config]["s2stdp+ncg"]
    model = build_model("spiking-fc", (x.shape[1],), 10, **setting["model"]).to(device)
    rule = build_rule(setting["rule"], model, **setting["rule_options"]).to(device)
    their_config = spikenn_config(args.config)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def train_ours() -> None:
        for i in range(0, args.samples, args.batch_size):
            rule.step(xd[i:i + args.batch_size], yd[i:i + args.batch_size])
            with torch.no_grad():
                model.weight -= model.weight.grad  # the rules' fixed optimizer: SGD, lr 1
        sync()

    def infer_ours() -> None:
        with torch.no_grad():
            model(xd)
        sync()

    theirs = None
    if args.spikenn:
        readout, dataset, built = _spikenn(args.spikenn, x[:200], y[:200], their_config)
        with contextlib.redirect_stdout(io.StringIO()):
            readout.fit(dataset)  # warm-up: numba compiles
            readout.predict(dataset)
        readout, dataset, built = _spikenn(args.spikenn, x, y, their_config)
        theirs = (readout, dataset, built)
    train_ours()  # warm-up
    infer_ours()
    timings: dict[str, list[float]] = {"train": [], "inference": [], "spikenn_train": [], "spikenn_inference": []}
    for r in range(args.rounds):  # interleaved rounds
        print(f"round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
        for name, run in (("train", train_ours), ("inference", infer_ours)):
            start = time.perf_counter()
            run()
            timings[name].append(args.samples / (time.perf_counter() - start))
        if theirs is not None:
            readout, dataset, _ = theirs
            with contextlib.redirect_stdout(io.StringIO()):
                start = time.perf_counter()
                readout.fit(dataset)
                timings["spikenn_train"].append(args.samples / (time.perf_counter() - start))
                start = time.perf_counter()
                readout.predict(dataset)
                timings["spikenn_inference"].append(args.samples / (time.perf_counter() - start))
    images = torch.rand(512, 1, 28, 28, generator=g).to(device)
    extractor = STDPCSNN((1, 28, 28), paper_config("fashion-mnist", epochs=10)).to(device)
    start = time.perf_counter()
    extractor.fit(images, torch.Generator().manual_seed(0))
    fit_rate = 10 * len(images) / (time.perf_counter() - start)  # patches (one per image and epoch)
    start = time.perf_counter()
    extractor.encode(images)
    sync()
    encode_rate = len(images) / (time.perf_counter() - start)
    final: dict[str, Any] = {
        "train_samples_per_s": statistics.median(timings["train"]),
        "inference_samples_per_s": statistics.median(timings["inference"]),
        "rounds": timings, "extractor_fit_patches_per_s": fit_rate, "extractor_encode_samples_per_s": encode_rate,
        "peak_memory_mb": _peak_mb(device), "anchor": ANCHOR,
        "ratio_train_to_anchor": statistics.median(timings["train"]) / ANCHOR["train_samples_per_s"],
        "ratio_inference_to_anchor": statistics.median(timings["inference"]) / ANCHOR["inference_samples_per_s"],
        "load_average_1min": _load(), "input_spike_fraction": float((x < 1.0).float().mean()),
    }
    if theirs is not None:
        final.update(spikenn_train_samples_per_s=statistics.median(timings["spikenn_train"]),
                     spikenn_inference_samples_per_s=statistics.median(timings["spikenn_inference"]),
                     spikenn_dataset_s=theirs[2], spikenn_threads=1,
                     ratio_train_to_spikenn=statistics.median(
                         [a / b for a, b in zip(timings["train"], timings["spikenn_train"], strict=True)]),
                     ratio_inference_to_spikenn=statistics.median(
                         [a / b for a, b in zip(timings["inference"], timings["spikenn_inference"], strict=True)]))
    config = {k: v for k, v in vars(args).items() if k != "spikenn"}
    config["spikenn"] = "ggoupy/SpikeNN (numba, 1 core), side by side" if args.spikenn else None
    config["kernels"] = "compiled (numba)" if kernels.enabled() and device.type == "cpu" else "torch"
    config["spikenn_config"] = their_config if args.spikenn else None
    config["like_for_like"] = (args.threads == 1 and args.inputs == "fashion-mnist" and args.config == "fashion-mnist"
                               and args.spikenn is not None)
    append_record(args.out, make_record("perf", "ncg-throughput/s2stdp+ncg", config, final, device=device))
    for key, value in final.items():
        if isinstance(value, float):
            print(f"{key:<36} {value:10.2f}")


def _load() -> float | None:
    try:
        with open("/proc/loadavg") as handle:
            return float(handle.read().split()[0])
    except OSError:
        return None


if __name__ == "__main__":
    main()
