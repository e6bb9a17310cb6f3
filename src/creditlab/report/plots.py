"""The report's figures (PNG): learning curves per rule, per-layer alignment over training, and test
accuracy against step time."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from creditlab.report.tables import config_identity, latest_by, model_label, train_identity
from creditlab.results import device_type

MAX_ALIGNMENT_PANELS = 16


# -- plots ----------------------------------------------------------------------------------------------

def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _curve_label(record: dict[str, Any]) -> str:
    if record.get("kind") == "train":
        rule, model, _ = train_identity(record)
        return f"{rule} ({model_label({**(record.get('config') or {}), 'model': model})})"
    return str(record.get("name"))


def _examples_seen(epochs: list[dict[str, Any]], record: dict[str, Any]) -> tuple[list[float], str]:
    """x values of a learning curve: training examples seen (thousands) if measurable, else epochs."""
    if all("samples_per_s" in e and "epoch_time_s" in e for e in epochs):
        seen, xs = 0.0, []
        for e in epochs:
            seen += e["samples_per_s"] * e["epoch_time_s"]
            xs.append(seen / 1000)
        return xs, "training examples seen (thousands)"
    return [float(e.get("epoch", i + 1)) for i, e in enumerate(epochs)], "epoch"


def plot_learning_curves(records: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Test accuracy (%) and training loss vs training examples seen: a line per run, a row per dataset."""
    runs = [r for r in records if r.get("kind") in ("train", "reproduce") and r.get("epochs")
            and all(isinstance(e.get("test_accuracy"), int | float) for e in r["epochs"])]
    if not runs:
        return None
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        group = train_identity(r)[2] if r["kind"] == "train" else str(r.get("name")).split("/")[0]
        groups.setdefault(group, []).append(r)
    plt = _pyplot()
    fig, axes = plt.subplots(len(groups), 2, figsize=(13, 4.2 * len(groups)), squeeze=False)
    for (group, members), (acc_ax, loss_ax) in zip(sorted(groups.items()), axes, strict=True):
        for r in sorted(members, key=_curve_label):
            xs, xlabel = _examples_seen(r["epochs"], r)
            label = _curve_label(r)
            accuracy = [100 * e["test_accuracy"] for e in r["epochs"]]
            line, = acc_ax.plot(xs, accuracy, marker="o", ms=3, label=label)
            if all(isinstance(e.get("train_loss"), int | float) for e in r["epochs"]):
                loss_ax.plot(xs, [e["train_loss"] for e in r["epochs"]], marker="o", ms=3, label=label,
                             color=line.get_color())
            acc_ax.set_xlabel(xlabel)
            loss_ax.set_xlabel(xlabel)
        acc_ax.set_ylabel("test accuracy (%)")
        acc_ax.set_title(f"{group}: test accuracy")
        loss_ax.set_ylabel("training loss (cross-entropy, epoch mean)")
        _log_axis_if_wide(loss_ax, "y")
        loss_ax.set_title(f"{group}: training loss")
        for ax in (acc_ax, loss_ax):
            ax.grid(alpha=0.3)
        acc_ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _log_axis_if_wide(ax: Any, axis: str) -> None:
    """Log scale on ``axis`` when its data span more than a factor 3, ticks at 1-2-5 with plain labels."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    low, high = ax.dataLim.intervalx if axis == "x" else ax.dataLim.intervaly
    if low <= 0 or high / low < 3:
        return
    target = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    target.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(ScalarFormatter())
    target.set_minor_formatter(NullFormatter())


def _alignment_series(record: dict[str, Any]) -> dict[str, tuple[list[float], list[float]]]:
    """parameter -> (epochs, angle in degrees) over the record's epochs; weights only when there are any."""
    series: dict[str, tuple[list[float], list[float]]] = {}
    for i, epoch in enumerate(record.get("epochs") or []):
        alignment = epoch.get("alignment")
        if not isinstance(alignment, dict):
            continue
        for name, metrics in alignment.items():
            angle = metrics.get("angle_deg") if isinstance(metrics, dict) else None
            if isinstance(angle, int | float):
                xs, ys = series.setdefault(name, ([], []))
                xs.append(float(epoch.get("epoch", i + 1)))
                ys.append(float(angle))
    weights = {k: v for k, v in series.items() if k.endswith("weight")}
    return weights or series


