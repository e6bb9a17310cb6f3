"""Step time of GAIT-prop, TP and DTP as a ratio to BP on the same invertible MLP, and the cost of
keeping the exact inverses current as the width grows.

Model: ``invertible-mlp`` on MNIST-shaped input (784), ``--depth`` hidden layers of each ``--widths``
value (784 = the 2020 paper's square net; other widths get a dense first layer), batch ``--batch``
(60, the 2020 code's), real MNIST (first 8 batches, inputs in [0, 1]) when available. A step is what
the trainer does: ``rule.step`` (update into ``.grad``, orthogonality regularizer included), Adam,
``apply_constraints`` (the inverse refresh). Variants per width and dtype, interleaved in one process
(``creditlab.bench.perf.time_interleaved``): bp; gaitprop (λ = 0.1, the paper's); gaitprop-noreg
(λ = 0); tp (λ = 1000); dtp. Peak memory per variant: ``creditlab.bench.perf.measure_step_memory``.
``refresh`` rows time the inverse refresh alone (every square layer, ``torch.linalg.inv``).

The authors' code runs GAIT-prop at 5.39x its BP step with the regularizer and 1.15x without
(``shared/research/anchor_perf.md`` §4, CPU 2 threads, 784 x 4, batch 60, float64); our target is <= 2x.

    python benchmarks/gaitprop_step_time.py [--widths 256,784] [--dtypes float32,float64] [--rounds 10]
        [--refresh-widths 256,512,1024,2048] [--threads 1] [--out results/gaitprop/step_time.jsonl]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from creditlab.bench.perf import (
    Contender,
    make_batches,
    measure_step_memory,
    summarize_times,
    time_interleaved,
)
from creditlab.models import build_model
from creditlab.results import append_record, make_record
from creditlab.rules import build_rule

#: anchor_perf.md §4: the authors' GAIT-prop step over their BP step (median, CPU 2 threads)
AUTHORS_RATIO = {"gaitprop": 5.39, "gaitprop-noreg": 1.15}
VARIANTS = {
    "bp": ("bp", {}),
    "gaitprop": ("gaitprop", {"orthogonality": 0.1}),
    "gaitprop-noreg": ("gaitprop", {"orthogonality": 0.0}),
    "tp": ("tp", {"orthogonality": 1000.0}),
    "dtp": ("dtp", {}),
}


def contenders(width: int, depth: int, dtype: str, seed: int = 0) -> dict[str, Contender]:
    """One Contender per variant, each on its own copy of one seeded model, Adam(1e-4)."""
    base = build_model("invertible-mlp", (1, 28, 28), 10, width=width, depth=depth, dtype=dtype, seed=seed)
    out = {}
    for label, (rule_name, options) in VARIANTS.items():
        rule = build_rule(rule_name, copy.deepcopy(base), **options)
        optimizer = torch.optim.Adam(rule.model.parameters(), lr=1e-4, fused=True)
        out[label] = Contender(label, rule, optimizer)
    return out


def refresh_time(width: int, depth: int, dtype: str, repeats: int) -> float:
    """Median seconds of one refresh of every inverse of a ``depth``-hidden-layer net of ``width``."""
    model = build_model("invertible-mlp", (1, 28, 28), 10, width=width, depth=depth, dtype=dtype, seed=0)
    for index in range(1, model.depth):
        model.inverse_weight(index)  # mark every inverse as in use
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.refresh_inverses()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:  # noqa: D103
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--widths", default="256,784")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--batch", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--refresh-widths", default="256,512,1024,2048")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batches, source = make_batches("invertible-mlp", args.batch, "cpu")
    config_base = {"depth": args.depth, "batch": args.batch, "rounds": args.rounds, "warmup": args.warmup,
                   "threads": args.threads, "data": source}
    print(f"invertible-mlp, depth {args.depth}, batch {args.batch}, {args.threads} thread(s), {source}")
    for dtype in args.dtypes.split(","):
        for width in map(int, args.widths.split(",")):
            group = contenders(width, args.depth, dtype)
            times = time_interleaved({k: c.step for k, c in group.items()}, batches, args.rounds, args.warmup, "cpu")
            rows = summarize_times(times, args.batch)
            for label, contender in group.items():
                rows[label].update(measure_step_memory(contender, batches[0], "cpu"))
            print(f"\n{dtype}, width {width}:  {'variant':<15} {'median ms':>10} {'ratio to bp':>11} "
                  f"{'authors':>8} {'step peak MiB':>13}")
            for label, row in rows.items():
                authors = AUTHORS_RATIO.get(label) if width == 784 and dtype == "float64" else None
                print(f"{'':<22}{label:<15} {row['median_ms']:>10.1f} {row['ratio_to_bp']:>11.2f} "
                      f"{authors if authors is not None else '':>8} {row['step_peak_bytes'] / 2**20:>13.1f}")
            if args.out:
                config = {**config_base, "width": width, "dtype": dtype, "variants": VARIANTS}
                append_record(args.out, make_record("perf", "gaitprop-step-time", config,
                                                    {"rows": rows, "authors_ratio": AUTHORS_RATIO}))
    print(f"\ninverse refresh (all {args.depth} square layers above the first, torch.linalg.inv):")
    for dtype in args.dtypes.split(","):
        for width in map(int, args.refresh_widths.split(",")):
            seconds = refresh_time(width, args.depth, dtype, repeats=3)
            print(f"  {dtype} width {width:>5}: {1000 * seconds:9.1f} ms per refresh")
            if args.out:
                append_record(args.out, make_record("perf", "gaitprop-inverse-refresh",
                                                    {**config_base, "width": width, "dtype": dtype},
                                                    {"refresh_ms": 1000 * seconds}))


if __name__ == "__main__":
    main()
