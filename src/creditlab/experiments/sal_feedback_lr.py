"""SAL's feedback update against its learning rate ``sal_lr`` on a cheap chain (Gierlich et al. 2025).

A 100-40-10 MLP (torch's default init, seed 0) starts from FA's random B; rule ``sal`` (the authors'
phase settings otherwise: 2,000 steps per update, 32 chains, t_ref 10) applies ``updates`` SAL updates
(one per 2,000 steps; 5 make one of the authors' phases) at each ``sal_lr``. Recorded after every update,
per linear layer: ||B - W||_F / ||W||_F, ||B||_F and angle(W, B). What it shows: the update is
B <- B + sal_lr * (a noisy estimate of a step toward W); small sal_lr (the authors' 0.04) converges
slowly, larger ones reach a noise floor that grows with sal_lr, and from about 3.3 every update
overshoots W, so the distance grows from update to update (a diverging update). The rule stops such a
run with ``FeedbackDivergenceError`` once ||B - W|| > ``divergence_limit`` ||W|| (default 4); here the
limit is lifted to follow each trajectory, and the update at which the default limit would have
stopped it is recorded (``stopped_at_update``).

    creditlab reproduce sal-feedback-lr --threads 1 --out results/sal/feedback_lr
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn as nn

from creditlab.analysis.alignment import angle_degrees
from creditlab.experiments import ExperimentContext, ExperimentOption, register_experiment
from creditlab.report.render import Table
from creditlab.results import make_record
from creditlab.rules import build_rule

NAME = "sal-feedback-lr"
SIZES = (100, 40, 10)
DEFAULT_LIMIT = 4.0


def chain(seed: int) -> nn.Module:
    """The 100-40-10 MLP, torch's default init under ``seed``."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(SIZES[0], SIZES[1]), nn.ReLU(), nn.Linear(SIZES[1], SIZES[2]))


def trajectory(sal_lr: float, updates: int, seed: int, steps: int, chains: int) -> dict[str, Any]:
    """Per update and layer: ||B - W|| / ||W||, ||B||, angle(W, B); where the default limit would stop."""
    rule = build_rule("sal", chain(seed), seed=seed, sal_lr=sal_lr, iterations=1, steps=steps, chains=chains,
                      divergence_limit=1e12)
    errors, norms, angles = [], [], []
    stopped = None
    for update in range(updates):
        rule.symmetrize()
        errors.append(rule.last_feedback_error)
        norms.append([round(float(layer.feedback_weight.norm()), 4) for layer in rule.linear])
        angles.append([round(angle_degrees(layer.weight, layer.feedback_weight), 2) for layer in rule.linear])
        if stopped is None and max(errors[-1]) > DEFAULT_LIMIT:
            stopped = update + 1
    return {"sal_lr": sal_lr, "feedback_error": errors, "feedback_norm": norms, "angle_deg": angles,
            "forward_norm": [round(float(layer.weight.detach().norm()), 4) for layer in rule.linear],
            "stopped_at_update": stopped}


@register_experiment(NAME, "SAL (Gierlich 2025): the feedback update against sal_lr on a 100-40-10 chain "
                           "(convergence, noise floor, divergence)",
                     options={"lrs": ExperimentOption([0.04, 0.5, 1.0, 2.0, 3.0, 3.3, 3.6, 4.0], "sal_lr values",
                                                      item=float, above=0, single=True),
                              "updates": ExperimentOption(15, "SAL updates per sal_lr (5 = one authors' phase)",
                                                          minimum=1),
                              "steps": ExperimentOption(2000, "steps per update (the authors' 200 t_ref)", minimum=1),
                              "chains": ExperimentOption(32, "parallel chains (the authors' 32)", minimum=1)},
                     summary=lambda records: summary(records))
def run(ctx: ExperimentContext) -> list[dict[str, Any]]:
    """One record per sal_lr."""
    o = ctx.options
    lrs = [float(v) for v in o.get("lrs", [])]
    updates, steps, chains = int(o.get("updates", 15)), int(o.get("steps", 2000)), int(o.get("chains", 32))
    if ctx.quick:
        lrs, updates, steps, chains = [1.0, 4.0], 2, 200, 4
    if not lrs or min(lrs) <= 0 or min(updates, steps, chains) < 1:
        from creditlab.errors import OptionError

        raise OptionError(f"{NAME}: lrs must be a non-empty list of numbers > 0 and updates, steps, chains "
                          f"integers >= 1; got lrs={lrs}, updates={updates}, steps={steps}, chains={chains}")
    records = []
    for sal_lr in lrs:
        started = time.perf_counter()
        final = trajectory(sal_lr, updates, ctx.seed, steps, chains)
        config = {"sizes": list(SIZES), "updates": updates, "steps": steps, "chains": chains, "seed": ctx.seed,
                  "divergence_limit_shown": DEFAULT_LIMIT, "quick": ctx.quick}
        record = make_record("reproduce", f"{NAME}/lr{sal_lr:g}", config, final,
                             wall_time_s=time.perf_counter() - started, device=ctx.device)
        ctx.record(record)
        records.append(record)
        print(f"sal_lr {sal_lr:<5g} ||B - W|| / ||W|| per update (layer 1 / 2): " +
              " ".join("/".join(f"{e:.2f}" for e in errors) for errors in final["feedback_error"]) +
              (f"  [default limit {DEFAULT_LIMIT:g} passed at update {final['stopped_at_update']}]"
               if final["stopped_at_update"] else ""))
    return records


def summary(records: list[dict[str, Any]]) -> list[Table]:
    """Per sal_lr (newest record each): the distance of B from W after the first, middle and last update."""
    newest: dict[float, dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: str(r.get("timestamp", ""))):
        if str(record.get("name", "")).startswith(NAME + "/") and not record["config"].get("quick"):
            newest[float(record["final"]["sal_lr"])] = record
    if not newest:
        return []
    shortest = min(len(r["final"]["feedback_error"]) for r in newest.values())
    picks = sorted({0, 4, shortest - 1} & set(range(shortest)))
    rows = []
    for sal_lr, record in sorted(newest.items()):
        f = record["final"]
        errors, angles, norms = f["feedback_error"], f["angle_deg"], f["feedback_norm"]
        last = shortest - 1
        rows.append([f"{sal_lr:g}", *["/".join(f"{e:.2f}" for e in errors[i]) for i in picks],
                     "/".join(f"{a:.0f}" for a in angles[last]),
                     "/".join(f"{n:.1f}" for n in norms[last]) + " (W "
                     + "/".join(f"{n:.1f}" for n in f["forward_norm"]) + ")", str(f["stopped_at_update"] or "–")])
    return [Table(["sal_lr", *[f"‖B − W‖/‖W‖ after update {i + 1}" for i in picks], "final angle (°)",
                   "final ‖B‖", f"update past limit {DEFAULT_LIMIT:g}"], rows,
                  ["100-40-10 chain, FA's random B to start (‖B − W‖/‖W‖ ≈ 1.4), layer 1 / layer 2; one SAL update "
                   "per 2,000 steps of 32 chains, 5 updates = one of the authors' phases (seed 0).",
                   f"Last column: the update after which rule sal's default divergence_limit ({DEFAULT_LIMIT:g}) "
                   "stops training with FeedbackDivergenceError ('–': never within these updates)."],
                  title="sal-feedback-lr: SAL's feedback update against sal_lr")]
