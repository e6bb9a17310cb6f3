"""``creditlab demo``: every registered rule on its natural model, each at its own short budget.

Each rule says how it is shown and the floor it must reach in one place, its class attribute
``demo`` (:class:`creditlab.rules.base.DemoSetting`); the model decides its input encoding (its
registered ``normalization``: spike times for the spiking classifier, [0, 1] for the invertible MLP).
The demo trains each rule, prints one table (budget, test accuracy, floor, wall time) and
``demo.png``, and raises :class:`DemoFloorError` (exit 1) naming every rule that ended below its floor,
so CI and a user see the same verdict.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from creditlab.data import Dataset, load_dataset
from creditlab.data.specs import DATASETS
from creditlab.errors import CreditlabError
from creditlab.models import MODELS
from creditlab.results import append_record, make_record
from creditlab.rules import RULES, DemoSetting
from creditlab.train import train_from_names


class DemoFloorError(CreditlabError):
    """One or more rules ended the demo below the floor their ``demo`` setting states."""


@dataclass(frozen=True)
class DemoRun:
    """What the demo runs for one rule: its setting, resolved model and overrides of the budget."""

    rule: str
    setting: DemoSetting
    model: str
    epochs: int
    train_limit: int | None

    @property
    def normalization(self) -> str:
        """The input encoding the model needs (its registered default)."""
        return str(MODELS.get(self.model).defaults.get("normalization", "standard"))

    @property
    def budget(self) -> str:
        """The budget in words, for the table."""
        images = "all" if self.train_limit is None else f"{self.train_limit:,}"
        return f"{self.epochs} ep x {images} img"


def demo_setting(rule: str) -> DemoSetting:
    """The rule's ``demo`` setting; CreditlabError for a registered rule that has none."""
    setting = RULES.get(rule).demo
    if setting is None:
        raise CreditlabError(f"rule {rule!r} has no demo setting: give its class a `demo = DemoSetting(floor=...)` "
                             "(creditlab.rules.base.DemoSetting), measured on its natural model")
    return setting


def plan_demo(only: list[str] | None = None, epochs: int | None = None, train_limit: int | None = None
              ) -> list[DemoRun]:
    """The runs of the demo: every registered rule (or ``only`` these), budgets overridden where given."""
    from creditlab.bench.compat import natural_model

    names = RULES.names() if only is None else list(only)
    runs = []
    for rule in names:
        setting = demo_setting(rule)
        runs.append(DemoRun(rule, setting, setting.model or natural_model(rule),
                            setting.epochs if epochs is None else epochs,
                            setting.train_limit if train_limit is None else train_limit))
    return runs


def train_demo_run(run: DemoRun, data: Dataset, device: str = "cpu", out_dir: Path | None = None,
                   test_limit: int | None = None) -> dict[str, Any]:
    """Train one rule at its demo budget on already loaded data; the trainer's summary."""
    setting = run.setting
    return train_from_names(run.rule, run.model, setting.dataset, loaded=data, epochs=run.epochs,
                            train_limit=run.train_limit,
                            test_limit=setting.test_limit if test_limit is None else test_limit,
                            model_options=dict(setting.model_options), rule_options=dict(setting.rule_options),
                            device=device, out_dir=None if out_dir is None else str(out_dir), progress=False,
                            **dict(setting.training))


