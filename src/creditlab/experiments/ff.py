"""``ff-mnist``: Forward-Forward on MNIST (Hinton 2022) at the public PyTorch re-implementation's protocol
(loeweX/Forward-Forward @ da516f0, ``config.yaml``; numbers in :mod:`creditlab.papers.hinton2022`).

Protocol ``reference`` (default): ``ff-mlp`` 784-3x1000, rule ``ff`` with its defaults (peer
normalisation 0.03, momentum 0.9 of the running means, threshold = width, straight-through ReLU
gradient), SGD lr 1e-3 with momentum 0.9, read-out lr x10, weight decay 3e-4 / 3e-3 (the rule's),
batch 100, 100 epochs with the linear cooldown after epoch 50, trained on the first 50000 training
images (the reference's ``train`` partition), inputs in [0, 1]; test error of the softmax read-out on
the 10000 test images (the number the reference reports) and of the goodness read-out (the paper's),
after every epoch. ``protocol=paper``: 4 x 2000, 60 epochs, otherwise the same (the paper gives no
optimizer settings in the text).

``max_epochs`` runs only the protocol's first epochs (a CPU budget): at most half the protocol, where
its learning rate is still constant, so the truncated run *is* the protocol's first epochs (the
record says how many). The per-layer angle between FF's update and the gradient of the read-out's
cross-entropy is measured after every epoch on 256 training images.

The reference code itself is run side by side outside this repository (its code is not part of
creditlab): records ``ff-mnist/reference-code`` in the same results file; the figure shows both curves.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from creditlab.analysis.alignment import AlignmentTracker
from creditlab.data import Dataset
from creditlab.errors import CreditlabError
from creditlab.experiments import ExperimentContext, ExperimentOption, register_experiment, register_headline
from creditlab.papers import hinton2022 as paper
from creditlab.report.headline import Headline, newest_runs
from creditlab.report.render import Table, fmt
from creditlab.results import make_record, read_records
from creditlab.rules import Rule

PROTOCOLS: dict[str, dict[str, Any]] = {
    "reference": {"hidden": (1000, 1000, 1000), "epochs": 100},
    "paper": {"hidden": (2000, 2000, 2000, 2000), "epochs": 60},
}
SETTINGS: dict[str, Any] = {"batch_size": 100, "lr": 1e-3, "optimizer": "sgd", "momentum": 0.9,
                            "schedule": "linear-cooldown", "normalization": "unit", "train_limit": 50000,
                            "val_fraction": 0.0}
#: --quick: the same code path on a tiny problem (smoke numbers, never results)
QUICK: dict[str, Any] = {"hidden": (64, 64), "epochs": 1, "train_limit": 1000, "test_limit": 500}
ALIGNMENT_BATCH = 256
#: the record of the lockstep check against the reference code (same weights, batches, negatives)
LOCKSTEP = "ff-mnist/lockstep-reference-code"
#: the record of the interleaved step-time comparison with the reference code
STEP_TIME = "ff-mnist/step-time-reference-code"
OPTIONS = {
    "protocol": ExperimentOption("reference", "reference (loeweX: 3x1000, 100 epochs) or paper (4x2000, 60)",
                                 choices=("reference", "paper")),
    "max_epochs": ExperimentOption(0, "run only the protocol's first N epochs (<= half of them); 0: all",
                                   minimum=0),
}


def _tracker(rule: Rule, data: Dataset) -> list[AlignmentTracker]:
    return [AlignmentTracker(data.train_x[:ALIGNMENT_BATCH], data.train_y[:ALIGNMENT_BATCH])]


def _epochs(protocol_epochs: int, max_epochs: Any) -> tuple[int, str]:
    """(epochs to run, schedule): a truncated run keeps the constant lr of the protocol's first half."""
    if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 0:
        raise CreditlabError(f"ff-mnist: option max_epochs must be an integer >= 0 (0: all), got {max_epochs!r}")
    if max_epochs == 0 or max_epochs >= protocol_epochs:
        return protocol_epochs, "linear-cooldown"
    if max_epochs > protocol_epochs // 2:
        raise CreditlabError(f"ff-mnist: max_epochs={max_epochs} would stop inside the protocol's learning-rate "
                             f"cooldown (after epoch {protocol_epochs // 2}); use <= {protocol_epochs // 2} or 0")
    return max_epochs, "none"


