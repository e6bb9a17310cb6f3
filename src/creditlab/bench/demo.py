"""``creditlab demo``: every rule on MNIST with its natural model, a terminal table and a PNG plot."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from creditlab.bench.compat import natural_model
from creditlab.data import Dataset, load_dataset
from creditlab.models import MODELS
from creditlab.results import append_record, make_record
from creditlab.rules import RULES
from creditlab.train import train_from_names


def run_demo(out: Path, epochs: int = 2, train_limit: int | None = 15000, device: str = "cpu",
             data_dir: str | os.PathLike | None = None, only: list[str] | None = None) -> list[dict[str, Any]]:
    """Train every registered rule (or ``only`` these) on MNIST; write records, a table and ``demo.png``."""
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    names = only or RULES.names()
    loaded: dict[str, Dataset] = {}
    summaries: list[dict[str, Any]] = []
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.jsonl").unlink(missing_ok=True)
    for index, rule in enumerate(names, start=1):
        model = natural_model(rule)
        normalization = MODELS.get(model).defaults.get("normalization", "standard")
        if normalization not in loaded:
            loaded[normalization] = load_dataset("mnist", data_dir, device, normalization=normalization)
        console.print(f"[{index}/{len(names)}] {rule} on {model} ...")
        summary = train_from_names(rule, model, "mnist", loaded=loaded[normalization], epochs=epochs,
                                   train_limit=train_limit, device=device, out_dir=str(out / rule),
                                   progress=False)
        summaries.append(summary)
        final = {k: summary[k] for k in ("test_accuracy", "train_loss", "train_accuracy", "epochs")}
        append_record(out / "results.jsonl", make_record("train", f"{rule}/{model}/mnist", summary["config"],
                                                          final, summary["history"], summary["wall_time_s"],
                                                          device))
    table = Table(title=f"creditlab demo: MNIST, {epochs} epoch(s) on {train_limit or 'all'} training images")
    for column in ("rule", "model", "test accuracy", "train loss", "wall time (s)"):
        table.add_column(column, justify="right" if column not in ("rule", "model") else "left")
    for s in summaries:
        table.add_row(s["rule"], s["model"], f"{s['test_accuracy']:.4f}", f"{s['train_loss']:.4f}",
                      f"{s['wall_time_s']:.1f}")
    Console().print(table)
    plot = _plot(summaries, out / "demo.png")
    Console().print(f"plot: {plot}   records: {out / 'results.jsonl'}")
    return summaries


def _plot(summaries: list[dict[str, Any]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (bars, curves) = plt.subplots(1, 2, figsize=(12, 4.5))
    labels = [f"{s['rule']}\n({s['model']})" for s in summaries]
    accuracy = [100 * s["test_accuracy"] for s in summaries]
    bars.bar(range(len(summaries)), accuracy, color="tab:blue")
    bars.set_xticks(range(len(summaries)), labels, fontsize=8)
    bars.set_ylabel("test accuracy (%)")
    bars.set_ylim(max(0.0, min(accuracy) - 5), 100)
    bars.set_title("MNIST test accuracy after the demo budget")
    for i, a in enumerate(accuracy):
        bars.text(i, a + 0.2, f"{a:.1f}", ha="center", fontsize=8)
    for s in summaries:
        wall, acc, elapsed = [], [], 0.0
        for record in s["history"]:
            elapsed += record["epoch_time_s"]
            wall.append(elapsed)
            acc.append(100 * record["test_accuracy"])
        curves.plot(wall, acc, marker="o", label=f"{s['rule']} ({s['model']})")
    curves.set_xscale("log")
    seconds = matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}")
    curves.xaxis.set_major_formatter(seconds)
    curves.xaxis.set_minor_formatter(seconds)
    curves.set_xlabel("training time (s, log scale), one point per epoch")
    curves.set_ylabel("test accuracy (%)")
    curves.set_title("test accuracy after each epoch vs training time")
    curves.legend(fontsize=8)
    curves.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