def run_demo(out: Path, device: str = "cpu", data_dir: str | os.PathLike | None = None,
             only: list[str] | None = None, epochs: int | None = None, train_limit: int | None = None,
             enforce_floors: bool = True) -> list[dict[str, Any]]:
    """Train every registered rule (or ``only`` these) at its demo budget; write records, a table and
    ``demo.png``. Raises DemoFloorError after the table when a rule ends below its floor (and
    ``enforce_floors``; overridden budgets never enforce, since the floors belong to the rules' own)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    started = time.perf_counter()
    runs = plan_demo(only, epochs, train_limit)
    loaded: dict[tuple[str, str], Dataset] = {}
    summaries: list[dict[str, Any]] = []
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.jsonl").unlink(missing_ok=True)
    for index, run in enumerate(runs, start=1):
        key = (run.setting.dataset, run.normalization)
        if key not in loaded:
            loaded[key] = load_dataset(run.setting.dataset, data_dir, device, normalization=run.normalization)
        console.print(f"[{index}/{len(runs)}] {run.rule} on {run.model} ({run.budget}) ...")
        summary = train_demo_run(run, loaded[key], device, out / run.rule)
        summary.update(demo_floor=run.setting.floor, demo_budget=run.budget)
        summaries.append(summary)
        final = {k: summary[k] for k in ("test_accuracy", "train_loss", "train_accuracy", "epochs")}
        append_record(out / "results.jsonl", make_record("demo", f"{run.rule}/{run.model}/{run.setting.dataset}",
                                                          summary["config"], {**final, "floor": run.setting.floor},
                                                          summary["history"], summary["wall_time_s"], device))
    total = time.perf_counter() - started
    enforce = enforce_floors and epochs is None and train_limit is None
    below = [s for s in summaries if s["test_accuracy"] < s["demo_floor"]]
    table = Table(title=f"creditlab demo: {len(summaries)} rules, each at its own budget (MNIST unless stated); "
                        f"{total:.0f} s in all on {device}")
    for column in ("rule", "model", "budget", "test accuracy", "floor", "", "wall time (s)"):
        table.add_column(column, justify="left" if column in ("rule", "model", "budget", "") else "right")
    for s in summaries:
        verdict = "ok" if s["test_accuracy"] >= s["demo_floor"] else "BELOW FLOOR"
        dataset = "" if s["dataset"] == "mnist" else f" ({s['dataset']})"
        table.add_row(s["rule"], s["model"] + dataset, s["demo_budget"], f"{s['test_accuracy']:.4f}",
                      f"{s['demo_floor']:.2f}", verdict, f"{s['wall_time_s']:.1f}")
    Console().print(table)
    plot = _plot(summaries, out / "demo.png", total)
    Console().print(f"plot: {plot}   records: {out / 'results.jsonl'}   total wall time: {total:.1f} s")
    if below and enforce:
        raise DemoFloorError("below their demo floor: " + ", ".join(
            f"{s['rule']} {s['test_accuracy']:.4f} < {s['demo_floor']:.2f}" for s in below))
    return summaries


def _plot(summaries: list[dict[str, Any]], path: Path, total_s: float) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (bars, times) = plt.subplots(1, 2, figsize=(14, 4.8), gridspec_kw={"width_ratios": [3, 2]})
    labels = [f"{s['rule']}\n({s['model']})" for s in summaries]
    accuracy = [100 * s["test_accuracy"] for s in summaries]
    floors = [100 * s["demo_floor"] for s in summaries]
    chance = [100 / DATASETS.get(s["dataset"]).num_classes for s in summaries]
    positions = range(len(summaries))
    colors = ["tab:blue" if a >= f else "tab:red" for a, f in zip(accuracy, floors, strict=True)]
    bars.bar(positions, accuracy, color=colors)
    bars.scatter(positions, floors, marker="_", s=300, color="black", label="floor", zorder=3)
    bars.scatter(positions, chance, marker="_", s=300, color="grey", label="chance", zorder=3)
    bars.set_xticks(list(positions), labels, fontsize=7, rotation=60, ha="right")
    bars.set_ylabel("test accuracy (%)")
    bars.set_ylim(0, 100)
    bars.set_title("test accuracy after each rule's demo budget")
    bars.legend(fontsize=8, loc="lower left")
    for i, a in enumerate(accuracy):
        bars.text(i, a + 1, f"{a:.0f}", ha="center", fontsize=7)
    times.barh(list(positions), [s["wall_time_s"] for s in summaries], color="tab:grey")
    times.set_yticks(list(positions), [s["rule"] for s in summaries], fontsize=7)
    times.invert_yaxis()
    times.set_xlabel("wall time (s), training + evaluation")
    times.set_title(f"time per rule ({total_s:.0f} s in all)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
