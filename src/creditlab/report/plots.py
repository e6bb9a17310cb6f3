"""The report's figures (PNG): learning curves per rule, per-layer alignment over training, and test
accuracy against step time."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from creditlab.report.tables import (
    RuleMention,
    config_identity,
    is_rule_timing,
    latest_by,
    model_label,
    rule_mentions,
    train_identity,
)
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





ACCURACY_KEYS = (("test_accuracy", 100.0, False), ("test_accuracy_pct_mean", 1.0, False),
                 ("mean test_accuracy", 100.0, False), ("test_error_pct", 1.0, True), ("test_error", 100.0, True))
MAX_POINTS_PER_RULE = 3


def _accuracy_pct(values: dict[str, Any]) -> float | None:
    """Test accuracy (%) of a mention's values, from whichever key its experiment writes."""
    for key, scale, is_error in ACCURACY_KEYS:
        value = values.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return 100.0 - value * scale if is_error else value * scale
    return None


def _setting(mention: RuleMention) -> str:
    """What a mention was measured on, without the rule's name, so BP's run of the same setting matches:
    ``model/dataset, budget`` for a train run, else the run's label with the rule's word taken out."""
    record = mention.record
    if record.get("kind") == "train":
        _, model, dataset = train_identity(record)
        config = record.get("config") or {}
        budget = f"{config.get('epochs')} ep" + (f" × {config['train_limit'] // 1000}k"
                                                 if config.get("train_limit") else "")
        budget += f", val {100 * config['val_fraction']:g}%" if config.get("val_fraction") else ""
        return f"{model}/{dataset}, {budget}"
    label = re.sub(rf"(?<![\w-]){re.escape(mention.rule)}(?![\w-])", "", mention.label,
                   flags=re.IGNORECASE).replace("/+", " +")
    label = re.sub(r"\s+", " ", label)
    return re.sub(r"[:+/ ]+$|\bruns of\s*$", "", re.sub(r"[:+]+(?=/|$)", "", label)).strip(" :/") or label


def rule_overview(records: Sequence[dict[str, Any]], device: str = "cpu") -> dict[str, dict[str, list[Any]]]:
    """Every registered rule -> ``step``: (setting, step time / BP's on ``device``) and ``accuracy``:
    (setting, test accuracy %, BP's accuracy % in the same setting or None), from every record that
    measures the rule (newest per setting, at most MAX_POINTS_PER_RULE each, those beside BP first)."""
    from creditlab.rules import RULES

    names = list(RULES.names())
    newest = latest_by(records, lambda r: (r.get("kind"), r.get("name"), r.get("config_key")))
    mentions = sorted((m for r in newest if not (r.get("config") or {}).get("quick")
                       for m in rule_mentions(r, set(names))), key=lambda m: str(m.record.get("timestamp", "")))
    steps: dict[str, dict[str, tuple[bool, float]]] = {rule: {} for rule in names}
    accuracy: dict[str, dict[str, float]] = {rule: {} for rule in names}
    for mention in mentions:
        values = mention.values
        ratio = values.get("ratio_to_bp")
        if isinstance(ratio, int | float) and device_type(mention.record.get("device", "")) == device:
            config = mention.record.get("config") or {}
            shape = [f"{k} {config[k]}" for k in ("width", "dtype") if k in config]
            contender = mention.label.rsplit(": ", 1)[-1]
            variant = contender != mention.rule and not is_rule_timing(mention.record)
            if is_rule_timing(mention.record):
                where = model_label(config)
            else:  # a benchmark of its own layout: the shape it timed (and the variant, if not the plain rule)
                where = (f"{contender}: " if variant else "") + (", ".join(shape) if shape else _setting(mention))
            steps[mention.rule][where] = (variant, float(ratio))
        acc = _accuracy_pct(values)
        if acc is not None and not is_rule_timing(mention.record):
            accuracy[mention.rule][_setting(mention)] = acc
    overview: dict[str, dict[str, list[Any]]] = {}
    for rule in names:
        beside = [(where, acc, accuracy["bp"].get(where)) for where, acc in accuracy[rule].items()]
        beside.sort(key=lambda p: (p[2] is None, p[0]))
        timed = [(where, ratio) for where, (_, ratio) in sorted(steps[rule].items(), key=lambda p: (p[1][0], p[0]))]
        overview[rule] = {"step": timed[:MAX_POINTS_PER_RULE] if rule != "bp" else [],
                          "accuracy": beside[:MAX_POINTS_PER_RULE]}
    return overview


