"""GAIT-prop reproductions (Ahmad et al. 2020; Dalm et al. 2021): ``gaitprop-mnist``, ``gaitprop-fmnist``,
``gaitprop-cifar10``. Equations and the authors' settings: ``shared/research/gaitprop_tp_slrl.md`` §1.

MNIST / Fashion-MNIST (the 2020 paper; settings of its README, "parameters identified in the paper"):
``invertible-mlp`` with 4 hidden layers of 784 and a 784-wide output layer (10 readout + 774 auxiliary
units), leaky-ReLU 0.1, orthogonal init, float64, inputs in [0, 1], batch 60, Adam, 100 epochs, MSE
readout; BP lr 1e-4; GAIT-prop lr 1e-4, γ = 1e-3, orthogonality λ = 0.1 (off-diagonal form of the
2020 code); TP lr 1e-5, λ = 1000. DTP is not in the paper and is no longer run here: it trains an
ordinary MLP with its own learned feedback mappings (Lee et al. 2015), and ``dtp-mnist``
(:mod:`creditlab.experiments.dtp`) reproduces it on its own paper's network and protocol.
Reported per rule: the final and the peak test accuracy over epochs (TP "does best when
early-stopping is implemented to catch this peak"; there is no validation split in the authors' code,
so the peak is read on the test set and is optimistic), beside BP on the same network. KMNIST is not
available offline and is not run. The papers' accuracies could not be read: "not available".

CIFAR-10 (Dalm et al. 2021, ``config/cifar.yaml``): 3072 -> 6 x 1024 -> 10 (a dense 3072 -> 1024 first
layer never inverted, 1024-wide output with 10 readouts), softmax cross-entropy, float64, batch 256,
Adam, 200 epochs, orthogonality λ = 100 in the Frobenius form of their code; BP lr 1.9e-5, FA 2.5e-5,
vanilla GAIT-prop (γ = 1e-3) and adaptive GAIT-prop (γ0 = 1e-7) lr 1.9e-5. The per-layer angle of each
rule's update to BP's gradient is logged (at initialization and after every epoch, on a fixed batch of
256 training images) and plotted (``gaitprop_cifar10_angles.png``); the plotted angle is that of the
credit-assignment part of the update (the rule with λ = 0 on the same weights), the records also keep
the angle of the whole update, regularizer included.

Departures, all stated in the records' config: torch's Adam with its default betas/eps (the 2020 code
uses an Adam without bias correction, the follow-up eps 1e-6 or 1e-4); BP and FA run on the same
invertible net with auxiliary output units (the follow-up's BP/FA baselines have a plain 1024 x 10
output); angles every epoch instead of every 100 steps. A run on the CPU uses a stated reduced
protocol (``epochs``, ``train_limit``); the full one is the default of each experiment (a GPU command).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from typing import Any

from creditlab.analysis.alignment import AlignmentTracker, measure_alignment
from creditlab.data import Dataset, load_dataset
from creditlab.errors import CreditlabError
from creditlab.experiments import ExperimentContext, ExperimentOption, register_experiment, register_headline
from creditlab.papers import gaitprop as paper
from creditlab.report.headline import Headline, newest_runs
from creditlab.report.render import Table, render_markdown
from creditlab.results import make_record
from creditlab.rules import Rule

#: the 2020 README's settings per rule. lr None: the rule's or model's default, one source each
#: (invertible-mlp: Adam 1e-4 for BP and GAIT-prop; ``tp``'s optimizer_requirement: 1e-5). The
#: orthogonality λ is each rule's default (gaitprop 0.1, tp 1000), written out here for the record.
#: TP alone stops early on the validation split (patience ``tp_patience`` epochs).
MNIST_RULES: dict[str, dict[str, Any]] = {
    "bp": {"rule": "bp", "lr": None, "rule_options": {}},
    "gaitprop": {"rule": "gaitprop", "lr": None, "rule_options": {"gamma": 1e-3, "orthogonality": 0.1}},
    "tp": {"rule": "tp", "lr": None, "rule_options": {"orthogonality": 1000.0}, "early_stopping": True},
}
MNIST_SETTINGS: dict[str, Any] = {"epochs": 100, "batch_size": 60, "optimizer": "adam", "schedule": "none",
                                  "normalization": "unit", "val_fraction": 0.1, "tp_patience": 10}
MNIST_MODEL: dict[str, Any] = {"width": 784, "depth": 4, "dtype": "float64", "init": "orthogonal"}

#: issue #25 item 4, ``tp-mnist-curve``: at the 2-epoch budget of the README row TP cannot move (lr 1e-5).
#: A budget where its curve can rise, and fall if the 2020 supplement's account (a peak, then a decline,
#: hence early stopping) is right: 100 epochs of 3000 images on a 4 x 256 net (784 does not fit the
#: CPU), the README's settings and, beside them, TP at BP's lr 1e-4 (both with early stopping on the
#: validation split, patience 10), BP on the same net.
TP_CURVE_RULES: dict[str, dict[str, Any]] = {
    "bp": MNIST_RULES["bp"],
    "tp": MNIST_RULES["tp"],
    "tp-lr1e-4": {"rule": "tp", "lr": 1e-4, "rule_options": {"orthogonality": 1000.0}, "early_stopping": True},
}
TP_CURVE_SETTINGS: dict[str, Any] = {**MNIST_SETTINGS, "train_limit": 3000, "test_limit": 2000}
TP_CURVE_MODEL: dict[str, Any] = {**MNIST_MODEL, "width": 256}

_CIFAR_GAIT = {"output_loss": "cross-entropy", "orthogonality": 100.0, "orthogonality_form": "frobenius"}
#: Dalm et al.'s config/cifar.yaml (lr, γ, adaptive, λ)
CIFAR_RULES: dict[str, dict[str, Any]] = {
    "bp": {"rule": "bp", "lr": 1.9e-5, "rule_options": {}},
    "fa": {"rule": "fa", "lr": 2.5e-5, "rule_options": {}},
    "gaitprop-vanilla": {"rule": "gaitprop", "lr": 1.9e-5, "rule_options": {**_CIFAR_GAIT, "gamma": 1e-3}},
    "gaitprop-adaptive": {"rule": "gaitprop", "lr": 1.9e-5,
                          "rule_options": {**_CIFAR_GAIT, "adaptive": True, "gamma0": 1e-7}},
}
CIFAR_SETTINGS: dict[str, Any] = {"epochs": 200, "batch_size": 256, "optimizer": "adam", "schedule": "none",
                                  "normalization": "unit", "val_fraction": 0.0, "tp_patience": None}
CIFAR_MODEL: dict[str, Any] = {"width": 1024, "depth": 6, "dtype": "float64", "init": "orthogonal"}

#: --quick: the same code path on a tiny problem (smoke numbers, never results)
QUICK_SETTINGS: dict[str, Any] = {"epochs": 1, "train_limit": 240, "test_limit": 300}
QUICK_MODEL: dict[str, Any] = {"width": 32, "depth": 2}
ALIGNMENT_BATCH = 256


class CreditAlignmentTracker(AlignmentTracker):
    """Per-epoch alignment of the whole update (``alignment``, regularizer included: what ``.grad`` holds)
    and of its credit-assignment part alone (``alignment_local``: the same rule with λ = 0, sharing the
    model and the rule's state), which is what is compared with BP's gradient in the angle figure."""

    def on_epoch_end(self, rule: Rule, epoch: int) -> dict[str, Any]:  # noqa: D102
        out = super().on_epoch_end(rule, epoch)
        if out and getattr(rule, "orthogonality", 0.0):
            out["alignment_local"] = measure_local_alignment(rule, self.inputs, self.targets)
        return out


def measure_local_alignment(rule: Rule, inputs: Any, targets: Any) -> dict[str, dict[str, float]]:
    """measure_alignment of ``rule``'s update without its orthogonality regularizer (a shallow twin that
    shares the model and the rule's buffers)."""
    twin = copy.copy(rule)
    if getattr(rule, "orthogonality", 0.0):
        twin.orthogonality = 0.0
    device = next(rule.model.parameters()).device
    return measure_alignment(twin, inputs.to(device), targets.to(device))


def _options(ctx: ExperimentContext) -> dict[str, Any]:
    return {k: v for k, v in (getattr(ctx, "options", None) or {}).items() if v is not None}


def _angles(alignment: dict[str, dict[str, float]]) -> dict[str, float]:
    """{weight name: angle to the true gradient (degrees)} from an alignment measurement."""
    return {name: m["angle_deg"] for name, m in alignment.items() if name.endswith("weight")}


def _local(epoch: dict[str, Any]) -> dict[str, dict[str, float]]:
    """An epoch's alignment without the regularizer (the whole update's where the rule has none)."""
    return epoch.get("alignment_local") or epoch.get("alignment", {})


def _peak_and_final(history: list[dict[str, Any]]) -> dict[str, Any]:
    best = max(history, key=lambda r: r["test_accuracy"])
    last = history[-1]
    return {"test_accuracy_final": last["test_accuracy"], "test_accuracy_peak": best["test_accuracy"],
            "peak_epoch": best["epoch"], "train_accuracy_final": last["train_accuracy"],
            "train_loss_final": last["train_loss"], "epochs_run": len(history)}


def _run_rules(ctx: ExperimentContext, name: str, dataset: str, rules: dict[str, dict[str, Any]],
               settings: dict[str, Any], model_options: dict[str, Any], papers: dict[str, Any]
               ) -> list[dict[str, Any]]:
    """Train every rule on the same seeded network and the same training images; one record per rule
    (with per-epoch angles). Only rules marked ``early_stopping`` evaluate the validation split."""
    from creditlab.train import train_from_names

    options = _options(ctx)
    full_epochs = settings["epochs"]
    settings = {**settings, **({} if not ctx.quick else QUICK_SETTINGS)}
    model_options = {**model_options, **({} if not ctx.quick else QUICK_MODEL)}
    for key in ("epochs", "train_limit", "test_limit", "time_budget_s", "val_fraction", "tp_patience"):
        if key in options:
            settings[key] = options[key]
    for key in ("width", "depth"):
        if key in options:
            model_options[key] = options[key]
    chosen = list(options.get("rules") or rules)
    unknown = [r for r in chosen if r not in rules]
    if unknown:
        raise CreditlabError(f"{name}: unknown rules {unknown}; valid: {', '.join(rules)}")
    patience = settings.pop("tp_patience") or None
    val_fraction = float(settings.pop("val_fraction"))
    if patience is not None and val_fraction <= 0 and any(rules[r].get("early_stopping") for r in chosen):
        raise CreditlabError(f"{name}: TP's early stopping needs a validation split; set --opt val_fraction "
                             f"to a share in (0, 1), or --opt tp_patience=0 for none")
    data = load_dataset(dataset, ctx.data_dir, ctx.device, val_fraction, ctx.seed, settings["normalization"])
    no_val = dataclasses.replace(data, val_x=data.val_x[:0], val_y=data.val_y[:0])
    records = []
    for label in chosen:
        spec = rules[label]
        stops_early = bool(spec.get("early_stopping")) and patience is not None
        initial: dict[str, Any] = {}

        def trackers(rule: Rule, loaded: Dataset, initial: dict[str, Any] = initial) -> list[AlignmentTracker]:
            inputs, targets = loaded.train_x[:ALIGNMENT_BATCH], loaded.train_y[:ALIGNMENT_BATCH]
            initial.update(_angles(measure_local_alignment(rule, inputs, targets)))  # before any step
            return [CreditAlignmentTracker(inputs, targets)]

        overrides = {**settings, "lr": spec["lr"], "seed": ctx.seed, "device": ctx.device,
                     "val_fraction": val_fraction, "early_stopping": patience if stops_early else None,
                     "out_dir": str(ctx.out_dir / name / label), "progress": False}
        started = time.perf_counter()
        summary = train_from_names(spec["rule"], "invertible-mlp", dataset, ctx.data_dir,
                                   rule_options=copy.deepcopy(spec["rule_options"]), model_options=model_options,
                                   callback_factory=trackers, loaded=data if stops_early else no_val, **overrides)
        reduced = {"epochs": summary["config"]["epochs"], "train_limit": summary["config"]["train_limit"],
                   "test_limit": summary["config"]["test_limit"], "full_protocol_epochs": full_epochs}
        value = papers.get(label)
        final = {**_peak_and_final(summary["history"]), "label": label,
                 "test_accuracy": summary["test_accuracy"], "val_accuracy": summary.get("val_accuracy"),
                 "best_epoch": summary.get("best_epoch"),
                 "stopped_early": summary.get("stopped_early", False),
                 "train_examples": min(len(data.train_x), summary["config"]["train_limit"] or len(data.train_x)),
                 "angles_deg_initial": initial,
                 "angles_deg_final": _angles(_local(summary["history"][-1])),
                 "angles_deg_final_with_regularizer": _angles(summary["history"][-1].get("alignment", {})),
                 "paper_test_accuracy": None if value is None else value.value,
                 "paper_status": "not available" if value is None else value.status,
                 "reduced_protocol": reduced, "quick": ctx.quick}
        config = {**summary["config"], "label": label, "quick": ctx.quick,
                  "departures": "torch Adam defaults; see module docstring"}
        record = make_record("reproduce", f"{name}/{label}", config, final, epochs=summary["history"],
                             wall_time_s=time.perf_counter() - started, device=ctx.device)
        ctx.record(record)
        records.append(record)
    print(render_markdown(summary_tables(records), ctx.out_dir))
    return records


# -- the report's tables -----------------------------------------------------------------------------------

def _budget_key(record: dict[str, Any]) -> tuple[Any, ...]:
    """What must match for BP to stand beside a rule: dataset, network, epochs set, training/test images."""
    config = record.get("config") or {}
    model = config.get("model_options") or {}
    return (config.get("epochs"), config.get("train_limit"), config.get("test_limit"), config.get("batch_size"),
            tuple(sorted((k, str(v)) for k, v in model.items())), bool(config.get("quick")))


def _layer_angles(angles: dict[str, float]) -> str:
    return " / ".join(f"{a:.1f}" for a in angles.values()) if angles else "–"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def summary_tables(records: list[dict[str, Any]]) -> list[Table]:
    """One table of a GAIT-prop reproduction's records: per rule (newest record each) the test accuracy
    (early-stopped rules: of the best validation epoch), the peak over epochs, the budget, BP on the same
    network and budget beside it, the paper's number, and the per-layer angle to BP's gradient."""
    newest: dict[str, dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: str(r.get("timestamp", ""))):
        newest[str(record.get("name", "?")).split("/", 1)[-1]] = record
    known = [*MNIST_RULES, *TP_CURVE_RULES, *CIFAR_RULES]  # rows in the experiments' order, BP first
    newest = dict(sorted(newest.items(), key=lambda item: known.index(item[0]) if item[0] in known else len(known)))
    bp = {_budget_key(r): r for label, r in newest.items() if label == "bp"}
    rows = []
    for label, record in newest.items():
        final, config = record.get("final") or {}, record.get("config") or {}
        accuracy = final.get("test_accuracy", final.get("test_accuracy_final"))
        reference = bp.get(_budget_key(record))
        bp_accuracy = None if reference is None else (reference["final"].get("test_accuracy")
                                                      or reference["final"].get("test_accuracy_final"))
        gap = "–" if accuracy is None or bp_accuracy is None else f"{100 * (accuracy - bp_accuracy):+.2f}"
        reduced = final.get("reduced_protocol") or {}
        budget = f"{final.get('epochs_run', '?')}/{reduced.get('full_protocol_epochs', '?')} ep"
        budget += f" × {final['train_examples'] / 1000:g}k" if final.get("train_examples") else ""
        if final.get("best_epoch") is not None and final.get("stopped_early") is not None \
                and config.get("early_stopping"):
            budget += f", best ep {final['best_epoch']} (val)"
        paper = final.get("paper_status") or "not available"
        if final.get("paper_test_accuracy") is not None:
            paper = f"{_percent(final['paper_test_accuracy'])} ({paper})"
        rows.append([label, _percent(accuracy), _percent(final.get("test_accuracy_peak")), budget,
                     _percent(bp_accuracy), gap, paper, _layer_angles(final.get("angles_deg_initial") or {}),
                     _layer_angles(final.get("angles_deg_final") or {}), f"{record.get('wall_time_s', 0):.0f}"])
    columns = ["rule", "test acc. (%)", "peak test acc. (%)", "budget (epochs run/full × train images)",
               "BP same net (%)", "Δ vs BP (pp)", "paper", "angle to BP, init (°, layer 1 … L)",
               "angle to BP, final (°)", "wall time (s)"]
    devices = sorted({str(r.get("device", "?")) for r in newest.values()})
    total = sum(float(r.get("wall_time_s") or 0) for r in newest.values())
    notes = ["Test accuracy: at the last epoch, or, for a rule with early stopping (TP), at its best validation "
             "epoch (the trainer restores it). Peak test accuracy is the maximum over epochs (optimistic: read "
             "on the test set). BP is trained on the same invertible network, images and budget.",
             "Angles: each weight layer's update without the orthogonality regularizer vs autograd's gradient "
             "of the same loss, on the first 256 training images; `final` is after the last epoch.",
             "Paper: neither paper's test accuracies could be read (creditlab.papers.gaitprop): not available.",
             f"Wall time: each rule's run (training and evaluation, from its record); all {len(rows)} rules "
             f"{total:.0f} s on {', '.join(devices)}."]
    return [Table(columns, rows, notes)]


def plot_angles(records: list[dict[str, Any]]) -> Any:
    """Figure: per rule, the angle of each layer's update to BP's gradient vs epoch (0 = initialization)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in records if r["final"]["label"] != "bp"]
    fig, axes = plt.subplots(1, max(len(shown), 1), figsize=(4 * max(len(shown), 1), 3.2), squeeze=False,
                             sharey=True)
    for axis, record in zip(axes[0], shown, strict=False):
        initial = record["final"]["angles_deg_initial"]
        for layer in initial:
            series = [initial[layer]] + [_local(e).get(layer, {}).get("angle_deg", math.nan)
                                         for e in record["epochs"]]
            axis.plot(range(len(series)), series, marker="o", label=layer.replace(".weight", ""))
        axis.set_title(record["final"]["label"])
        axis.set_xlabel("epoch (0 = init)")
        axis.set_ylim(-3, 100)  # a rule at 0 deg stays visible
    axes[0][0].set_ylabel("angle to BP gradient (deg, no regularizer)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("CIFAR-10 3072-6x1024-10: per-layer angle of each rule's update to BP")
    return fig


def _experiment_options(rules: dict[str, dict[str, Any]]) -> dict[str, ExperimentOption]:
    """The ``--opt`` keys of an experiment that trains ``rules`` (``rules`` chooses among them)."""
    return {
        "epochs": ExperimentOption(None, "epochs per rule (default: the paper's; a stated reduced protocol on CPU)",
                                   type=int, minimum=1),
        "train_limit": ExperimentOption(None, "train on the first N training images (reduced protocol)", type=int,
                                        minimum=1),
        "test_limit": ExperimentOption(None, "test on the first N test images", type=int, minimum=1),
        "time_budget_s": ExperimentOption(None, "per rule: stop after the epoch in which this many seconds pass",
                                          type=float, above=0),
        "rules": ExperimentOption(None, "only these rules, e.g. [bp,gaitprop]", type=list, choices=tuple(rules)),
        "width": ExperimentOption(None, "hidden width (default 784 / 1024)", type=int, minimum=1),
        "depth": ExperimentOption(None, "hidden layers (default 4 / 6)", type=int, minimum=1),
        "val_fraction": ExperimentOption(None, "share of the training set held out for TP's early stopping "
                                               "(default 0.1 on MNIST/Fashion-MNIST, 0 on CIFAR-10)", type=float,
                                         minimum=0, below=1),
        "tp_patience": ExperimentOption(None, "TP's early-stopping patience in epochs (default 10; 0: no early "
                                              "stopping)", type=int, minimum=0),
    }


@register_experiment("gaitprop-mnist", "GAIT-prop 2020: BP, GAIT-prop, TP on a 4x784 invertible MLP, MNIST",
                     options=_experiment_options(MNIST_RULES), summary=summary_tables)
def run_mnist(ctx: ExperimentContext) -> list[dict[str, Any]]:
    """The 2020 README's settings on MNIST (module docstring)."""
    papers = {r: paper.TEST_ACCURACY.get(("mnist", r)) for r in MNIST_RULES}
    return _run_rules(ctx, "gaitprop-mnist", "mnist", MNIST_RULES, MNIST_SETTINGS, MNIST_MODEL, papers)


@register_experiment("gaitprop-fmnist",
                     "GAIT-prop 2020: BP, GAIT-prop, TP on a 4x784 invertible MLP, Fashion-MNIST",
                     options=_experiment_options(MNIST_RULES), summary=summary_tables)
def run_fmnist(ctx: ExperimentContext) -> list[dict[str, Any]]:
    """The 2020 README's settings on Fashion-MNIST (module docstring). KMNIST: not available offline."""
    print(paper.KMNIST_NOTE)
    papers = {r: paper.TEST_ACCURACY.get(("fashion-mnist", r)) for r in MNIST_RULES}
    return _run_rules(ctx, "gaitprop-fmnist", "fashion-mnist", MNIST_RULES, MNIST_SETTINGS, MNIST_MODEL, papers)


@register_experiment("tp-mnist-curve",
                     "GAIT-prop 2020's TP baseline: its learning curve over 100 epochs x 3k images, 4x256, MNIST",
                     options=_experiment_options(TP_CURVE_RULES), summary=summary_tables)
def run_tp_curve(ctx: ExperimentContext) -> list[dict[str, Any]]:
    """TP at the README's settings and at lr 1e-4, BP beside them, over a budget where TP can move."""
    papers = {r: paper.TEST_ACCURACY.get(("mnist", "tp" if r.startswith("tp") else r)) for r in TP_CURVE_RULES}
    return _run_rules(ctx, "tp-mnist-curve", "mnist", TP_CURVE_RULES, TP_CURVE_SETTINGS, TP_CURVE_MODEL, papers)


@register_experiment("gaitprop-cifar10",
                     "GAIT-prop 2021: BP, FA, vanilla and adaptive GAIT-prop on 3072-6x1024-10, per-layer angles",
                     options=_experiment_options(CIFAR_RULES), summary=summary_tables)
def run_cifar10(ctx: ExperimentContext) -> list[dict[str, Any]]:
    """Dalm et al.'s CIFAR-10 settings (module docstring); saves the per-layer angle figure."""
    records = _run_rules(ctx, "gaitprop-cifar10", "cifar10", CIFAR_RULES, CIFAR_SETTINGS, CIFAR_MODEL,
                         dict(paper.CIFAR10_TEST_ACCURACY))
    ctx.figure(plot_angles(records), "gaitprop_cifar10_angles")
    return records


@register_headline("gaitprop", order=50)
def gaitprop_headline(records: list[dict[str, Any]]) -> list[Headline]:
    """Per dataset: GAIT-prop (and TP; on CIFAR-10 vanilla vs adaptive) beside BP on the same net."""
    rows = []
    for experiment, dataset, claim, labels in (
            ("gaitprop-mnist", "MNIST", "GAIT-prop ≈ BP; TP below (test acc. %, 4×784 invertible MLP)",
             ("bp", "gaitprop", "tp")),
            ("gaitprop-fmnist", "Fashion-MNIST", "GAIT-prop ≈ BP; TP below (test acc. %, 4×784 invertible MLP)",
             ("bp", "gaitprop", "tp")),
            ("gaitprop-cifar10", "CIFAR-10", "adaptive rescaling rescues deep GAIT-prop (test acc. %, 3072-6×1024-10)",
             ("bp", "fa", "gaitprop-vanilla", "gaitprop-adaptive"))):
        newest = newest_runs(records, experiment + "/")
        shown = [label for label in labels if label in newest]
        if "bp" not in shown or len(shown) < 2:
            continue
        final = newest["bp"]["final"]
        reduced = final.get("reduced_protocol") or {}
        rows.append(Headline(
            "Ahmad et al. 2020; Dalm et al. 2021", f"{dataset}: {claim}",
            ", ".join(f"{label} {100 * newest[label]['final']['test_accuracy']:.2f}" for label in shown),
            "test accuracies could not be read from either paper", "not available",
            f"{final.get('epochs_run')} of {reduced.get('full_protocol_epochs', '?')} epochs × "
            f"{final.get('train_examples', 0) / 1000:g}k images, seed {newest['bp']['config'].get('seed', 0)}",
            "docs/papers/gaitprop.md"))
    rows.extend(_tp_curve_headline(records))
    return rows


def _tp_curve_headline(records: list[dict[str, Any]]) -> list[Headline]:
    """TP's curve: peak (epoch) and last test accuracy per TP setting, BP beside them."""
    newest = newest_runs(records, "tp-mnist-curve/")
    if "bp" not in newest or not any(label.startswith("tp") for label in newest):
        return []
    parts = [f"bp {100 * newest['bp']['final']['test_accuracy']:.2f}"]
    for label in (label for label in TP_CURVE_RULES if label.startswith("tp") and label in newest):
        final = newest[label]["final"]
        parts.append(f"{label} peak {100 * final['test_accuracy_peak']:.2f} (ep {final['peak_epoch']}), "
                     f"last {100 * final['test_accuracy_final']:.2f} (ep {final['epochs_run']})")
    final = newest["bp"]["final"]
    return [Headline("Ahmad et al. 2020", "MNIST: TP's accuracy peaks, then declines (test acc. %, 4×256 invertible "
                     "MLP, README settings; tp-lr1e-4: BP's lr)", "; ".join(parts),
                     "test accuracies could not be read from either paper", "not available",
                     f"up to {final.get('reduced_protocol', {}).get('full_protocol_epochs', '?')} epochs × "
                     f"{final.get('train_examples', 0) / 1000:g}k images, seed {newest['bp']['config'].get('seed', 0)}",
                     "docs/papers/gaitprop.md")]
