"""Step time of FA, uSF and DFA against backprop on the same model, interleaved in one process.

Models (batch 128): LeNet on real MNIST (first 1024 training images cycled in 8 resident batches;
random 1x28x28 if MNIST is absent) and ResNet-20 on random 3x32x32 inputs. A step is what the
trainer does: the rule's update into ``.grad`` then an Adam(1e-3) step. All rules start from copies
of the same initial model and run interleaved (one step each per round, order rotated) after
untimed warm-up steps; the table gives median / p10 / p90 ms and median ratios to BP from the same
rounds, beside BioTorch's ratios (anchor_perf.md §2: CPU 2 threads LeNet FA 1.05, DFA 1.21, uSF 1.04;
H100 LeNet FA 1.29, DFA 1.80, uSF 1.43; ResNet-20 FA 1.34, DFA 1.89, uSF 1.44).
DFA cannot run ResNet-20 here (skip connections; see rules/dfa.py), so that cell says n/a.

    python benchmarks/fa_step_time.py [--device cpu|cuda] [--steps 60] [--models lenet,resnet20]
                                      [--rules bp,fa,usf,dfa] [--threads N] [--out FILE]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from collections.abc import Callable

import torch

from creditlab.errors import IncompatibleModelError
from creditlab.models import build_model
from creditlab.results import append_record, make_record
from creditlab.rules import build_rule

BIOTORCH_RATIO = {  # anchor_perf.md §2, median ratio to BioTorch's own BP, batch 128
    ("lenet", "cpu"): {"fa": 1.05, "dfa": 1.21, "usf": 1.04},
    ("lenet", "cuda"): {"fa": 1.29, "dfa": 1.80, "usf": 1.43},
    ("resnet20", "cuda"): {"fa": 1.34, "dfa": 1.89, "usf": 1.44},
}
INPUT_SHAPES = {"lenet": (1, 28, 28), "resnet20": (3, 32, 32)}
Step = Callable[[torch.Tensor, torch.Tensor], None]


def make_steps(model_name: str, rules: list[str], device: str, seed: int = 0) -> dict[str, Step | str]:
    """One training-step closure per rule (or the reason it cannot run), each on its own model copy."""
    torch.manual_seed(seed)
    base = build_model(model_name, INPUT_SHAPES[model_name], 10).to(device)
    steps: dict[str, Step | str] = {}
    for name in rules:
        model = copy.deepcopy(base)
        try:
            rule = build_rule(name, model).to(device)
        except IncompatibleModelError as error:
            steps[name] = f"n/a: {error}"
            continue
        optimizer = torch.optim.Adam(rule.model.parameters(), lr=1e-3)

        def step(x: torch.Tensor, y: torch.Tensor, rule=rule, optimizer=optimizer) -> None:  # noqa: ANN001
            rule.step(x, y)
            optimizer.step()

        steps[name] = step
    return steps


def sync(device: str) -> None:
    """Wait for queued GPU work (no-op on CPU)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_interleaved(steps: dict[str, Step], batches: list[tuple[torch.Tensor, torch.Tensor]], rounds: int,
                     warmup: int, device: str) -> dict[str, list[float]]:
    """ms per step of every rule, measured in interleaved rounds (rotating the order)."""
    names = list(steps)
    for i in range(warmup):
        for name in names:
            steps[name](*batches[i % len(batches)])
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        x, y = batches[r % len(batches)]
        for name in order:
            sync(device)
            start = time.perf_counter()
            steps[name](x, y)
            sync(device)
            times[name].append((time.perf_counter() - start) * 1e3)
    return times


def make_batches(model_name: str, device: str, data_dir: str | None) -> tuple[list, str]:
    """8 resident batches of 128: real MNIST for LeNet when available, else random inputs."""
    if model_name == "lenet":
        try:
            from creditlab.data import load_dataset

            data = load_dataset("mnist", data_dir, device, 0.0, 0, "standard", allow_download=False)
            return [(data.train_x[i * 128:(i + 1) * 128], data.train_y[i * 128:(i + 1) * 128])
                    for i in range(8)], "MNIST"
        except Exception as error:  # noqa: BLE001 - any data problem: fall back to random inputs
            print(f"(MNIST unavailable: {error}; using random inputs)")
    gen = torch.Generator().manual_seed(0)
    shape = INPUT_SHAPES[model_name]
    return [(torch.randn(128, *shape, generator=gen).to(device),
             torch.randint(0, 10, (128,), generator=gen).to(device)) for _ in range(8)], "random"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:  # noqa: D103
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=60, help="timed rounds (each runs every rule once)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--models", default="lenet,resnet20")
    parser.add_argument("--rules", default="bp,fa,usf,dfa")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--cudnn-benchmark", action="store_true")
    parser.add_argument("--data-dir", default=os.environ.get("CREDITLAB_DATA"))
    parser.add_argument("--out", default=None, help="append a perf record per model to this JSON-lines file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    rules = args.rules.split(",")
    if "bp" not in rules:
        rules.insert(0, "bp")
    device_type = torch.device(args.device).type
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, torch {torch.__version__}, "
          f"{args.steps} interleaved rounds after {args.warmup} warm-up rounds")
    for model_name in args.models.split(","):
        batches, source = make_batches(model_name, args.device, args.data_dir)
        built = make_steps(model_name, rules, args.device)
        runnable = {k: v for k, v in built.items() if callable(v)}
        times = time_interleaved(runnable, batches, args.steps, args.warmup, args.device)
        bp_median = statistics.median(times["bp"])
        anchor = BIOTORCH_RATIO.get((model_name, device_type), {})
        print(f"\n{model_name} ({source} inputs), batch 128")
        print(f"{'rule':<6} {'median ms':>10} {'p10':>8} {'p90':>8} {'/ BP':>7} {'BioTorch / BP':>14}")
        final = {}
        for name, step in built.items():
            if not callable(step):
                print(f"{name:<6} {step}")
                final[name] = {"unavailable": step}
                continue
            t = times[name]
            median = statistics.median(t)
            ref = anchor.get(name)
            print(f"{name:<6} {median:>10.2f} {_percentile(t, 0.1):>8.2f} {_percentile(t, 0.9):>8.2f} "
                  f"{median / bp_median:>7.3f} {ref if ref else '-':>14}")
            final[name] = {"median_ms": median, "p10_ms": _percentile(t, 0.1), "p90_ms": _percentile(t, 0.9),
                           "ratio_to_bp": median / bp_median, "biotorch_ratio": ref}
        if args.out:
            config = {"model": model_name, "inputs": source, "batch_size": 128, "rounds": args.steps,
                      "warmup": args.warmup, "optimizer": "adam", "lr": 1e-3, "rules": rules,
                      "threads": torch.get_num_threads(), "cudnn_benchmark": args.cudnn_benchmark}
            append_record(args.out, make_record("perf", f"fa-step-time/{model_name}", config, final,
                                                device=args.device))


if __name__ == "__main__":
    main()
