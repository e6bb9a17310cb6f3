"""Step time of every registered rule as a ratio to backprop on the same model (``creditlab.bench.perf``).

Runs the perf suite's timing groups (``src/creditlab/configs/bench/perf.yaml``: each rule on its natural model,
LeNet, Conv-Vec; ResNet-20 on CUDA) or the models given with ``--models``, prints a table, and with
``--out`` appends one ``perf`` record per rule to a results store (the same records as
``creditlab bench perf``, but measured again even when the store already has them).

    python benchmarks/step_time.py [--device cpu|cuda] [--models mlp,lenet] [--rules all|bp,fa,...]
                                   [--rounds 50] [--warmup 5] [--batch-size 128] [--threads N] [--out FILE]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from creditlab.bench.perf import rules_for_model
from creditlab.bench.runner import Unit, expand_suite, load_suite, run_perf_unit
from creditlab.results import append_record


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--suite", default="perf", help="suite whose perf groups to run (without --models)")
    parser.add_argument("--models", default=None, help="comma-separated models (instead of the suite)")
    parser.add_argument("--rules", default="all", help="'all' or comma-separated rules (with --models)")
    parser.add_argument("--rounds", type=int, default=50, help="timed rounds (with --models)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed warm-up steps per rule (--models)")
    parser.add_argument("--batch-size", type=int, default=128, help="batch size (with --models)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads [default: torch's]")
    parser.add_argument("--data-dir", default=None, help="dataset directory")
    parser.add_argument("--out", default=None, help="append perf records to this JSONL store")
    return parser.parse_args(argv)


def units_from_args(args: argparse.Namespace) -> list[Unit]:
    """The timing groups to run: the suite's, or one per ``--models`` entry."""
    if args.models is None:
        return [u for u in expand_suite(load_suite(args.suite), args.device) if u.kind == "perf"]
    units = []
    for model in args.models.split(","):
        rules = rules_for_model(model, None if args.rules == "all" else args.rules.split(","))
        config = {"model": model, "rules": rules, "batch_size": args.batch_size, "rounds": args.rounds,
                  "warmup": args.warmup, "seed": 0, "device": args.device, "threads": torch.get_num_threads(),
                  "model_options": {}, "memory": True}
        units.append(Unit("step_time.py", "cli", "perf", f"step time on {model}", config))
    return units


def main(argv: list[str] | None = None) -> int:
    """Time the groups, print a table per group, append records with --out."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2
    for unit in units_from_args(args):
        records = run_perf_unit(unit, args.data_dir)
        print(f"\n{unit.label} on {records[0]['device']} (batch {unit.config['batch_size']}, "
              f"{unit.config['rounds']} interleaved rounds)")
        print(f"{'rule':8s} {'median ms':>10s} {'min':>8s} {'max':>8s} {'x BP':>6s} {'samples/s':>10s} "
              f"{'peak MiB':>9s}")
        for record in records:
            if args.out:
                append_record(Path(args.out), record)
            final = record["final"]
            if "median_ms" not in final:
                print(f"{record['config']['rule']:8s} n/a: {final['unavailable'][:90]}")
                continue
            print(f"{record['config']['rule']:8s} {final['median_ms']:10.2f} {final['min_ms']:8.2f} "
                  f"{final['max_ms']:8.2f} {final['ratio_to_bp']:6.2f} {final['samples_per_s']:10.0f} "
                  f"{final['step_peak_bytes'] / 2**20:9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