def plot_alignment(records: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Per-layer angle between each run's update and the true gradient over training, a panel per run."""
    runs = [(r, s) for r in records if (s := _alignment_series(r))]
    if not runs:
        return None
    from matplotlib.ticker import MaxNLocator

    runs = sorted(runs, key=lambda p: _curve_label(p[0]))[:MAX_ALIGNMENT_PANELS]
    columns = min(4, len(runs))
    rows = math.ceil(len(runs) / columns)
    plt = _pyplot()
    size = (max(8.0, 4.2 * columns), 3.8 * rows + 0.6)
    fig, axes = plt.subplots(rows, columns, figsize=size, squeeze=False)
    for ax in axes.flat[len(runs):]:
        ax.set_visible(False)
    for ax, (record, series) in zip(axes.flat, runs, strict=False):
        for name, (xs, ys) in series.items():
            ax.plot(xs, ys, marker="o", ms=3, label=name.removesuffix(".weight"))
        ax.axhline(90, color="grey", linestyle="--", linewidth=0.8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        highest = max((y for _, ys in series.values() for y in ys if math.isfinite(y)), default=90.0)
        ax.set_ylim(0, 180 if highest > 95 else 100)  # angles past 90 deg: the update opposes the gradient
        ax.set_title(_curve_label(record), fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("angle to true gradient (°)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, title="layer", title_fontsize=6, loc="best")
    fig.suptitle("Per-layer alignment over training: angle between the rule's update and the true "
                 "gradient\n(0° = same direction, 90° = orthogonal; on a fixed batch after each epoch)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _training_ms_per_step(record: dict[str, Any]) -> float | None:
    rates = [e["samples_per_s"] for e in record.get("epochs") or [] if e.get("samples_per_s")]
    batch = (record.get("config") or {}).get("batch_size")
    if not rates or not batch:
        return None
    return 1000 * batch / (sum(rates) / len(rates))


def plot_accuracy_vs_step_time(records: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Test accuracy of each training run against the step time of its rule on its model.

    Step time: the perf suite's median (filled markers; same rule, model and device type) where
    measured, else the training run's own mean step time (hollow markers).
    """
    train = latest_by((r for r in records if r.get("kind") == "train"
                       and isinstance((r.get("final") or {}).get("test_accuracy"), int | float)),
                      config_identity)
    if not train:
        return None
    perf = {}
    timed = (r for r in records if r.get("kind") == "perf" and "median_ms" in (r.get("final") or {}))
    for r in latest_by(timed, config_identity):
        perf[(r["config"].get("rule"), r["config"].get("model"), device_type(r.get("device", "")))] = r
    points = []
    for r in train:
        rule, model, dataset = train_identity(r)
        match = perf.get((rule, model, device_type(r.get("device", ""))))
        ms = match["final"]["median_ms"] if match else _training_ms_per_step(r)
        if ms is not None:
            label = f"{rule} ({model}, {dataset})"
            points.append((ms, 100 * r["final"]["test_accuracy"], label, match is not None))
    if not points:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    colors = plt.cm.tab10.colors
    for i, (ms, acc, label, measured) in enumerate(sorted(points, key=lambda p: p[2])):
        color = colors[i % len(colors)]
        ax.scatter([ms], [acc], s=50, color=color if measured else "none", edgecolors=color, label=label,
                   marker="o")
        ax.annotate(label.split(" ")[0], (ms, acc), textcoords="offset points", xytext=(5, 4), fontsize=8)
    _log_axis_if_wide(ax, "x")
    ax.set_xlabel("step time (ms per training step)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Test accuracy vs step time\n(filled: perf suite median; hollow: mean step of the "
                 "training run)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path





def plot_rules_side_by_side(records: Sequence[dict[str, Any]], path: Path, device: str = "cpu") -> Path | None:
    """Every rule beside backprop: step time as a ratio to BP per model (``perf`` records on ``device``)
    and test accuracy per model and dataset (the newest ``train`` record of each rule/model/dataset/budget,
    budgets shared by every rule of a panel only). None if the records hold neither."""
    ratios: dict[str, dict[str, float]] = {}
    for record in latest_by((r for r in records if r.get("kind") == "perf" and "rule" in (r.get("config") or {})
                             and device_type(r.get("device", "")) == device), config_identity):
        ratio = (record.get("final") or {}).get("ratio_to_bp")
        if ratio is not None:
            ratios.setdefault(str(record["config"].get("model")), {})[str(record["config"]["rule"])] = ratio
    accuracy: dict[str, dict[str, float]] = {}
    for record in latest_by((r for r in records if r.get("kind") == "train"), config_identity):
        rule, model, dataset = train_identity(record)
        config, final = record.get("config") or {}, record.get("final") or {}
        if final.get("test_accuracy") is None:
            continue
        panel = f"{model}/{dataset}, {config.get('epochs')} ep" + (
            f" × {config['train_limit'] // 1000}k" if config.get("train_limit") else "")
        accuracy.setdefault(panel, {})[rule] = 100 * final["test_accuracy"]
    accuracy = {panel: by_rule for panel, by_rule in accuracy.items() if len(by_rule) >= 3}
    ratios = {model: by_rule for model, by_rule in ratios.items() if len(by_rule) >= 2}
    if not ratios and not accuracy:
        return None
    plt = _pyplot()
    rules = sorted({r for group in (*ratios.values(), *accuracy.values()) for r in group},
                   key=lambda r: (r != "bp", r))
    colors = {rule: plt.cm.tab10(i % 10) for i, rule in enumerate(rules)}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, groups, ylabel, title in (
            (axes[0], ratios, "step time / BP's step time", f"step time relative to backprop ({device})"),
            (axes[1], accuracy, "test accuracy (%)", "test accuracy")):
        names = sorted(groups)
        width = 0.8 / max(1, len(rules))
        for i, rule in enumerate(rules):
            xs = [g + (i - len(rules) / 2 + 0.5) * width for g, name in enumerate(names) if rule in groups[name]]
            ys = [groups[name][rule] for name in names if rule in groups[name]]
            if ys:
                ax.bar(xs, ys, width, color=colors[rule], label=rule)
        ax.set_xticks(range(len(names)), names, rotation=15, fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, axis="y", alpha=0.3)
        if groups is ratios and names:
            ax.axhline(1.0, color="black", linewidth=0.8)
        if groups is accuracy and names:
            low = min(v for g in groups.values() for v in g.values())
            ax.set_ylim(max(0.0, math.floor(low - 2)), 100)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[rule]) for rule in rules]
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    fig.legend(handles, rules, loc="upper center", ncol=len(rules), fontsize=9, frameon=False)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

__all__ = ["plot_accuracy_vs_step_time", "plot_alignment", "plot_rules_side_by_side", "plot_learning_curves"]
