"""Count Sketch speed, peak memory and top-k recall, side by side with the reference CSVec.

    .venv/bin/python benchmarks/sketch_speed.py --csvec-path /tmp/csh-ref \\
        --out results/sketching/sketch_speed.jsonl

Defaults are the research note's setting (§1.7): d = 10^7, r = 5, c = 5·10^5, k = 5·10^4, test vector
``N(0,1)·exp(2·N(0,1))``. Times are medians of ``--repeats`` runs, the implementations interleaved in
one process (so machine load hits both alike). Peak memory is measured in a fresh subprocess per
implementation: peak RSS (CPU) or peak CUDA allocation above what the test vector already holds, for
building the sketch object, sketching and unsketching the top-k.

CSVec (nikitaivkin/csh, MIT) is not part of creditlab: pass ``--csvec-path`` pointing at a directory
that contains its ``csvec`` package (e.g. a checkout of the repository); without it only creditlab's
sketch is measured.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from creditlab.distributed.countsketch import CountSketch
from creditlab.results import append_record, make_record


def test_vector(d: int, seed: int, device: str) -> torch.Tensor:
    """``N(0,1)·exp(2·N(0,1))`` (heavy-tailed), built in chunks so no large temporaries inflate peak RSS."""
    generator = torch.Generator().manual_seed(seed)
    vector = torch.empty(d)
    step = 1 << 20
    for start in range(0, d, step):
        n = min(step, d - start)
        scale = torch.exp(2 * torch.randn(n, generator=generator))
        vector[start:start + n] = torch.randn(n, generator=generator) * scale
    return vector.to(device)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn: Callable[[], Any], device: str) -> tuple[float, Any]:
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - start, out


class Ours:
    """creditlab's CountSketch behind the benchmark's interface."""

    def __init__(self, d: int, rows: int, cols: int, device: str, precompute: bool = False) -> None:
        self.sketch = CountSketch(d, rows, cols, seed=42, device=device, precompute_hashes=precompute)

    def sketch_vector(self, vector: torch.Tensor) -> None:
        self.sketch.zero_().accumulate_vector(vector)

    def unsketch(self, k: int) -> torch.Tensor:
        return self.sketch.unsketch(k)


class Reference:
    """CSVec (nikitaivkin/csh) behind the same interface."""

    def __init__(self, d: int, rows: int, cols: int, device: str) -> None:
        from csvec import CSVec

        self.sketch = CSVec(d, cols, rows, device=device)

    def sketch_vector(self, vector: torch.Tensor) -> None:
        self.sketch.zero()
        self.sketch.accumulateVec(vector)

    def unsketch(self, k: int) -> torch.Tensor:
        return self.sketch.unSketch(k=k)


def build(name: str, args: argparse.Namespace) -> Any:
    if name == "creditlab":
        return Ours(args.d, args.rows, args.cols, args.device)
    if name == "creditlab-precomputed":
        return Ours(args.d, args.rows, args.cols, args.device, precompute=True)
    if name == "csvec":
        return Reference(args.d, args.rows, args.cols, args.device)
    raise ValueError(name)


def quality(unsketched: torch.Tensor, vector: torch.Tensor, k: int) -> dict[str, float]:
    """recall@k of the recovered support and relative ℓ2 error versus the true top-k of ``vector``."""
    true_indices = vector.abs().topk(k).indices
    true_topk = torch.zeros_like(vector)
    true_topk[true_indices] = vector[true_indices]
    found = unsketched.nonzero().view(-1)
    recall = torch.isin(found, true_indices).sum().item() / k
    error = ((unsketched - true_topk).norm() / true_topk.norm()).item()
    return {"recall_at_k": round(recall, 4), "relative_error": round(error, 4)}


def _high_water_kib() -> int:
    """Peak resident memory of this process (VmHWM; unlike ru_maxrss it is not inherited on fork)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # not Linux: best effort


def measure_memory(name: str, args: argparse.Namespace) -> dict[str, float]:
    """Run in a fresh process: peak memory above the test vector for build + sketch + unsketch."""
    vector = test_vector(args.d, args.seed, args.device)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    before_rss = _high_water_kib()
    impl = build(name, args)
    impl.sketch_vector(vector)
    impl.unsketch(args.k)
    _sync(args.device)
    if args.device.startswith("cuda"):
        return {"peak_mib": (torch.cuda.max_memory_allocated() - before) / 2**20}
    return {"peak_mib": (_high_water_kib() - before_rss) / 1024}


