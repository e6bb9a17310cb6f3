"""Step time of GAIT-prop, TP and DTP as a ratio to BP on the same invertible MLP (three named ratios:
gaitprop with its regularizer over plain BP, over BP with the same regularizer, and the credit
assignment alone), the parts of an exact step, and the inverse refresh as the width grows.

The measurement is ``creditlab reproduce gaitprop-step-time`` (:mod:`creditlab.experiments.gaitprop_step_time`,
which documents the variants); this script runs the same with its records appended to ``--out``.

    python benchmarks/gaitprop_step_time.py [--widths 256,784] [--dtypes float64,float32] [--rounds 10]
        [--refresh-widths 256,512,1024,2048] [--threads 1] [--out results/gaitprop/step_time.jsonl]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from creditlab.experiments import ExperimentContext
from creditlab.experiments.gaitprop_step_time import run
from creditlab.results import append_record


def main() -> None:  # noqa: D103
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--widths", default="256,784")
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--batch", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--refresh-widths", default="256,512,1024,2048")
    parser.add_argument("--part-repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="records file (default: print only)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    options = {"widths": [int(w) for w in args.widths.split(",") if w], "dtypes": args.dtypes.split(","),
               "depth": args.depth, "batch": args.batch, "rounds": args.rounds, "warmup": args.warmup,
               "refresh_widths": [int(w) for w in args.refresh_widths.split(",") if w],
               "part_repeats": args.part_repeats}
    out = Path(args.out) if args.out else None
    ctx = ExperimentContext(out_dir=out.parent if out else Path("."), options=options)
    ctx.record = (lambda record: None) if out is None else (  # type: ignore[method-assign]
        lambda record: append_record(out, record))  # the script's own file name
    run(ctx)


if __name__ == "__main__":
    main()
