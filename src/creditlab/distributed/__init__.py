"""Communication-efficient data-parallel training for every creditlab rule.

Launch with torchrun; the trainer calls :func:`init_distributed`, builds a reducer with
:func:`build_reducer`, and after each rule step calls ``reducer.synchronize(model)`` before
``optimizer.step()``::

    torchrun --nproc-per-node 4 -m creditlab train --rule bp --model mlp \\
        --distributed sketch --sketch-rows 5 --sketch-cols 50000 --topk 5000 --optimizer sgd --momentum 0

Reducers (``kind``):

=========== ========================================================= ==============================
kind        what crosses the network per worker and step               optimizer
=========== ========================================================= ==============================
allreduce   d values up, d down (mean gradient)                        any
sketch      SketchedSGD: r·c sketch + P·k exact values up, k down      SGD, momentum 0 (reducer's)
fetchsgd    FetchSGD: r·c sketch up, k down                            SGD, momentum 0 (reducer's)
topk        true top-k with error feedback: d up, k down               SGD, momentum 0 (reducer's)
localtopk   local top-k with error feedback: k up, <= W·k down         SGD, momentum 0 (reducer's)
powersgd    PyTorch's PowerSGD hook: rank-r factors up and down        any
=========== ========================================================= ==============================

Reducers that keep momentum and error themselves (sketch, fetchsgd, topk, localtopk) take
``momentum`` as *their* momentum; the optimizer must then be plain SGD with momentum 0 and the usual
lr (it computes ``w ← w − lr·update``, the lr placement of the reference SketchedSGD code). Each
says so with its ``optimizer_requirement`` (:class:`creditlab.optim.OptimizerRequirement`, the same
mechanism rules use; :func:`reducer_requirement` looks it up by kind before the reducer exists):
``config_for`` fixes the optimizer, uses a plain-SGD lr unless ``--lr`` is given, and refuses a
conflicting ``--optimizer``; ``fit`` checks it again.
"""

from __future__ import annotations

import torch.nn as nn

from creditlab.distributed.baselines import AllReduce, LocalTopK, PowerSGD, TrueTopK
from creditlab.distributed.comm import DistributedError, Traffic, init_distributed, world
from creditlab.distributed.countsketch import CountSketch
from creditlab.distributed.fetchsgd import FetchSGD
from creditlab.distributed.reducer import GradientReducer
from creditlab.distributed.sketched_sgd import SketchedSGD
from creditlab.optim import OptimizerRequirement

REDUCER_KINDS = ("allreduce", "sketch", "fetchsgd", "topk", "localtopk", "powersgd")
_REDUCER_CLASSES: dict[str, type[GradientReducer]] = {
    "allreduce": AllReduce, "sketch": SketchedSGD, "fetchsgd": FetchSGD, "topk": TrueTopK,
    "localtopk": LocalTopK, "powersgd": PowerSGD}


def reducer_requirement(kind: str) -> OptimizerRequirement | None:
    """The optimizer requirement of reducer ``kind`` (None: any optimizer); ValueError for an unknown kind."""
    if kind not in _REDUCER_CLASSES:
        raise ValueError(f"unknown --distributed {kind!r}; valid: {', '.join(REDUCER_KINDS)}")
    return _REDUCER_CLASSES[kind].optimizer_requirement


def build_reducer(kind: str, model: nn.Module, *, sketch_rows: int = 5, sketch_cols: int = 500_000,
                  k: int = 50_000, momentum: float = 0.9, lr: float = 0.1, seed: int = 0,
                  powersgd_rank: int = 1) -> GradientReducer:
    """The gradient reducer ``kind`` for ``model``; call on every rank (it broadcasts rank 0's weights).

    Args:
        kind: one of :data:`REDUCER_KINDS`.
        sketch_rows, sketch_cols: Count Sketch size r×c (sketch, fetchsgd).
        k: coordinates updated per step (sketch, fetchsgd, topk, localtopk).
        momentum: the reducer's momentum (sketch, fetchsgd, topk, localtopk); ignored otherwise.
        lr: checked to be positive; the optimizer applies it (``w ← w − lr·update``).
        seed: seed of the sketch hashes and PowerSGD's random init; must be equal on every rank.
        powersgd_rank: matrix approximation rank (powersgd).

    Raises ValueError for an unknown kind or an invalid combination (k larger than the model, a sketch
    too small for k or no smaller than the model, momentum outside [0, 1)).
    """
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if kind == "allreduce":
        return AllReduce(model)
    if kind == "sketch":
        return SketchedSGD(model, rows=sketch_rows, cols=sketch_cols, k=k, momentum=momentum, seed=seed)
    if kind == "fetchsgd":
        return FetchSGD(model, rows=sketch_rows, cols=sketch_cols, k=k, momentum=momentum, seed=seed)
    if kind == "topk":
        return TrueTopK(model, k=k, momentum=momentum)
    if kind == "localtopk":
        return LocalTopK(model, k=k, momentum=momentum)
    if kind == "powersgd":
        return PowerSGD(model, rank=powersgd_rank, seed=seed)
    raise ValueError(f"unknown --distributed {kind!r}; valid: {', '.join(REDUCER_KINDS)}")


__all__ = ["REDUCER_KINDS", "AllReduce", "CountSketch", "DistributedError", "FetchSGD", "GradientReducer",
           "LocalTopK", "PowerSGD", "SketchedSGD", "Traffic", "TrueTopK", "build_reducer", "init_distributed",
           "reducer_requirement", "world"]