def _curve(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for h in history:
        angles = {name: m["angle_deg"] for name, m in (h.get("alignment") or {}).items() if name.endswith("weight")}
        rows.append({"epoch": h["epoch"], "test_error_pct": 100 * (1 - h["test_accuracy"]),
                     "goodness_test_error_pct": 100 * (1 - h["variants"]["goodness"]["test_accuracy"]),
                     "epoch_time_s": h["epoch_time_s"], "angles_deg": angles})
    return rows


@register_experiment("ff-mnist", "Forward-Forward (Hinton 2022) on MNIST at loeweX/Forward-Forward's protocol",
                     options=OPTIONS, summary=lambda records: summary_tables(records))
def run(ctx: ExperimentContext) -> list[dict[str, Any]]:
    """Train ``ff`` on ``ff-mlp`` at the chosen protocol; one record with the per-epoch curve."""
    from creditlab.train import train_from_names

    protocol = ctx.options.get("protocol", "reference")
    if protocol not in PROTOCOLS:
        raise CreditlabError(f"ff-mnist: option protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    spec = dict(PROTOCOLS[protocol])
    settings = dict(SETTINGS)
    if ctx.quick:
        spec.update(hidden=QUICK["hidden"], epochs=QUICK["epochs"])
        settings.update(train_limit=QUICK["train_limit"], test_limit=QUICK["test_limit"])
    epochs, schedule = _epochs(spec["epochs"], ctx.options.get("max_epochs", 0))
    settings.update(epochs=epochs, schedule=schedule)
    started = time.perf_counter()
    summary = train_from_names("ff", "ff-mlp", "mnist", ctx.data_dir, model_options={"hidden": spec["hidden"]},
                               callback_factory=_tracker, seed=ctx.seed, device=ctx.device, progress=False,
                               out_dir=str(ctx.out_dir / "checkpoints" / "ff-mnist" / protocol), **settings)
    curve = _curve(summary["history"])
    last = curve[-1]
    reference = paper.TEST_ERROR["reference-code"].value
    full = epochs == spec["epochs"] and not ctx.quick
    final = {"test_error_pct": last["test_error_pct"], "goodness_test_error_pct": last["goodness_test_error_pct"],
             "epochs_run": epochs, "epochs_protocol": spec["epochs"],
             "within_target": (abs(last["test_error_pct"] - reference) <= paper.TOLERANCE_POINTS) if full else None,
             "reference_code_test_error_pct": reference, "paper_test_error_pct": paper.TEST_ERROR["paper"].value,
             "curve": curve}
    config = {**summary["config"], "protocol": protocol, "epochs_protocol": spec["epochs"], "quick": ctx.quick}
    record = make_record("reproduce", f"ff-mnist/ff-{protocol}", config, final, epochs=summary["history"],
                         wall_time_s=time.perf_counter() - started, device=ctx.device)
    ctx.record(record)
    figure = plot_curves(ctx.out_dir, [record, *_reference_records(ctx.out_dir)])
    print(f"ff-mnist ({protocol}, {epochs} of {spec['epochs']} epochs{', quick: smoke numbers' if ctx.quick else ''}): "
          f"test error softmax {last['test_error_pct']:.2f} %, goodness {last['goodness_test_error_pct']:.2f} % "
          f"(reference code: {reference} % after 100 epochs); figure {figure}")
    return [record]


def _reference_records(out_dir: Path) -> list[dict[str, Any]]:
    path = out_dir / "results.jsonl"
    return [r for r in read_records(path) if r.get("name") == "ff-mnist/reference-code"] if path.is_file() else []


def plot_curves(out_dir: Path, records: list[dict[str, Any]]) -> Path:
    """Test error vs epoch of creditlab's ff (both read-outs) and the reference code; FF's angles per layer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (errors, angles) = plt.subplots(1, 2, figsize=(10, 3.8))
    for record in records:
        epochs = record.get("epochs") or []
        xs = [e["epoch"] for e in epochs]
        if record["name"] == "ff-mnist/reference-code":
            errors.plot(xs, [100 * (1 - e["test_accuracy"]) for e in epochs], "k--o", label="loeweX code, softmax")
            continue
        errors.plot(xs, [100 * (1 - e["test_accuracy"]) for e in epochs], "-o", label="creditlab ff, softmax")
        errors.plot(xs, [100 * (1 - e["variants"]["goodness"]["test_accuracy"]) for e in epochs], "-s",
                    label="creditlab ff, goodness")
        names = sorted({n for e in epochs for n in (e.get("alignment") or {}) if n.endswith("weight")})
        for name in names:
            angles.plot(xs, [e["alignment"][name]["angle_deg"] for e in epochs], "-o", label=name)
    errors.axhline(paper.TEST_ERROR["reference-code"].value, color="grey", lw=0.8,
                   label="loeweX code after 100 epochs")
    errors.set(xlabel="epoch", ylabel="MNIST test error (%)", yscale="log", title="Forward-Forward, 784-3x1000")
    errors.legend(fontsize=7)
    angles.set(xlabel="epoch", ylabel="angle to read-out CE gradient (deg)", title="FF update vs true gradient")
    angles.legend(fontsize=7)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "ff_mnist_curves.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def summary_tables(records: list[dict[str, Any]]) -> list[Table]:
    """Per run (ours and the reference code's): epochs run, final test errors, epoch time."""
    rows = []
    lockstep = [r for r in records if r.get("name") == LOCKSTEP]
    timing = [r for r in records if r.get("name") == STEP_TIME]
    for record in sorted((r for r in records if r.get("name") not in (LOCKSTEP, STEP_TIME)),
                         key=lambda r: str(r.get("name"))):
        final, config = record.get("final") or {}, record.get("config") or {}
        ours = record["name"] != "ff-mnist/reference-code"
        rows.append([record["name"].split("/", 1)[-1],
                     f"{final.get('epochs_run')} of {config.get('epochs_protocol', config.get('epochs'))}",
                     fmt(final.get("test_error_pct"), 3),
                     fmt(final.get("goodness_test_error_pct"), 3) if ours else "–",
                     fmt(_median([e["epoch_time_s"] for e in record.get("epochs") or []]), 3),
                     record.get("commit", "?") if ours else config.get("code_commit", "?")])
    notes = [f"anchor: the reference code's {paper.TEST_ERROR['reference-code'].value} % after 100 epochs "
             f"({paper.TEST_ERROR['reference-code'].source}); the paper's {paper.TEST_ERROR['paper'].value} % "
             f"({paper.PAPER_SETTING}), the Matlab code's {paper.TEST_ERROR['matlab'].value} %. "
             "Epoch time: training only, 1 thread; the two runs shared a loaded 2-core CPU at the same time, so "
             "it is no speed ratio (the interleaved step time below is)."]
    tables = [Table(["run", "epochs", "test error % (softmax)", "test error % (goodness)", "epoch time (s)",
                     "commit"], rows, notes)]
    if lockstep:
        newest = max(lockstep, key=lambda r: str(r.get("timestamp", "")))
        diffs = newest["final"]["max_abs_weight_difference"]
        tables.append(Table(["parameter", "max |creditlab − reference code|"],
                            [[k, fmt(v, 3)] for k, v in diffs.items()],
                            [f"lockstep: {newest['config'].get('what')} ({newest['config'].get('steps')} steps, "
                             f"hidden {newest['config'].get('hidden')})"]))
    if timing:
        newest = max(timing, key=lambda r: str(r.get("timestamp", "")))
        final = newest["final"]
        tables.append(Table(["creditlab step (ms)", "reference code step (ms)", "ratio"],
                            [[fmt(final["creditlab_step_ms"], 4), fmt(final["reference_code_step_ms"], 4),
                              fmt(final["ratio_creditlab_over_reference"], 3)]],
                            [f"step time: {newest['config'].get('what')}; {newest['config'].get('rounds')} rounds, "
                             f"784-3x1000, batch 100, 1 thread"]))
    return tables


def _median(values: list[float]) -> float | None:
    return sorted(values)[len(values) // 2] if values else None


@register_headline("ff", order=60)
def ff_headline(records: list[dict[str, Any]]) -> list[Headline]:
    """The newest ``ff-mnist`` run beside the reference code's (and the paper's) test error."""
    runs = newest_runs(records, "ff-mnist/")
    ours = runs.get("ff-reference")
    if ours is None:
        return []
    final, reference = ours["final"], runs.get("reference-code")
    theirs = paper.TEST_ERROR["reference-code"]
    side = (f"; loeweX code run here: {reference['final']['test_error_pct']:.2f} after "
            f"{reference['final']['epochs_run']} epochs" if reference else "")
    return [Headline(
        "Hinton 2022 (Forward-Forward); loeweX/Forward-Forward",
        "MNIST test error (%), 784-3x1000, softmax read-out (goodness read-out beside)",
        f"{final['test_error_pct']:.2f} (goodness {final['goodness_test_error_pct']:.2f}){side}",
        f"{theirs.value:g} (reference code, 100 epochs); paper {paper.TEST_ERROR['paper'].value:g} (4x2000)",
        theirs.status, f"{final['epochs_run']} of {final['epochs_protocol']} epochs, seed "
        f"{ours['config'].get('seed')}, 1 CPU thread", "docs/papers/ff-mnist.md")]
