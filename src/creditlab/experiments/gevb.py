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
runs are excluded. The recorded ``train_error_pct`` is that running error too (the tables say so),
not an evaluation of the final weights on the training set as the authors' train error is.

``gevb-width-sweep`` (not in the authors' code): the per-layer angle at initialization between the
exact credit and GEVB's all-ones credit, and between the GEVB update and the true gradient, vs the
width of a 3-hidden-layer vnn-fc, for nonnegative and mixed-sign nets.

Subsets of a table run from the command line, e.g.::

    creditlab reproduce gevb-mnist --opt rows=vnn-fc:gevb+,vnn-fc:bp+ --opt seeds=[0,1] \
        --opt epochs=10 --out results/gevb

and a whole table on a GPU, 12 runs at a time, each stopping after the epoch that passes 20 minutes
(started again, every run continues from its checkpoint)::

    creditlab reproduce gevb-cifar10 --opt rows=all --opt seeds=[0,1,2,3,4] --device cuda \
        --opt parallel=12 --opt time_budget=1200 --out results/gevb
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from creditlab.data import Dataset, load_dataset
from creditlab.errors import CreditlabError, OptionError
from creditlab.experiments import ExperimentContext, ExperimentOption, register_experiment, register_headline
from creditlab.models import build_model
from creditlab.models.vnn import VectorizedNet, credit_alignment_angles
from creditlab.papers import gevb as paper_gevb
from creditlab.papers.gevb import label_to_rule
from creditlab.report.headline import Headline, least_sure
from creditlab.report.render import Table, render_markdown
from creditlab.results import device_type, make_record, read_records
from creditlab.rules import RULES, Rule, build_rule
from creditlab.rules.dfa import DirectFeedbackAlignment


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
        return label_to_rule(self.model, self.label)[0]

    @property
    def model_options(self) -> dict[str, Any]:
        return label_to_rule(self.model, self.label)[1]

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
            raise OptionError(f"row {item!r}: expected MODEL:LABEL, e.g. vnn-fc:gevb+")
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
    authors_test = paper_gevb.TEST_ERROR.get((dataset_name, row.model, row.label))
    authors_train = paper_gevb.TRAIN_ERROR.get((dataset_name, row.model, row.label))
    final = {
        "test_error_pct": 100 * (1 - summary["test_accuracy"]),
        "train_error_pct": 100 * (1 - summary["train_accuracy"]),
        "epochs": summary["epochs"],
        "reached_100pct_train": summary["train_accuracy"] >= 1.0,
        "credit_angles_init": init_angles,
        "credit_angles_final": final_angles,
        "authors_test_error_pct": authors_test.value if authors_test else None,
        "authors_train_error_pct": authors_train.value if authors_train else None,
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


TRAIN_ERROR_NOTE = ("Our train error is the running error during the epoch (mean over the epoch's batches while "
                    "the weights change, as the trainer logs it), not an evaluation of the final weights on the "
                    "training set as the authors' train error is; it overstates the error of the trained net.")


def _authors_cell(dataset_name: str, model: str, label: str) -> str:
    """The authors' ``test (train)`` error, with the table's status where it is not verified."""
    test = paper_gevb.TEST_ERROR.get((dataset_name, model, label))
    if test is None:
        return "-"
    train = paper_gevb.TRAIN_ERROR[(dataset_name, model, label)]
    status = "" if test.status == "verified" else f" [{test.status}]"
    return f"{test.value} ({train.value}){status}"


def error_table(dataset_name: str, records: list[dict[str, Any]]) -> Table:
    """Seed means of our test (train) error beside the authors', one line per row, device and data limit
    (the newest record of every run; see :func:`latest_per_run`). The authors' numbers come from
    ``creditlab.papers.gevb`` (with their status), not from the records."""
    header = [f"{dataset_name} row", "device", "train examples",
              "ours: test err % (train err %, running, during epoch)", "seeds", "epochs",
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
        model, _, label = name.partition(":")
        rows.append([name, device, limit, f"{test:.2f} ({train:.2f})", str(len(recs)), epochs,
                     _authors_cell(dataset_name, model, label)])
    status = {v.status for (d, _, _), v in paper_gevb.TEST_ERROR.items() if d == dataset_name}
    notes = [TRAIN_ERROR_NOTE, f"Authors: {paper_gevb.SOURCE}; status {', '.join(sorted(status))}"
             + (f" ({paper_gevb.TABLE_NOTE[dataset_name]})." if paper_gevb.TABLE_NOTE.get(dataset_name) else ".")]
    return Table(header, rows, notes)


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
    for dataset, model, label in paper_gevb.ALIGNMENT_ANGLES:
        if dataset == dataset_name and not any(key[:2] == (model, label) for key in by_row):
            by_row[(model, label, "-")] = []
    rows = []
    for (model, label, device), recs in sorted(by_row.items()):
        authors = paper_gevb.ALIGNMENT_ANGLES.get((dataset_name, model, label))
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
            print(f"{experiment} {row.name} seed {seed}: test err {f['test_error_pct']:.2f}% running train err "
                  f"{f['train_error_pct']:.2f}% after {f['epochs']} epochs "
                  f"(authors {f['authors_test_error_pct']})", flush=True)
            records.append(rec)
    if records:  # the table covers every record of this experiment in the results file
        write_table(ctx, experiment, dataset_name)
    return records


def _check_rows(value: Any) -> None:
    """``rows``: ``all`` or MODEL:LABEL items (ValueError from :func:`parse_rows` otherwise)."""
    if value != "all":
        parse_rows(",".join(str(item) for item in (value if isinstance(value, list | tuple) else [value])))


TABLE_OPTIONS = {
    "rows": ExperimentOption(None, "MODEL:LABEL,... (e.g. vnn-fc:gevb+,arelu-conv:dfa) or all [default: all; "
                                   "quick: the four FC rows vnn-fc:gevb+,vnn-fc:bp+,arelu-fc:dfa+,arelu-fc:bp+]",
                             type=list, item=str, single=True, check=_check_rows),
    "seeds": ExperimentOption(None, "seeds, e.g. [0,1] [default: SEED..SEED+4; quick: [SEED]]", type=list, item=int,
                              minimum=0, single=True),
    "epochs": ExperimentOption(None, "at most this many epochs [default: 200; quick: 2]", type=int, minimum=1),
    "train_limit": ExperimentOption(None, "train on the first N images [default: all; quick: 512]", type=int,
                                    minimum=1),
    "test_limit": ExperimentOption(None, "test on the first N images [default: all; quick: 500]", type=int,
                                   minimum=1),
    "time_budget": ExperimentOption(None, "seconds per (row, seed): stop after the epoch that exceeds it; "
                                          "started again, a run continues from its checkpoint", type=float,
                                    minimum=0),
    "parallel": ExperimentOption(1, "train this many (row, seed) runs at once, each in its own process "
                                    "(e.g. to fill a GPU; start MPS first so they share it well)", minimum=1),
}


def _rows_option(value: Any) -> list[Row]:
    if value == "all":
        return all_rows()
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    try:
        return parse_rows(",".join(str(item) for item in items))
    except ValueError as error:
        raise CreditlabError(f"--opt rows={value!r}: {error}") from error


def _int_option(options: dict[str, Any], key: str, default: int | None, minimum: int = 1) -> int | None:
    value = options.get(key)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise CreditlabError(f"--opt {key}={value!r}: expected an integer >= {minimum}")
    return value


def _table_experiment(ctx: ExperimentContext, experiment: str, dataset_name: str) -> list[dict[str, Any]]:
    """One GEVB table; the quick mode is a smoke run of the same code path (FC rows, 1 seed, 2 epochs on
    512 examples). ``ctx.options`` (:data:`TABLE_OPTIONS`) choose rows, seeds and budgets."""
    options = ctx.options
    rows = _rows_option(options["rows"]) if options.get("rows") is not None else (
        [Row("vnn-fc", "gevb+"), Row("vnn-fc", "bp+"), Row("arelu-fc", "dfa+"), Row("arelu-fc", "bp+")]
        if ctx.quick else all_rows())
    seeds_value = options.get("seeds")
    if seeds_value is None:
        seeds = [ctx.seed] if ctx.quick else [ctx.seed + s for s in range(5)]
    else:
        seeds = [seeds_value] if isinstance(seeds_value, int) else list(seeds_value)
        if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            raise CreditlabError(f"--opt seeds={seeds_value!r}: expected an integer or a list, e.g. [0,1]")
    epochs = _int_option(options, "epochs", 2 if ctx.quick else 200)
    train_limit = _int_option(options, "train_limit", 512 if ctx.quick else None)
    test_limit = _int_option(options, "test_limit", 500 if ctx.quick else None)
    budget = options.get("time_budget")
    if budget is not None and (not isinstance(budget, int | float) or isinstance(budget, bool) or budget < 0):
        raise CreditlabError(f"--opt time_budget={budget!r}: expected seconds >= 0")
    parallel = _int_option(options, "parallel", 1)
    if parallel and parallel > 1:
        run_in_processes(ctx, experiment, rows, seeds, parallel)
        write_table(ctx, experiment, dataset_name)
        return [r for r in read_records(ctx.out_dir / "results.jsonl")
                if r.get("name", "").startswith(f"{experiment}/")]
    return run_table(ctx, experiment, dataset_name, rows, seeds, epochs, train_limit=train_limit,
                     test_limit=test_limit, time_budget_s=budget)


def run_in_processes(ctx: ExperimentContext, experiment: str, rows: list[Row], seeds: list[int],
                     processes: int) -> None:
    """Run every (row, seed) as its own ``creditlab reproduce`` process, ``processes`` at a time; each
    writes its record (and checkpoints) into the shared output folder."""
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    shared = ["--out", str(ctx.out_dir), "--device", ctx.device, "--threads", str(torch.get_num_threads())]
    if ctx.data_dir is not None:
        shared += ["--data-dir", str(ctx.data_dir)]
    if ctx.quick:
        shared.append("--quick")
    for key, value in ctx.options.items():
        if key not in ("rows", "seeds", "parallel") and value is not None:
            shared += ["--opt", f"{key}={value}"]
    jobs = [(f"{row.name} seed {seed}",
             [sys.executable, "-m", "creditlab", "reproduce", experiment, "--opt", f"rows={row.name}",
              "--opt", f"seeds={seed}", *shared])
            for row in rows if row.rule in RULES for seed in seeds]
    with ThreadPoolExecutor(processes) as pool:  # each thread waits on its own child process
        codes = list(pool.map(lambda job: subprocess.run(job[1]).returncode, jobs))
    failed = [name for (name, _), code in zip(jobs, codes, strict=True) if code]
    if failed:
        raise CreditlabError(f"{len(failed)} run(s) failed: " + "; ".join(failed))


@register_experiment("gevb-mnist",
                     "Clark et al. 2021 Table (MNIST): GEVB/BP in VNNs vs BP/DFA/DFA+ in aReLU nets",
                     summary=lambda records: summary_tables("mnist", records), options=TABLE_OPTIONS)
def gevb_mnist(ctx: ExperimentContext) -> list[dict[str, Any]]:  # noqa: D103
    return _table_experiment(ctx, "gevb-mnist", "mnist")


@register_experiment("gevb-cifar10", "Clark et al. 2021 Table (CIFAR-10): GEVB/BP in VNNs vs BP/DFA/DFA+",
                     summary=lambda records: summary_tables("cifar10", records), options=TABLE_OPTIONS)
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

    widths = [16, 64, 256] if ctx.quick else [16, 32, 64, 128, 256, 512, 1024, 2048]
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


def _gevb_headline(dataset_name: str, records: list[dict[str, Any]]) -> list[Headline]:
    """FC-Vec GEVB+ vs BP+ test error (seed means of each seed's longest-trained run) beside the authors'."""
    runs = latest_per_run([r for r in records if str(r.get("name", "")).startswith(f"gevb-{dataset_name}/")
                           and not (r.get("config") or {}).get("quick")])
    longest: dict[tuple[str, Any], dict[str, Any]] = {}  # (label, seed) -> its longest-trained run
    for record in runs:
        config = record["config"]
        key = (config["label"], config.get("seed"))
        if config["model"] == "vnn-fc" and not config.get("train_limit") and (
                key not in longest or record["final"]["epochs"] > longest[key]["final"]["epochs"]):
            longest[key] = record
    by_label: dict[str, list[dict[str, Any]]] = {}
    for (label, _), record in longest.items():
        by_label.setdefault(label, []).append(record)
    labels = [label for label in ("gevb+", "bp+") if label in by_label]
    if not labels:
        return []
    theirs = [paper_gevb.TEST_ERROR.get((dataset_name, "vnn-fc", label)) for label in labels]
    epochs = sorted({r["final"]["epochs"] for label in labels for r in by_label[label]})
    seeds = sorted({r["config"].get("seed") for label in labels for r in by_label[label]})
    devices = sorted({device_type(r.get("device", "")) for label in labels for r in by_label[label]})
    ours = ", ".join(f"{label.upper()} {statistics.mean(r['final']['test_error_pct'] for r in by_label[label]):.2f}"
                     for label in labels)
    return [Headline(
        "Clark, Abbott & Chung 2021", f"GEVB ≈ BP in nonnegative vectorized nets: {dataset_name} FC-Vec test error (%)",
        ours, ", ".join(f"{label.upper()} {v.value:g}" for label, v in zip(labels, theirs, strict=True) if v),
        least_sure([v.status for v in theirs if v]),
        f"{'/'.join(map(str, epochs))} of ≤ 200 epochs, seed {','.join(map(str, seeds))} of 5, {'/'.join(devices)}",
        "docs/papers/gevb.md")]


@register_headline("gevb", order=30)
def gevb_headline(records: list[dict[str, Any]]) -> list[Headline]:  # noqa: D103
    return _gevb_headline("mnist", records) + _gevb_headline("cifar10", records)