def measure_time(names: list[str], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Interleaved timings in this process; quality from the last repetition."""
    vector = test_vector(args.d, args.seed, args.device)
    results: dict[str, dict[str, Any]] = {}
    impls = {}
    for name in names:
        init_s, impls[name] = _timed(lambda name=name: build(name, args), args.device)
        results[name] = {"init_s": init_s, "sketch_s": [], "unsketch_s": []}
    topk_s = []
    for _ in range(args.repeats):
        for name in names:
            t, _ = _timed(lambda name=name: impls[name].sketch_vector(vector), args.device)
            results[name]["sketch_s"].append(t)
            t, out = _timed(lambda name=name: impls[name].unsketch(args.k), args.device)
            results[name]["unsketch_s"].append(t)
            results[name]["quality"] = quality(out, vector, args.k)
        t, _ = _timed(lambda: vector.abs().topk(args.k), args.device)
        topk_s.append(t)
    for name in names:
        entry = results[name]
        entry["sketch_s"] = statistics.median(entry["sketch_s"])
        entry["unsketch_s"] = statistics.median(entry["unsketch_s"])
        entry.update(entry.pop("quality"))
    results["torch.topk(|v|)"] = {"topk_s": statistics.median(topk_s)}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--d", type=int, default=10_000_000)
    parser.add_argument("--rows", type=int, default=5)
    parser.add_argument("--cols", type=int, default=500_000)
    parser.add_argument("--k", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads [default: torch's]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--csvec-path", default=None, help="directory holding the reference csvec package")
    parser.add_argument("--precomputed", action="store_true",
                        help="also time creditlab with precomputed hashes")
    parser.add_argument("--out", default=None, help="append a results record to this JSONL file")
    parser.add_argument("--measure-memory", default=None, help=argparse.SUPPRESS)  # subprocess mode
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.csvec_path:
        sys.path.insert(0, args.csvec_path)
    if args.measure_memory:
        print(json.dumps(measure_memory(args.measure_memory, args)))
        return

    names = ["creditlab"] + (["creditlab-precomputed"] if args.precomputed else [])
    if args.csvec_path:
        names.append("csvec")
    started = time.perf_counter()
    results = measure_time(names, args)
    for name in names:
        command = [sys.executable, __file__, "--measure-memory", name, "--d", str(args.d),
                   "--rows", str(args.rows), "--cols", str(args.cols), "--k", str(args.k),
                   "--device", args.device, "--seed", str(args.seed)]
        if args.threads:
            command += ["--threads", str(args.threads)]
        if args.csvec_path:
            command += ["--csvec-path", args.csvec_path]
        out = subprocess.run(command, capture_output=True, text=True, check=True)
        results[name].update(json.loads(out.stdout.strip().splitlines()[-1]))
    if "csvec" in results:
        for key in ("sketch_s", "unsketch_s", "peak_mib"):
            results["creditlab"][f"{key}_vs_csvec"] = results["creditlab"][key] / results["csvec"][key]

    print(f"d={args.d:,} r={args.rows} c={args.cols:,} k={args.k:,} device={args.device} "
          f"threads={torch.get_num_threads()}")
    print(f"{'implementation':24s} {'init s':>8s} {'sketch s':>9s} {'unsketch s':>11s} {'peak MiB':>9s} "
          f"{'recall@k':>9s} {'rel err':>8s}")
    for name in names:
        r = results[name]
        print(f"{name:24s} {r['init_s']:8.3f} {r['sketch_s']:9.3f} {r['unsketch_s']:11.3f} "
              f"{r['peak_mib']:9.0f} {r['recall_at_k']:9.3f} {r['relative_error']:8.3f}")
    print(f"{'torch.topk(|v|)':24s} {results['torch.topk(|v|)']['topk_s']:.3f} s")
    if args.out:
        config = {key: getattr(args, key) for key in ("d", "rows", "cols", "k", "repeats", "device", "seed")}
        config["threads"] = torch.get_num_threads()
        append_record(args.out, make_record("perf", "sketching-speed", config, results,
                                            wall_time_s=time.perf_counter() - started, device=args.device))


if __name__ == "__main__":
    main()
