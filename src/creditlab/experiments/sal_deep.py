"""SAL experiment 3 (Gierlich et al., arXiv v2, figs 7-8): the conv net with SAL-symmetrized FC feedback
against BP, FA and Kolen-Pollack, on Fashion-MNIST (and CIFAR-10).

Every rule trains ``sal-convnet`` with the authors' SGD (lr 0.01, momentum 0.9, batch 128; KP weight
decay 1e-3 on its feedback). ``sal``: FA in the conv layers, the FC layers' feedback learned by a
spiking SAL phase before every epoch (:mod:`creditlab.rules.sal`); ``fa``: fixed random feedback
everywhere; ``kp``: feedback learned by Kolen-Pollack. Recorded per epoch: test accuracy and the angle
between each layer's W and B (degrees; none for BP, whose feedback is W).

Protocols: ``cpu`` (default) a stated reduced budget: Fashion-MNIST only, the first 10,000 training
and 2,000 test images, 3 epochs, with the authors' SAL phases (5 x 2,000 steps, sal_lr 0.04, 32
chains; ``--opt sal_lr=... --opt sal_iterations=...`` records another setting as ``sal@lr...x...``);
``paper``: the authors' 100 epochs on the full Fashion-MNIST and CIFAR-10 (a GPU job).
"""

from __future__ import annotations

import time
from typing import Any

from creditlab.data import load_dataset
from creditlab.errors import OptionError
from creditlab.experiments import ExperimentContext, ExperimentOption, register_experiment
from creditlab.hooks import FitContext, TrainerHook
from creditlab.report.render import Table
from creditlab.results import make_record
from creditlab.rules.sal import feedback_angles

RULES = ("bp", "fa", "kp", "sal")
PAPER_SAL = {"sal_lr": 0.04, "iterations": 5, "steps": 2000, "chains": 32}
CPU_SAL = dict(PAPER_SAL)  # the authors' phases; only the epochs and images are reduced
QUICK_SAL = {"sal_lr": 1.0, "iterations": 1, "steps": 50, "chains": 2}
SETTINGS = {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "batch_size": 128, "normalization": "standard"}


def _protocol(ctx: ExperimentContext) -> tuple[str, dict[str, Any], dict[str, Any], tuple[str, ...]]:
    chosen = ctx.options.get("protocol", "cpu")
    if chosen not in ("cpu", "paper"):
        raise OptionError(f"sal-deep option protocol must be 'cpu' or 'paper', got {chosen!r}")
    if ctx.quick:
        return "quick", {"epochs": 1, "train_limit": 256, "test_limit": 128}, QUICK_SAL, ("fashion-mnist",)
    if chosen == "paper":
        return chosen, {"epochs": 100}, PAPER_SAL, ("fashion-mnist", "cifar10")
    return chosen, {"epochs": 3, "train_limit": 10000, "test_limit": 2000}, CPU_SAL, ("fashion-mnist",)


class FeedbackAngles(TrainerHook):
    """angle(W, B) per layer at the start (before SAL's first phase) and at the end of every epoch."""

    def __init__(self) -> None:
        self.initial: dict[str, float] = {}

    def on_fit_start(self, rule: Any, context: FitContext) -> None:  # noqa: D102
        self.initial = feedback_angles(rule) if hasattr(rule, "feedback_matrices") else {}

    def on_epoch_end(self, rule: Any, epoch: int) -> dict[str, Any]:  # noqa: D102
        return {"feedback_angle_deg": feedback_angles(rule)} if hasattr(rule, "feedback_matrices") else {}


LAYERS = ("features.0", "features.4", "classifier.0", "classifier.3", "classifier.6")


def sal_setting(config: dict[str, Any]) -> str:
    """A SAL record's phase setting as 'sal_lr 0.04, 5 x 2000 steps' ('' for the other rules)."""
    sal = config.get("sal") or {}
    return f"sal_lr {sal['sal_lr']:g}, {sal['iterations']} x {sal['steps']} steps" if sal else ""


