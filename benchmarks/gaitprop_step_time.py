"""Step time of GAIT-prop and TP as a ratio to BP on the same invertible MLP, and the cost of
keeping the exact inverses current as the width grows.

Model: ``invertible-mlp`` on MNIST-shaped input (784), ``--depth`` hidden layers of each ``--widths``
value (784 = the 2020 paper's square net; other widths get a dense first layer), batch ``--batch``
(60, the 2020 code's), real MNIST (first 8 batches, inputs in [0, 1]) when available. A step is what
the trainer does: ``rule.step`` (update into ``.grad``, orthogonality regularizer included), Adam,
``apply_constraints`` (the inverse refresh). Variants per width and dtype, interleaved in one process
(``creditlab.bench.perf.time_interleaved``): bp; gaitprop (λ = 0.1, the paper's); gaitprop-noreg
(λ = 0); tp (λ = 1000). (DTP trains an ordinary MLP since issue #25; older records hold a
``dtp`` row of the former invertible-net variant.) Peak memory per variant:
``creditlab.bench.perf.measure_step_memory``.
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
#: label -> (rule, rule options, inverse_method of the model); "solve" (LU factors) is the model's default
VARIANTS = {
    "bp": ("bp", {}, "solve"),
    "gaitprop": ("gaitprop", {"orthogonality": 0.1}, "solve"),
    "gaitprop-inv": ("gaitprop", {"orthogonality": 0.1}, "inverse"),
    "gaitprop-noreg": ("gaitprop", {"orthogonality": 0.0}, "solve"),
    "tp": ("tp", {"orthogonality": 1000.0}, "solve"),
}


def contenders(width: int, depth: int, dtype: str, seed: int = 0) -> dict[str, Contender]:
    """One Contender per variant, each on its own copy of one seeded model, Adam(1e-4)."""
    base = build_model("invertible-mlp", (1, 28, 28), 10, width=width, depth=depth, dtype=dtype, seed=seed)
    out = {}
    for label, (rule_name, options, inverse_method) in VARIANTS.items():
        model = copy.deepcopy(base)
        model.inverse_method = inverse_method
        rule = build_rule(rule_name, model, **options)
        optimizer = torch.optim.Adam(rule.model.parameters(), lr=1e-4, fused=True)
        out[label] = Contender(label, rule, optimizer)
    return out


def refresh_time(width: int, depth: int, dtype: str, repeats: int, inverse_method: str = "solve") -> float:
    """Median seconds of one refresh of every inverse of a ``depth``-hidden-layer net of ``width``."""
    model = build_model("invertible-mlp", (1, 28, 28), 10, width=width, depth=depth, dtype=dtype, seed=0,
                        inverse_method=inverse_method)
    for index in range(1, model.depth):
        model.inverse_weight(index)  # mark every inverse as in use
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.refresh_inverses()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def regularizer_time(width: int, depth: int, dtype: str, repeats: int) -> float:
    """Median seconds of the orthogonality-regularizer gradient of every square layer (λ = 0.1)."""
    model = build_model("invertible-mlp", (1, 28, 28), 10, width=width, depth=depth, dtype=dtype, seed=0)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        model.orthogonality_gradients(0.1, "off-diagonal")
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def flop_counts(width: int, depth: int, batch: int, in_features: int = 784) -> dict[str, float]:
    """Multiply-add flops (2 per MAC) per training step of each part, from the shapes alone.

    bp: forward + input gradient + weight gradient, 3 products of (B x N_in) by (N_in x N_out) per layer;
    the local-target rules do the same three (forward, inverse application, local weight gradient).
    regularizer: W W^T and (W W^T - D) W, 2 N^3 each, per square layer. Inverse refresh per inverted
    layer (all square layers but the first): LU 2/3 N^3 (getrf) or the explicit inverse 2 N^3 (getrf+getri).
    """
    shapes = [(in_features, width)] + [(width, width)] * depth  # (N_in, N_out): hidden layers + output
    square = sum(1 for n_in, n_out in shapes if n_in == n_out)
    inverted = depth  # layers 2..L
    return {"bp": sum(6 * batch * n_in * n_out for n_in, n_out in shapes),
            "regularizer": square * 4 * width ** 3,
            "lu_refresh": inverted * 2 / 3 * width ** 3,
            "inv_refresh": inverted * 2 * width ** 3}


def main() -> None:  # noqa: D103
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--widths", default="256,784")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--batch", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--refresh-widths", default="256,512,1024,2048")
    parser.add_argument("--part-repeats", type=int, default=3)
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
            parts = {"bp_ms": rows["bp"]["median_ms"],
                     "regularizer_ms": 1000 * regularizer_time(width, args.depth, dtype, args.part_repeats),
                     "lu_refresh_ms": 1000 * refresh_time(width, args.depth, dtype, args.part_repeats, "solve"),
                     "inv_refresh_ms": 1000 * refresh_time(width, args.depth, dtype, args.part_repeats, "inverse")}
            flops = flop_counts(width, args.depth, args.batch)
            floor = (parts["bp_ms"] + parts["regularizer_ms"] + parts["lu_refresh_ms"]) / parts["bp_ms"]
            parts["floor_ratio_measured"] = floor
            parts["floor_ratio_flops"] = (flops["bp"] + flops["regularizer"] + flops["lu_refresh"]) / flops["bp"]
            parts["floor_ratio_flops_noreg"] = (flops["bp"] + flops["lu_refresh"]) / flops["bp"]
            print(f"{'':<22}parts: bp step {parts['bp_ms']:.1f} ms ({flops['bp'] / 1e9:.2f} GFLOP), regularizer "
                  f"{parts['regularizer_ms']:.1f} ms ({flops['regularizer'] / 1e9:.2f}), LU refresh "
                  f"{parts['lu_refresh_ms']:.1f} ms ({flops['lu_refresh'] / 1e9:.2f}), inverse refresh "
                  f"{parts['inv_refresh_ms']:.1f} ms ({flops['inv_refresh'] / 1e9:.2f})")
            print(f"{'':<22}floor of an exact GAIT-prop step / BP (bp + regularizer + LU): measured {floor:.2f}, "
                  f"by flops {parts['floor_ratio_flops']:.2f} (no regularizer: {parts['floor_ratio_flops_noreg']:.2f})")
            if args.out:
                config = {**config_base, "width": width, "dtype": dtype, "variants": VARIANTS}
                # final: one entry per contender (the report's benchmark tables show a row each), then the parts
                variants = {label: {"median_ms": row["median_ms"], "ratio_to_bp": row["ratio_to_bp"],
                                    "authors_ratio": AUTHORS_RATIO.get(label) if width == 784 and dtype == "float64"
                                    else None, **row} for label, row in rows.items()}
                append_record(args.out, make_record("perf", "gaitprop-step-time", config,
                                                    {**variants, "parts": parts, "flops": flops}))
    print(f"\ninverse refresh (all {args.depth} square layers above the first; LU factors, the default, "
          "and the explicit inverse):")
    for dtype in args.dtypes.split(","):
        for width in [int(w) for w in args.refresh_widths.split(",") if w]:
            lu = refresh_time(width, args.depth, dtype, args.part_repeats, "solve")
            inverse = refresh_time(width, args.depth, dtype, args.part_repeats, "inverse")
            print(f"  {dtype} width {width:>5}: LU {1000 * lu:9.1f} ms, inverse {1000 * inverse:9.1f} ms per refresh")
            if args.out:
                append_record(args.out, make_record("perf", "gaitprop-inverse-refresh",
                                                    {**config_base, "width": width, "dtype": dtype},
                                                    {"refresh_ms": 1000 * lu, "lu_refresh_ms": 1000 * lu,
                                                     "inverse_refresh_ms": 1000 * inverse}))


if __name__ == "__main__":
    main()
