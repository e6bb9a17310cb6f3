"""GEVB reproductions (Clark, Abbott & Chung, NeurIPS 2021): result tables and the width sweep.

``gevb-mnist`` / ``gevb-cifar10``: the authors' protocol (Adam 3e-4, batch 128, inputs in [-1, 1],
at most 200 epochs, stop once an epoch reaches 100% train accuracy, 5 seeds) for GEVB and BP in
the vectorized nets (vnn-fc/conv/lc, nonnegative "+" and mixed-sign) and BP, DFA and DFA+ in the
conventional aReLU nets of the same widths. Every run is one results record carrying the authors'
test/train error beside ours, plus the authors' per-layer alignment angles at initialization and
after training (vectorized rows: exact credit vs GEVB's all-ones credit; DFA rows: exact gradient vs
B e). Markdown tables of seed means, errors and angles beside the authors', are written to
``<out>/<experiment>-table.md``.

Differences from the authors' protocol, kept on purpose: train accuracy for the stopping rule is
the running accuracy of each epoch (the trainer's), checked every epoch rather than every 10; no
runs are excluded.

``gevb-width-sweep`` (not in the authors' code): the per-layer angle at initialization between the
exact credit and GEVB's all-ones credit, and between the GEVB update and the true gradient, vs the
width of a 3-hidden-layer vnn-fc, for nonnegative and mixed-sign nets.

Subsets of a table run from the command line, e.g.::

    python -m creditlab.experiments.gevb --dataset mnist --rows vnn-fc:gevb+,vnn-fc:bp+ --seeds 0,1 \
        --epochs 10 --out results/gevb

and a whole table on a GPU, 12 runs at a time, each stopping after the epoch that passes 20 minutes
(started again, every run continues from its checkpoint)::

    python -m creditlab.experiments.gevb --dataset cifar10 --rows all --seeds 0,1,2,3,4 --device cuda \
        --parallel 12 --time-budget 1200
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from creditlab.data import Dataset, load_dataset
from creditlab.experiments import ExperimentContext, register_experiment
from creditlab.models import build_model
from creditlab.models.vnn import VectorizedNet, credit_alignment_angles
from creditlab.report.render import Table, render_markdown
from creditlab.results import device_type, make_record, read_records
from creditlab.rules import RULES, Rule, build_rule
from creditlab.rules.dfa import DirectFeedbackAlignment

#: authors' test error % (train error %) from notebooks/table.ipynb, gevb_fa.md §1.6;
#: key: (dataset, model, rule label) with "+" = nonnegative
AUTHORS: dict[tuple[str, str, str], tuple[float, float]] = {}
_TABLE = {
    "mnist": {
        "vnn-fc": (1.87, 0.06, 1.93, 0.05, 2.32, 0.33, 1.84, 0.07),
        "arelu-fc": (2.2, 0.3, 1.36, 0.0, 2.09, 0.19, 1.29, 0.0),
        "vnn-conv": (2.33, 1.03, 1.3, 0.19, 1.83, 0.83, 0.8, 0.0),
        "arelu-conv": (1.56, 0.67, 0.71, 0.0, 1.64, 0.42, 0.65, 0.0),
        "vnn-lc": (1.78, 0.0, 1.64, 0.0, 1.84, 0.05, 1.44, 0.0),
        "arelu-lc": (1.98, 0.32, 1.21, 0.0, 1.48, 0.09, 1.07, 0.0),
    },
    "cifar10": {
        "vnn-fc": (47.62, 1.25, 47.03, 0.72, 48.86, 2.02, 45.98, 0.78),
        "arelu-fc": (48.69, 3.28, 45.42, 0.96, 49.54, 2.88, 45.69, 0.73),
        "vnn-conv": (33.74, 28.83, 30.85, 16.29, 38.43, 20.59, 30.54, 1.71),
        "arelu-conv": (54.18, 48.43, 32.13, 0.23, 44.07, 17.25, 28.8, 0.15),
        "vnn-lc": (41.08, 0.83, 41.01, 0.34, 40.11, 0.83, 38.77, 0.36),
        "arelu-lc": (41.18, 10.62, 35.51, 0.0, 39.41, 2.94, 32.32, 0.0),
    },
}
for _dataset, _rows in _TABLE.items():
    for _model, _v in _rows.items():
        _local = "gevb" if _model.startswith("vnn") else "dfa"
        AUTHORS[(_dataset, _model, f"{_local}+")] = (_v[0], _v[1])
        AUTHORS[(_dataset, _model, "bp+")] = (_v[2], _v[3])
        AUTHORS[(_dataset, _model, _local)] = (_v[4], _v[5])
        AUTHORS[(_dataset, _model, "bp")] = (_v[6], _v[7])

#: authors' per-layer alignment angles (degrees, first hidden layer first), mean of 5 runs at
#: initialization and at their last checkpoint (notebooks/alignment_and_concentration_viz.ipynb,
#: gevb_fa.md §1.7). Vectorized rows: exact credit vs all-ones; conventional rows: exact gradient vs B e.
AUTHORS_ANGLES: dict[tuple[str, str, str], tuple[tuple[float, ...], tuple[float, ...]]] = {
    ("mnist", "vnn-fc", "gevb+"): ((9.2, 55.7), (41.3, 57.7)),
    ("mnist", "vnn-conv", "gevb+"): ((11.9, 6.6, 55.6), (56.6, 39.2, 35.7)),
    ("mnist", "vnn-lc", "gevb+"): ((12.2, 6.6, 55.5), (52.0, 47.3, 50.6)),
    ("mnist", "vnn-fc", "gevb"): ((89.5, 91.6), (62.1, 74.7)),
    ("mnist", "arelu-fc", "dfa"): ((90.1, 89.5), (64.8, 67.0)),
    ("mnist", "arelu-conv", "dfa"): ((90.0, 90.0, 90.1), (89.7, 89.0, 75.0)),
    ("cifar10", "vnn-fc", "gevb+"): ((4.0, 9.0, 55.6), (18.8, 35.0, 56.7)),
    ("cifar10", "vnn-conv", "gevb+"): ((14.1, 13.8, 6.6, 56.0), (42.9, 50.3, 44.8, 48.0)),
    ("cifar10", "vnn-conv", "gevb"): ((89.8, 90.1, 88.9, 90.7), (68.7, 61.0, 74.2, 33.4)),
    ("cifar10", "arelu-conv", "dfa"): ((90.0, 90.1, 90.5, 89.7), (89.6, 88.4, 82.5, 65.1)),
    ("cifar10", "arelu-conv", "dfa+"): ((90.0, 90.1, 90.6, 89.8), (89.8, 88.1, 77.0, 65.6)),
    ("cifar10", "vnn-lc", "gevb+"): ((15.1, 20.4, 13.0, 56.1), (38.3, 41.8, 23.1, 39.7)),
}


@dataclass(frozen=True)
class Row:
    """One table cell: a model, a rule label (``gevb+``, ``bp``, ``dfa+`` ...), read as rule + sign."""

    model: str
    label: str

    @property
    def nonnegative(self) -> bool:
        return self.label.endswith("+")

    @property
    def rule(self) -> str:
        """Registered rule name: ``dfa+`` is its own rule; ``gevb+``/``bp+`` are gevb/bp on a '+' net."""
        return self.label if self.label == "dfa+" else self.label.rstrip("+")

    @property
    def model_options(self) -> dict[str, Any]:
        if self.model.startswith("vnn"):
            return {"mixed_sign": not self.nonnegative}
        return {"nonnegative": self.nonnegative}

    @property
    def name(self) -> str:
        return f"{self.model}:{self.label}"


def all_rows() -> list[Row]:
    """Every cell of the authors' tables (48 per dataset with 2 datasets: 24 here)."""
    rows = []
    for arch in ("fc", "conv", "lc"):
        rows += [Row(f"vnn-{arch}", label) for label in ("gevb+", "bp+", "gevb", "bp")]
        rows += [Row(f"arelu-{arch}", label) for label in ("dfa+", "bp+", "dfa", "bp")]
    return rows


