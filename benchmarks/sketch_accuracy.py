"""Accuracy vs communication of the distributed reducers (run under torchrun).

    CREDITLAB_DATA=../shared/data torchrun --standalone --nproc-per-node 4 benchmarks/sketch_accuracy.py \\
        --kinds allreduce sketch fetchsgd topk localtopk --epochs 2 --out results/sketching/accuracy.jsonl

Every kind trains the same model from the same initialization on the same batches (each rank its
``rank::W`` slice). Momentum is the same ``--momentum`` everywhere: the optimizer's for allreduce and
powersgd, the reducer's (with optimizer momentum 0) for sketch, fetchsgd, topk and localtopk, which
keep momentum and error themselves. Rank 0 appends one results record per kind.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from creditlab.data import load_dataset
from creditlab.distributed import build_reducer, init_distributed
from creditlab.results import append_record, make_record
from creditlab.train import train_from_names

REDUCER_MOMENTUM = {"sketch", "fetchsgd", "topk", "localtopk"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", nargs="+",
                        default=["allreduce", "sketch", "fetchsgd", "topk", "localtopk"])
    parser.add_argument("--rule", default="bp")
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--data", default="mnist")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256, help="global batch (split over ranks)")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--rows", type=int, default=5)
    parser.add_argument("--cols", type=int, default=8_000)
    parser.add_argument("--k", type=int, default=2_000)
    parser.add_argument("--powersgd-rank", type=int, default=2)
    parser.add_argument("--train-limit", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--out", default="results/sketching/accuracy.jsonl")
    args = parser.parse_args()

    rank, world_size = init_distributed(timeout_s=args.timeout)
    dataset = load_dataset(args.data, None, "cpu", 0.0, args.seed, "standard")
    for kind in args.kinds:
        reducer_momentum = kind in REDUCER_MOMENTUM

        def factory(learner: Any, config: Any, kind: str = kind,
                    reducer_momentum: bool = reducer_momentum) -> Any:
            return build_reducer(kind, learner.model, sketch_rows=args.rows, sketch_cols=args.cols, k=args.k,
                                 momentum=args.momentum if reducer_momentum else 0.0, lr=config.lr,
                                 seed=args.seed, powersgd_rank=args.powersgd_rank)

        started = time.perf_counter()
        summary = train_from_names(
            args.rule, args.model, args.data, reducer_factory=factory, loaded=dataset, epochs=args.epochs,
            batch_size=args.batch_size, lr=args.lr, optimizer="sgd",
            momentum=0.0 if reducer_momentum else args.momentum, schedule="none", seed=args.seed,
            train_limit=args.train_limit, progress=False, out_dir=None)
        wall = time.perf_counter() - started
        if rank == 0:
            config = {"kind": kind, "rule": args.rule, "model": args.model, "data": args.data,
                      "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                      "momentum": args.momentum, "world_size": world_size, "seed": args.seed,
                      "train_limit": args.train_limit,
                      **({"rows": args.rows, "cols": args.cols} if kind in ("sketch", "fetchsgd") else {}),
                      **({"k": args.k} if kind in REDUCER_MOMENTUM else {}),
                      **({"powersgd_rank": args.powersgd_rank} if kind == "powersgd" else {})}
            final = {key: summary.get(key) for key in (
                "test_accuracy", "train_loss", "train_accuracy", "world_size", "bytes_sent", "bytes_received",
                "steps", "compression_ratio", "upload_compression_ratio", "bytes_per_step")}
            append_record(args.out, make_record("perf", f"sketching-accuracy/{kind}", config, final,
                                                epochs=summary.get("history"), wall_time_s=wall))
            print(f"{kind:10s} test_accuracy {final['test_accuracy']:.4f} compression "
                  f"{final['compression_ratio']:.2f}x (upload {final['upload_compression_ratio']:.2f}x) "
                  f"wall {wall:.0f}s", flush=True)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