def summary(records: list[dict[str, Any]]) -> list[Table]:
    """Test accuracy and final angle(W, B) per layer, per (dataset, rule, SAL setting)."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: str(r.get("timestamp", ""))):
        if record["name"].startswith("sal-deep/"):
            latest[(record["name"], sal_setting(record["config"]))] = record
    rows = []
    for r in latest.values():
        f, c = r["final"], r["config"]
        angles = f["final_feedback_angle_deg"]
        error = r["epochs"][-1].get("sal_feedback_error") if r.get("epochs") else None
        rows.append([f["dataset"], f["rule"], sal_setting(c) or "-", f"{f['test_accuracy']:.4f}",
                     *[f"{angles[k]:.1f}" if k in angles else "-" for k in LAYERS],
                     "/".join(f"{e:.2f}" for e in error) if error else "-",
                     f"{c['protocol']}: {c['epochs']} epochs, {c.get('train_limit') or 'all'} images, "
                     f"seed {f['seed']}, commit {r.get('commit', '?')}"])
    return [Table(["dataset", "rule", "SAL phase", "test acc", *[f"angle {k}" for k in LAYERS],
                   "‖B − W‖/‖W‖ fc1/fc2/fc3", "budget"], rows,
                  notes=["angle(W, B) in degrees at the end of the last epoch; '-' for backprop (B = W).",
                         "SAL phase: sal_lr and updates x steps per phase before every epoch (the authors': "
                         "sal_lr 0.04, 5 x 2000); ‖B − W‖/‖W‖ after the last phase (recorded since the "
                         "divergence check).",
                         "Paper values: not available (no logs published)."],
                  title="sal-deep: accuracy and feedback angles")]


@register_experiment("sal-deep", "SAL (Gierlich 2025) exp. 3: conv net, FC feedback symmetrized by spiking "
                     "SAL phases vs BP, FA, Kolen-Pollack: accuracy and W-B angles", summary=summary,
                     options={"protocol": ExperimentOption("cpu", "cpu (stated reduced budget) or paper (GPU)",
                                                           choices=("cpu", "paper")),
                              "rules": ExperimentOption(list(RULES), "rules to run", choices=RULES),
                              "datasets": ExperimentOption(None, "datasets to run [default: the protocol's]",
                                                           type=list, choices=("fashion-mnist", "cifar10"),
                                                           single=True),
                              "epochs": ExperimentOption(None, "epochs per rule [default: the protocol's]", type=int,
                                                         minimum=1),
                              "train_limit": ExperimentOption(None, "train on the first N images (0: all) "
                                                                    "[default: the protocol's]", type=int, minimum=0),
                              "test_limit": ExperimentOption(None, "test on the first N images (0: all) "
                                                                   "[default: the protocol's]", type=int, minimum=0),
                              "sal_lr": ExperimentOption(None, "SAL phase learning rate [default: the protocol's]; "
                                                               "a non-default SAL setting records rule 'sal@...'",
                                                         type=float, above=0),
                              "sal_iterations": ExperimentOption(None, "SAL updates per phase [default: the "
                                                                       "protocol's]", type=int, minimum=1)})
def run(ctx: ExperimentContext) -> list[dict[str, Any]]:
    """Train every rule on every dataset of the protocol; one record per (dataset, rule)."""
    from creditlab.train import train_from_names

    label, budget, sal_options, datasets = _protocol(ctx)
    for key in ("epochs", "train_limit", "test_limit"):  # a stated budget overrides the protocol's
        if ctx.options.get(key) is not None:
            value = int(ctx.options[key])
            if value < (1 if key == "epochs" else 0):
                raise OptionError(f"sal-deep option {key} must be {'>= 1' if key == 'epochs' else '>= 0'}, got {value}")
            budget[key] = value or None
    if ctx.options.get("datasets"):
        given = ctx.options["datasets"]
        chosen = [given] if isinstance(given, str) else list(given)
        if any(d not in ("fashion-mnist", "cifar10") for d in chosen):
            raise OptionError(f"sal-deep option datasets must be a subset of [fashion-mnist, cifar10], got {chosen}")
        datasets = tuple(chosen)
    variant = ""
    for key, field in (("sal_lr", "sal_lr"), ("sal_iterations", "iterations")):
        if ctx.options.get(key) is not None:
            value = float(ctx.options[key]) if key == "sal_lr" else int(ctx.options[key])
            if not value > 0:
                raise OptionError(f"sal-deep option {key} must be > 0, got {value}")
            sal_options = {**sal_options, field: value}
            variant = f"@lr{sal_options['sal_lr']:g}x{sal_options['iterations']}"
    rules = [str(r) for r in (ctx.options.get("rules") or RULES)]
    if not rules or any(r not in RULES for r in rules):
        raise OptionError(f"sal-deep option rules must be a non-empty subset of {list(RULES)}, got {rules}")
    records = []
    for dataset in datasets:
        data = load_dataset(dataset, ctx.data_dir, ctx.device, 0.0, ctx.seed, SETTINGS["normalization"])
        rows = []
        for rule in rules:
            options: dict[str, Any] = {} if rule == "bp" else {"seed": ctx.seed}
            if rule == "sal":
                options.update(sal_options)
            if rule == "kp":
                options.update({"feedback_lr": 0.01, "feedback_momentum": 0.9, "decay": 1e-3})

            shown = rule + variant if rule == "sal" else rule
            angles_hook = FeedbackAngles()
            started = time.perf_counter()
            summary = train_from_names(rule, "sal-convnet", dataset, ctx.data_dir, rule_options=options,
                                       hooks=[angles_hook], loaded=data, seed=ctx.seed, device=ctx.device,
                                       out_dir=str(ctx.out_dir / dataset / shown), progress=False,
                                       **SETTINGS, **budget)
            history = summary["history"]
            final = {"test_accuracy": summary["test_accuracy"], "initial_feedback_angle_deg": angles_hook.initial,
                     "final_feedback_angle_deg": history[-1].get("feedback_angle_deg", {}), "dataset": dataset,
                     "rule": shown, "seed": ctx.seed}
            config = {**summary["config"], "protocol": label, "sal": sal_options if rule == "sal" else None}
            record = make_record("reproduce", f"sal-deep/{dataset}/{shown}", config, final, epochs=history,
                                 wall_time_s=time.perf_counter() - started, device=ctx.device)
            ctx.record(record)
            records.append(record)
            angles = final["final_feedback_angle_deg"]
            rows.append(f"{shown:<4} {summary['test_accuracy']:>8.4f}  " +
                        "  ".join(f"{k} {v:.1f}" for k, v in angles.items()))
        print(f"\nsal-deep {dataset} ({label}{': smoke numbers, not results' if ctx.quick else ''}; seed {ctx.seed})")
        print("rule test_acc  final angle(W, B) per layer (deg; at the end of the last epoch)")
        print("\n".join(rows))
    return records