def parse_rows(spec: str) -> list[Row]:
    """``vnn-fc:gevb+,arelu-conv:dfa`` -> rows."""
    rows = []
    for item in spec.split(","):
        model, _, label = item.strip().partition(":")
        if not label:
            raise ValueError(f"row {item!r}: expected MODEL:LABEL, e.g. vnn-fc:gevb+")
        rows.append(Row(model, label))
    return rows


def paper_angles(rule: Rule, inputs: torch.Tensor, targets: torch.Tensor) -> list[float] | None:
    """The authors' per-hidden-layer alignment angles (degrees) on a fixed batch, or None where they
    define none: in a VNN, exact credit vs GEVB's all-ones credit (any rule, it is a property of the
    weights); in a conventional net trained by DFA/DFA+, exact gradient vs the DFA signal B e."""
    if isinstance(rule.model, VectorizedNet):
        return credit_alignment_angles(rule.model, inputs)
    if isinstance(rule, DirectFeedbackAlignment):
        return list(rule.signal_angles(inputs, targets).values())
    return None


class CreditAngleTracker:
    """Trainer callback: :func:`paper_angles` on a fixed batch every ``every`` epochs."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, every: int = 1) -> None:
        self.inputs, self.targets, self.every = inputs, targets, every

    def on_epoch_end(self, rule: Rule, epoch: int) -> dict[str, Any]:  # noqa: D102
        if epoch % self.every:
            return {}
        angles = paper_angles(rule, self.inputs, self.targets)
        return {} if angles is None else {"credit_angles": angles}


def run_row(ctx: ExperimentContext, experiment: str, dataset_name: str, data: Dataset, row: Row, seed: int,
            epochs: int, train_limit: int | None = None, test_limit: int | None = None,
            time_budget_s: float | None = None) -> dict[str, Any]:
    """Train one (row, seed), record it (with the authors' numbers) and return the record.

    With ``time_budget_s`` the run checkpoints every epoch and stops after the epoch that exhausts the
    budget; started again, it continues from its checkpoint (bit-identical to an uninterrupted run).
    """
    from creditlab.train import train_from_names

    if row.rule not in RULES:
        raise ValueError(f"rule {row.rule!r} is not registered")
    probe, probe_targets = data.train_x[:128], data.train_y[:128]  # authors: first 128, unshuffled
    init_angles: list[float] | None = None

    def callbacks(rule: Rule, _data: Dataset) -> list[CreditAngleTracker]:
        nonlocal init_angles
        init_angles = paper_angles(rule, probe, probe_targets)  # built, not yet resumed: initialization
        every = 1 if time_budget_s is not None else max(1, min(10, epochs // 4))  # authors: every 10
        return [CreditAngleTracker(probe, probe_targets, every=every)]

    started = time.perf_counter()
    common = dict(rule=row.rule, model=row.model, dataset=dataset_name, loaded=data,
                  model_options={**row.model_options, "seed": seed}, callback_factory=callbacks, seed=seed,
                  device=ctx.device, progress=False, train_limit=train_limit, test_limit=test_limit)
    if time_budget_s is None:
        summary = train_from_names(epochs=epochs, **common)
        wall_time_s = time.perf_counter() - started
    else:
        checkpoint_dir = ctx.out_dir / "checkpoints" / f"{experiment}-{row.model}-{row.label}-seed{seed}"
        summary = train_from_names(epochs=epochs, out_dir=str(checkpoint_dir), resume=True,
                                   time_budget_s=time_budget_s, **common)
        wall_time_s = summary["wall_time_s"]  # the trainer sums it over every invocation of this run
    history = summary["history"]
    final_angles = next((h["credit_angles"] for h in reversed(history) if "credit_angles" in h), None)
    authors = AUTHORS.get((dataset_name, row.model, row.label))
    final = {
        "test_error_pct": 100 * (1 - summary["test_accuracy"]),
        "train_error_pct": 100 * (1 - summary["train_accuracy"]),
        "epochs": summary["epochs"],
        "reached_100pct_train": summary["train_accuracy"] >= 1.0,
        "credit_angles_init": init_angles,
        "credit_angles_final": final_angles,
        "authors_test_error_pct": authors[0] if authors else None,
        "authors_train_error_pct": authors[1] if authors else None,
    }
    config = {"experiment": experiment, "dataset": dataset_name, "model": row.model, "label": row.label,
              "rule": row.rule, "model_options": row.model_options, "seed": seed, "max_epochs": epochs,
              "time_budget_s": time_budget_s,
              "train_limit": train_limit, "test_limit": test_limit, **summary["config"]}
    record = make_record("reproduce", f"{experiment}/{row.name}", config, final, history, wall_time_s,
                         ctx.device)
    ctx.record(record)
    return record


def latest_per_run(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per (row, seed, data limits, device type): the last one written.

    A time-budgeted run that is continued writes a record at every invocation; only its newest one
    describes the run. Runs on different devices or data limits stay separate rows of the table.
    """
    latest: dict[tuple[Any, ...], dict[str, Any]] = {}
    for rec in records:
        config = rec["config"]
        key = (config["model"], config["label"], config.get("seed"), config.get("train_limit"),
               config.get("test_limit"), device_type(rec.get("device", "")))
        latest.pop(key, None)
        latest[key] = rec  # re-inserted: the table keeps the order in which runs last reported
    return list(latest.values())


def error_table(dataset_name: str, records: list[dict[str, Any]]) -> Table:
    """Seed means of our test (train) error beside the authors', one line per row, device and data limit
    (the newest record of every run; see :func:`latest_per_run`)."""
    header = [f"{dataset_name} row", "device", "train examples", "ours: test err % (train)", "seeds", "epochs",
              "authors: test err % (train)"]
    by_row: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for rec in latest_per_run(records):
        config = rec["config"]
        limit = str(config.get("train_limit") or "all")
        by_row.setdefault((f"{config['model']}:{config['label']}", device_type(rec.get("device", "")), limit),
                          []).append(rec)
    rows = []
    for (name, device, limit), recs in sorted(by_row.items()):
        test = statistics.mean(r["final"]["test_error_pct"] for r in recs)
        train = statistics.mean(r["final"]["train_error_pct"] for r in recs)
        epochs = ",".join(str(r["final"]["epochs"]) for r in recs)
        first = recs[0]["final"]
        a_test, a_train = first["authors_test_error_pct"], first["authors_train_error_pct"]
        authors = f"{a_test} ({a_train})" if a_test is not None else "-"
        rows.append([name, device, limit, f"{test:.2f} ({train:.2f})", str(len(recs)), epochs, authors])
    return Table(header, rows)


def _layer_means(lists: list[list[float]]) -> str:
    """Per-layer mean of equal-length angle lists, as '9.2, 55.3'."""
    return ", ".join(f"{statistics.mean(values):.1f}" for values in zip(*lists, strict=True))


def angle_table(dataset_name: str, records: list[dict[str, Any]]) -> Table:
    """Per-layer alignment angles (first hidden layer first) at initialization and at the end of our
    runs (seed means of the newest record per run) beside the authors' 5-run means (note §1.7); rows
    the authors report without a record of ours carrying angles say "no record"."""
    header = [f"{dataset_name} row", "device", "seeds", "epochs", "ours: init (deg)", "ours: final (deg)",
              "authors: init (deg)", "authors: final (deg)"]
    by_row: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for rec in latest_per_run(records):
        config, final = rec["config"], rec["final"]
        if final.get("credit_angles_init") and final.get("credit_angles_final"):
            key = (config["model"], config["label"], device_type(rec.get("device", "")))
            by_row.setdefault(key, []).append(rec)
    for dataset, model, label in AUTHORS_ANGLES:
        if dataset == dataset_name and not any(key[:2] == (model, label) for key in by_row):
            by_row[(model, label, "-")] = []
    rows = []
    for (model, label, device), recs in sorted(by_row.items()):
        authors = AUTHORS_ANGLES.get((dataset_name, model, label))
        a_init, a_final = (", ".join(f"{v:.1f}" for v in part) for part in authors) if authors else ("-", "-")
        if recs:
            rows.append([f"{model}:{label}", device, str(len(recs)), ",".join(str(r["final"]["epochs"]) for r in recs),
                         _layer_means([r["final"]["credit_angles_init"] for r in recs]),
                         _layer_means([r["final"]["credit_angles_final"] for r in recs]), a_init, a_final])
        else:
            rows.append([f"{model}:{label}", "-", "0", "-", "no record", "no record", a_init, a_final])
    note = ("Angles: vectorized rows, exact credit vs GEVB's all-ones credit; DFA rows, exact gradient vs the "
            "DFA signal B e where it enters; mean over the first 128 training images.")
    return Table(header, rows, [note])


def summary_tables(dataset_name: str, records: list[dict[str, Any]]) -> list[Table]:
    """The error table and the angle table of one dataset's records."""
    return [error_table(dataset_name, records), angle_table(dataset_name, records)]


def write_table(ctx: ExperimentContext, experiment: str, dataset_name: str) -> Path | None:
    """Rewrite ``<out_dir>/<experiment>-table.md`` from every record of the experiment in the results file."""
    stored = [r for r in read_records(ctx.out_dir / "results.jsonl")
              if r.get("kind") == "reproduce" and r.get("name", "").startswith(f"{experiment}/")]
    if not stored:
        return None
    path = ctx.out_dir / f"{experiment}-table.md"
    path.write_text(render_markdown(summary_tables(dataset_name, stored), ctx.out_dir))
    return path


def run_table(ctx: ExperimentContext, experiment: str, dataset_name: str, rows: list[Row], seeds: list[int],
              epochs: int, train_limit: int | None = None, test_limit: int | None = None,
              time_budget_s: float | None = None) -> list[dict[str, Any]]:
    """Train every (row, seed); rows whose rule is not registered are skipped with a note."""
    data = load_dataset(dataset_name, ctx.data_dir, ctx.device, 0.0, 0, "symmetric")
    records = []
    for row in rows:
        if row.rule not in RULES:
            print(f"skipping {row.name}: rule {row.rule!r} is not registered")
            continue
        for seed in seeds:
            rec = run_row(ctx, experiment, dataset_name, data, row, seed, epochs, train_limit, test_limit,
                          time_budget_s)
            f = rec["final"]
            print(f"{experiment} {row.name} seed {seed}: test err {f['test_error_pct']:.2f}% train err "
                  f"{f['train_error_pct']:.2f}% after {f['epochs']} epochs "
                  f"(authors {f['authors_test_error_pct']})", flush=True)
            records.append(rec)
    if records:  # the table covers every record of this experiment in the results file
        write_table(ctx, experiment, dataset_name)
    return records


def _table_experiment(ctx: ExperimentContext, experiment: str, dataset_name: str) -> list[dict[str, Any]]:
    if ctx.quick:  # smoke run of the same code path: FC rows, 1 seed, 2 epochs on 2048 examples
        rows = [Row("vnn-fc", "gevb+"), Row("vnn-fc", "bp+"), Row("arelu-fc", "dfa+"),
                Row("arelu-fc", "bp+")]
        return run_table(ctx, experiment, dataset_name, rows, [ctx.seed], 2, train_limit=2048,
                         test_limit=2000)
    return run_table(ctx, experiment, dataset_name, all_rows(), [ctx.seed + s for s in range(5)], 200)


@register_experiment("gevb-mnist",
                     "Clark et al. 2021 Table (MNIST): GEVB/BP in VNNs vs BP/DFA/DFA+ in aReLU nets",
                     summary=lambda records: summary_tables("mnist", records))
def gevb_mnist(ctx: ExperimentContext) -> list[dict[str, Any]]:  # noqa: D103
    return _table_experiment(ctx, "gevb-mnist", "mnist")


@register_experiment("gevb-cifar10", "Clark et al. 2021 Table (CIFAR-10): GEVB/BP in VNNs vs BP/DFA/DFA+",
                     summary=lambda records: summary_tables("cifar10", records))
def gevb_cifar10(ctx: ExperimentContext) -> list[dict[str, Any]]:  # noqa: D103
    return _table_experiment(ctx, "gevb-cifar10", "cifar10")


# -- width sweep -------------------------------------------------------------------------------------

def _angle(a: torch.Tensor, b: torch.Tensor) -> float:
    cos = torch.dot(a.flatten(), b.flatten()) / (a.norm() * b.norm())
    return math.degrees(math.acos(float(cos.clamp(-1.0, 1.0))))


def init_alignment(width: int, depth: int, mixed_sign: bool, seed: int, inputs: torch.Tensor,
                   targets: torch.Tensor) -> dict[str, list[float]]:
    """Per hidden layer at init: credit angle (authors' metric) and angle(GEVB update, true gradient)."""
    net = build_model("vnn-fc", tuple(inputs.shape[1:]), 10, hidden=(width,) * depth, mixed_sign=mixed_sign,
                      seed=seed)
    rule = build_rule("gevb", net)
    rule.step(inputs, targets)
    true = rule.true_gradients(inputs, targets)
    update_angles = [_angle(layer.weight.grad, true[f"layers.{index}.weight"])
                     for index, layer in net.weight_layers()[:-1]]
    return {"credit": credit_alignment_angles(net, inputs), "update": update_angles}


@register_experiment("gevb-width-sweep",
                     "angle at init vs width, nonnegative vs mixed-sign VNNs (not in the authors' code)")
def gevb_width_sweep(ctx: ExperimentContext) -> list[dict[str, Any]]:  # noqa: D103
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    widths = [16, 64, 256, 1024] if ctx.quick else [16, 32, 64, 128, 256, 512, 1024, 2048]
    seeds = [ctx.seed + s for s in range(2 if ctx.quick else 4)]
    depth, batch = 3, 64
    data = load_dataset("mnist", ctx.data_dir, ctx.device, 0.0, 0, "symmetric")
    inputs, targets = data.train_x[:batch], data.train_y[:batch]
    started = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    for sign in ("nonnegative", "mixed"):
        per_width = []
        for width in widths:
            runs = [init_alignment(width, depth, sign == "mixed", seed, inputs, targets) for seed in seeds]
            entry: dict[str, Any] = {"width": width}
            for metric in ("credit", "update"):
                values = list(zip(*[run[metric] for run in runs], strict=True))  # per layer
                entry[f"{metric}_mean"] = [statistics.mean(v) for v in values]
                entry[f"{metric}_sd"] = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
            per_width.append(entry)
            print(f"width {width} {sign}: credit angles {[round(a, 1) for a in entry['credit_mean']]}, "
                  f"update angles {[round(a, 1) for a in entry['update_mean']]}", flush=True)
        results[sign] = {"per_width": per_width}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, metric, title in ((axes[0], "credit", "exact credit vs all-ones (authors' metric)"),
                              (axes[1], "update", "GEVB update vs true gradient")):
        for sign, style in (("nonnegative", "-"), ("mixed", "--")):
            rows = results[sign]["per_width"]
            for layer in range(depth):
                ax.errorbar(widths, [r[f"{metric}_mean"][layer] for r in rows],
                            yerr=[r[f"{metric}_sd"][layer] for r in rows], linestyle=style, marker="o",
                            color=f"C{layer}", label=f"{sign} layer {layer + 1}", capsize=2)
        ax.axhline(math.degrees(math.acos(1 / math.sqrt(math.pi))), color="gray", linewidth=0.8,
                   linestyle=":")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("hidden width (3 hidden layers, vnn-fc)")
        ax.set_title(title)
    axes[0].set_ylabel("angle at initialization (degrees)")
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    path = ctx.figure(fig, "gevb_width_sweep")
    config = {"widths": widths, "seeds": seeds, "depth": depth, "batch": batch, "dataset": "mnist",
              "normalization": "symmetric", "quick": ctx.quick}
    final = {**results, "figure": str(path),
             "analytic_last_layer_deg": math.degrees(math.acos(1 / math.sqrt(math.pi)))}
    record = make_record("reproduce", "gevb-width-sweep", config, final, None, time.perf_counter() - started,
                         ctx.device)
    ctx.record(record)
    return [record]


def main() -> None:
    """Run a subset of a GEVB table from the command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description="Train rows of the GEVB tables.")
    parser.add_argument("--dataset", default="mnist", choices=["mnist", "cifar10"])
    parser.add_argument("--rows", default="vnn-fc:gevb+,vnn-fc:bp+", help="MODEL:LABEL,... or 'all'")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--train-limit", type=int, default=None)
    parser.add_argument("--out", default="results/gevb")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--time-budget", type=float, default=None,
                        help="seconds per (row, seed): stop after the epoch that exceeds it")
    parser.add_argument("--test-limit", type=int, default=None)
    parser.add_argument("--parallel", type=int, default=1,
                        help="train this many (row, seed) runs at once, each in its own process "
                             "(e.g. to fill a GPU; start MPS first so they share it well)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = all_rows() if args.rows == "all" else parse_rows(args.rows)
    seeds = [int(s) for s in args.seeds.split(",")]
    ctx = ExperimentContext(quick=False, device=args.device, out_dir=Path(args.out), data_dir=args.data_dir)
    experiment = f"gevb-{args.dataset}"
    if args.parallel > 1:
        run_in_processes(args, rows, seeds, args.parallel)
        write_table(ctx, experiment, args.dataset)
        return
    run_table(ctx, experiment, args.dataset, rows, seeds, args.epochs, train_limit=args.train_limit,
              test_limit=args.test_limit, time_budget_s=args.time_budget)


def run_in_processes(args: argparse.Namespace, rows: list[Row], seeds: list[int], processes: int) -> None:
    """Run every (row, seed) as its own ``python -m creditlab.experiments.gevb`` process, ``processes``
    at a time; each writes its record (and checkpoints) into the shared output folder."""
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    shared = ["--dataset", args.dataset, "--epochs", str(args.epochs), "--out", args.out, "--device", args.device]
    for flag, value in (("--data-dir", args.data_dir), ("--threads", args.threads),
                        ("--time-budget", args.time_budget), ("--train-limit", args.train_limit),
                        ("--test-limit", args.test_limit)):
        if value is not None:
            shared += [flag, str(value)]
    jobs = [(f"{row.name} seed {seed}",
             [sys.executable, "-m", "creditlab.experiments.gevb", "--rows", row.name, "--seeds", str(seed), *shared])
            for row in rows if row.rule in RULES for seed in seeds]
    with ThreadPoolExecutor(processes) as pool:  # each thread waits on its own child process
        codes = list(pool.map(lambda job: subprocess.run(job[1]).returncode, jobs))
    failed = [name for (name, _), code in zip(jobs, codes, strict=True) if code]
    if failed:
        raise SystemExit(f"{len(failed)} run(s) failed: " + "; ".join(failed))


if __name__ == "__main__":
    main()