def rules_side_by_side_caption(overview: dict[str, dict[str, list[Any]]], device: str = "cpu") -> str:
    """The figure's caption: what it shows and which rules lack which record (so none is missing unsaid)."""
    no_step = [rule for rule, o in overview.items() if rule != "bp" and not o["step"]]
    no_acc = [rule for rule, o in overview.items() if not o["accuracy"]]
    text = (f"Every registered rule ({len(overview)}) has a row. Left: step time over BP's on the same model "
            f"({device}, interleaved in one process), one dot per model measured. Right: test accuracy (%) in each "
            "setting the records hold (up to three per rule), with BP's accuracy in the same setting as a black "
            "bar where there is one; settings differ between rules, so compare a rule with its own BP bar.")
    if no_step:
        text += f" No {device} step-time record yet: {', '.join(no_step)}."
    if no_acc:
        text += f" No test-accuracy record yet: {', '.join(no_acc)}."
    return text


def plot_rules_side_by_side(records: Sequence[dict[str, Any]], path: Path, device: str = "cpu") -> Path | None:
    """Every registered rule beside backprop, one row each: step time as a ratio to BP's (``device``) and
    test accuracy beside BP's in the same setting (:func:`rule_overview`); a row without a record says so.
    None if the records hold neither."""
    overview = rule_overview(records, device)
    if not any(o["step"] or o["accuracy"] for o in overview.values()):
        return None
    plt = _pyplot()
    rules = list(overview)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 0.42 * len(rules) + 1.6), sharey=True)
    colors = plt.cm.tab20.colors
    ratios = [v for o in overview.values() for _, v in o["step"]]
    accs = [v for o in overview.values() for _, a, b in o["accuracy"] for v in (a, b) if v is not None]
    low_acc = max(0.0, math.floor(min(accs) - 3)) if accs else 0.0
    for row, rule in enumerate(rules):
        color = colors[row % len(colors)]
        y = len(rules) - 1 - row
        for i, (where, ratio) in enumerate(overview[rule]["step"]):
            left.scatter([ratio], [y], color=color, s=30, zorder=3)
            left.annotate(where, (ratio, y), textcoords="offset points", xytext=(4, 3 - 7 * i), fontsize=6)
        if rule == "bp":
            left.text(1.0, y, " the reference (1.0)", fontsize=7, va="center", color="0.3")
        elif not overview[rule]["step"]:
            left.text(0.02, y, f"no {device} step-time record", transform=left.get_yaxis_transform(),
                      fontsize=7, va="center", color="0.5", style="italic")
        offsets = (-0.25, 0.0, 0.25)[:len(overview[rule]["accuracy"])]
        for (where, acc, bp_acc), dy in zip(overview[rule]["accuracy"], offsets, strict=False):
            right.barh([y + dy], [acc - low_acc], left=low_acc, height=0.22, color=color)
            if bp_acc is not None and rule != "bp":
                right.plot([bp_acc, bp_acc], [y + dy - 0.12, y + dy + 0.12], color="black", linewidth=1.6)
            right.text(low_acc + 0.3, y + dy, where, fontsize=6, va="center")
        if not overview[rule]["accuracy"]:
            right.text(low_acc + 0.5, y, "no test-accuracy record", fontsize=7, va="center", color="0.5",
                       style="italic")
    left.set_yticks(range(len(rules)), list(reversed(rules)), fontsize=8)
    left.axvline(1.0, color="black", linewidth=0.8)
    if ratios and max(ratios) / max(min(ratios), 1e-9) > 8:
        left.set_xscale("log")
    left.set_xlim(min([0.5, *ratios]) * 0.8, max([2.0, *ratios]) * 1.6)
    left.set_xlabel("step time / BP's step time (same model)")
    left.set_title(f"step time relative to backprop ({device})", fontsize=10)
    right.set_xlim(low_acc, 100)
    right.set_xlabel("test accuracy (%); black bar: BP in the same setting")
    right.set_title("test accuracy, per setting in the records", fontsize=10)
    for ax in (left, right):
        ax.grid(True, axis="x", alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


__all__ = ["plot_accuracy_vs_step_time", "plot_alignment", "plot_learning_curves", "plot_rules_side_by_side",
           "rule_overview", "rules_side_by_side_caption"]
