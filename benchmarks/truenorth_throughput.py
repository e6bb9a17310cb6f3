"""Sampled-network inference throughput of the ``truenorth`` model: images/s and peak memory.

Ensembles of 1 and 64 sampled copies, the 64 copies run as ONE batched computation (``bmm``), as a
loop over copies, and event-driven (one ``embedding_bag`` over the active axons of all copies: work
in proportion to the spikes), timed interleaved in one process (same inputs, same sampled networks;
ratios = each 64-copy mode's time over the batched one's). Peak memory of each mode is measured in
its own child process that builds only that mode's copies (on the CPU the process's peak RSS
during the call, Linux's VmHWM reset just before it, so it includes the resident model, torch and
inputs;
``torch.cuda.max_memory_allocated`` on CUDA). The matmul modes do not depend on training (dense
matmuls); the event-driven one does (fewer spikes, less work), so the inputs are real MNIST test
images when the data is found (``--data-dir`` / ``$CREDITLAB_DATA``; else uniform noise, said in the
record) and the hidden layer is an untrained network's (about half its neurons fire: more than a
trained one's), which makes the event-driven numbers conservative.

    python benchmarks/truenorth_throughput.py [--device cpu|cuda] [--network 5core|30core] [--rounds 5]
                                              [--batch-size 1000] [--threads 1] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any

import torch

from creditlab.data import load_dataset
from creditlab.errors import CreditlabError
from creditlab.models import build_model
from creditlab.results import append_record, make_record
from creditlab.seeding import seeded_generator

NETWORKS = {"5core": {}, "30core": {"stride": 4, "hidden_neurons": 224}}
#: mode -> (copies, batched, event-driven)
MODES = {"ensemble-1": (1, True, False), "ensemble-64": (64, True, False), "ensemble-64-loop": (64, False, False),
         "ensemble-64-events": (64, True, True)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--network", default="5core", choices=sorted(NETWORKS))
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per mode (interleaved)")
    parser.add_argument("--batch-size", type=int, default=1000, help="images per timed call")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", default=None, help="append a perf record to this JSONL store")
    parser.add_argument("--data-dir", default=None, help="MNIST location (default $CREDITLAB_DATA)")
    parser.add_argument("--memory-of", default=None, choices=sorted(MODES), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _images(args: argparse.Namespace) -> tuple[torch.Tensor, str]:
    """(batch, 784) pixel spike probabilities: MNIST test images if found, else uniform noise."""
    try:
        data = load_dataset("mnist", args.data_dir, normalization="unit")
        return data.test_x[:args.batch_size].flatten(1).to(args.device), "mnist-test"
    except (CreditlabError, OSError):
        generator = torch.Generator().manual_seed(1)
        return torch.rand(args.batch_size, 784, generator=generator).to(args.device), "uniform-noise"


def _setup(args: argparse.Namespace) -> tuple[Any, torch.Tensor, dict[str, Any]]:
    torch.set_num_threads(args.threads)
    model = build_model("truenorth", (1, 28, 28), 10, init_seed=0, **NETWORKS[args.network]).to(args.device)
    images, _ = _images(args)
    needed = {MODES[args.memory_of][0]} if args.memory_of else {copies for copies, *_ in MODES.values()}
    networks = {copies: model.sample(copies, seeded_generator(0, "bench", copies, device=args.device))
                for copies in needed}
    return model, images, networks


def _call(networks: dict[int, Any], images: torch.Tensor, mode: str) -> None:
    copies, batched, events = MODES[mode]
    networks[copies].class_scores(images, seeded_generator(0, "spikes", device=images.device), batched, events)
    if images.is_cuda:
        torch.cuda.synchronize(images.device)


def _reset_peak_rss() -> None:
    """Reset Linux's high-water mark of this process's RSS (``/proc/self/clear_refs``), where allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def _peak_rss() -> float:
    """Peak RSS in bytes since the last reset (VmHWM), else since the process started (ru_maxrss)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def _peak_memory(args: argparse.Namespace, mode: str) -> float:
    """Peak memory (MiB) of one mode, in a fresh child process."""
    command = [sys.executable, __file__, "--device", args.device, "--network", args.network,
               *(["--data-dir", args.data_dir] if args.data_dir else []),
               "--batch-size", str(args.batch_size), "--threads", str(args.threads), "--memory-of", mode]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"])


def main(argv: list[str] | None = None) -> int:
    """Time the modes interleaved, measure each one's peak memory, print, append a record with --out."""
    args = parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: --device cuda but no CUDA device is available", file=sys.stderr)
        return 2
    model, images, networks = _setup(args)  # with --memory-of: only that mode's copies
    if args.memory_of:
        if images.is_cuda:
            torch.cuda.reset_peak_memory_stats(images.device)
            _call(networks, images, args.memory_of)
            peak = torch.cuda.max_memory_allocated(images.device)
        else:
            _reset_peak_rss()  # the peak of the call, not of importing torch
            _call(networks, images, args.memory_of)
            peak = _peak_rss()
        print(json.dumps({"peak_mib": peak / 2**20}))
        return 0
    source = _images(args)[1]
    for mode in MODES:  # warm-up (caches the dense weights)
        _call(networks, images, mode)
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(args.rounds):
        for mode in MODES:
            start = time.perf_counter()
            _call(networks, images, mode)
            times[mode].append(time.perf_counter() - start)
    results = {}
    for mode, values in times.items():
        best = min(values)
        results[mode] = {"images_per_s": args.batch_size / best, "median_s": sorted(values)[len(values) // 2],
                         "best_s": best, "peak_memory_mib": round(_peak_memory(args, mode), 1),
                         "cores": MODES[mode][0] * model.cores}
    results["loop_over_batched_time_ratio"] = results["ensemble-64-loop"]["best_s"] / results["ensemble-64"]["best_s"]
    results["events_over_batched_time_ratio"] = (results["ensemble-64-events"]["best_s"]
                                                 / results["ensemble-64"]["best_s"])
    print(f"truenorth {args.network} sampled-network inference on {args.device} ({args.threads} threads, "
          f"batch {args.batch_size}, best of {args.rounds} interleaved rounds)")
    for mode in MODES:
        r = results[mode]
        print(f"  {mode:<17} {r['images_per_s']:>10.0f} images/s   peak {r['peak_memory_mib']:>8.1f} MiB")
    print(f"  64 copies: loop / batched time = {results['loop_over_batched_time_ratio']:.2f}, "
          f"event-driven / batched time = {results['events_over_batched_time_ratio']:.2f} (inputs: {source})")
    if args.out:
        config = {"benchmark": "truenorth_throughput", "network": args.network, "model_options": NETWORKS[args.network],
                  "rounds": args.rounds, "batch_size": args.batch_size, "threads": args.threads, "device": args.device,
                  "inputs": source}
        append_record(args.out, make_record("perf", f"truenorth-throughput/{args.network}", config, results,
                                            device=args.device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
