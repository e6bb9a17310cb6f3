"""``creditlab report``: tables and plots from results records (the store written by ``creditlab bench``,
``train --record`` and ``reproduce``), as Markdown or HTML, and the README's generated results section.

Tables: test accuracy per rule / model / dataset beside the paper's number (``paper_numbers``), step
time per rule as a ratio to BP beside the anchors' ratios, and one table per reproduction (scalar
``final`` metrics; the paper's numbers wherever a record carries them: keys naming ``paper``,
``authors`` or ``biotorch`` in ``final`` or ``config``). Plots (PNG): learning curves per
rule, per-layer alignment angle over training (records whose epochs carry ``alignment``), and test
accuracy against step time. Every row names the commit and device its numbers came from.
"""

from __future__ import annotations

import html
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from creditlab.bench.paper_numbers import PaperNumber, paper_accuracy, paper_step_time_ratio
from creditlab.errors import CreditlabError
from creditlab.results import device_type, read_records

FORMATS = ("md", "html")
README_BEGIN = "<!-- results:begin -->"
README_END = "<!-- results:end -->"
PAPER_KEY = re.compile(r"paper|authors|biotorch", re.IGNORECASE)
MAX_KEY_VALUE_ROWS = 40
MAX_WIDE_COLUMNS = 10
MAX_ALIGNMENT_PANELS = 16


# -- document blocks, rendered to Markdown or HTML -------------------------------------------------

@dataclass
class Heading:
    """A section heading (level 1-4)."""

    level: int
    text: str


@dataclass
class Paragraph:
    """A paragraph of plain text (Markdown inline code with backticks is kept as is)."""

    text: str


@dataclass
class Table:
    """A table: column names and rows of already formatted cells, an optional title above it and
    optional notes below it."""

    columns: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    title: str = ""


@dataclass
class Image:
    """A PNG written by the report."""

    path: Path
    alt: str


Block = Heading | Paragraph | Table | Image


def _link(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()


def render_markdown(blocks: Sequence[Block], base: Path) -> str:
    """Markdown text of ``blocks``; image links are relative to the directory ``base``."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}\n")
        elif isinstance(block, Paragraph):
            out.append(block.text + "\n")
        elif isinstance(block, Table):
            def cell(text: str) -> str:
                return str(text).replace("|", "\\|").replace("\n", " ")

            if block.title:
                out += [f"**{block.title}**", ""]
            out.append("| " + " | ".join(cell(c) for c in block.columns) + " |")
            out.append("|" + "|".join("---" for _ in block.columns) + "|")
            out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in block.rows]
            out.append("")
            out += [f"{note}  " for note in block.notes]
            if block.notes:
                out.append("")
        else:
            out.append(f"![{block.alt}]({_link(block.path, base)})\n")
    return "\n".join(out).rstrip() + "\n"


def render_html(blocks: Sequence[Block], base: Path, title: str = "creditlab results") -> str:
    """A standalone HTML page of ``blocks``; image sources are relative to the directory ``base``."""
    def inline(text: str) -> str:
        return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))

    body: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{inline(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{inline(block.text)}</p>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{inline(c)}</th>" for c in block.columns)
            rows = "".join("<tr>" + "".join(f"<td>{inline(str(c))}</td>" for c in row) + "</tr>"
                           for row in block.rows)
            caption = f"<caption>{inline(block.title)}</caption>" if block.title else ""
            body.append(f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            body += [f"<p class=note>{inline(note)}</p>" for note in block.notes]
        else:
            source, alt = html.escape(_link(block.path, base)), html.escape(block.alt)
            body.append(f'<p><img src="{source}" alt="{alt}" style="max-width:100%"></p>')
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto}table{border-collapse:collapse;"
             "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
             "th{background:#eee}.note{font-size:85%;color:#444;margin:0.2em 0}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


# -- selecting and formatting records ---------------------------------------------------------------

def latest_by(records: Iterable[dict[str, Any]], key: Any) -> list[dict[str, Any]]:
    """The newest record (by timestamp, then position) per value of ``key(record)``, in first-seen order."""
    chosen: dict[Any, dict[str, Any]] = {}
    for record in records:
        k = key(record)
        if k not in chosen or str(record.get("timestamp", "")) >= str(chosen[k].get("timestamp", "")):
            chosen[k] = record
    return list(chosen.values())


def fmt(value: Any, digits: int = 4) -> str:
    """A compact cell: floats to ``digits`` significant digits, None as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf"
        return f"{value:.{digits}g}"
    return str(value)


def _config_identity(record: dict[str, Any]) -> Any:
    return record.get("config_key") or id(record)


def _provenance(record: dict[str, Any]) -> tuple[str, str]:
    commit = str(record.get("commit", "unknown")) + ("+dirty" if record.get("dirty") else "")
    return commit, str(record.get("device", "?"))


def _model_label(config: dict[str, Any]) -> str:
    options = {k: v for k, v in (config.get("model_options") or {}).items() if v}
    if not options:
        return str(config.get("model"))
    return f"{config.get('model')} ({', '.join(k if v is True else f'{k}={v}' for k, v in options.items())})"


def _train_identity(record: dict[str, Any]) -> tuple[str, str, str]:
    """(rule, model, dataset) of a train record: from its config, else from its name ``rule/model/data``."""
    config = record.get("config") or {}
    parts = str(record.get("name", "")).split("/")
    parts += ["?"] * (3 - len(parts))
    return (str(config.get("rule", parts[0])), str(config.get("model", parts[1])),
            str(config.get("dataset", parts[2])))


class _Footnotes:
    """Numbered references for paper numbers, so a table cell stays short."""

    def __init__(self) -> None:
        self.entries: dict[str, int] = {}

    def ref(self, number: PaperNumber) -> int:
        text = f"{number.source}. Setting: {number.setting}."
        if number.note:
            text += f" {number.note}."
        if number.status != "verified":
            text += f" ({number.status})"
        return self.entries.setdefault(text, len(self.entries) + 1)

    def notes(self) -> list[str]:
        return [f"[{i}] {text}" for text, i in self.entries.items()]


# -- tables -------------------------------------------------------------------------------------------

def accuracy_table(records: Sequence[dict[str, Any]]) -> Table | None:
    """Test accuracy of every training run (newest per config) beside the paper's number for that cell."""
    train = latest_by((r for r in records if r.get("kind") == "train"), _config_identity)
    if not train:
        return None
    footnotes = _Footnotes()
    rows = []
    for record in sorted(train, key=lambda r: tuple(reversed(_train_identity(r)))):
        config, final = record.get("config") or {}, record.get("final") or {}
        rule, model, dataset = _train_identity(record)
        paper = paper_accuracy(rule, model, dataset, config.get("model_options"), config.get("optimizer"))
        paper_cell = f"{paper.test_accuracy_pct:.2f} [{footnotes.ref(paper)}]" if paper else "–"
        epochs_done, epochs_set = final.get("epochs"), config.get("epochs")
        stopped_early = epochs_set and epochs_set != epochs_done
        budget = f"{epochs_done}" + (f"/{epochs_set}" if stopped_early else "") + " ep"
        if final.get("train_examples"):
            budget += f" × {final['train_examples'] / 1000:g}k"
        accuracy = final.get("test_accuracy")
        ours = "diverged" if "error" in final else (f"{100 * accuracy:.2f}" if accuracy is not None else "–")
        commit, device = _provenance(record)
        rows.append([rule, _model_label({**config, "model": model}), dataset, budget, ours, paper_cell,
                     fmt(record.get("wall_time_s"), 3), device, commit])
    columns = ["rule", "model", "dataset", "budget", "test acc. (%)", "paper test acc. (%)", "wall time (s)",
               "device", "commit"]
    notes = ["Budget: epochs run (/ configured, when training stopped early) × training examples. The paper "
             "numbers are the papers' full-budget results (100 − their test error %), shown for reference; "
             "a reduced budget is not expected to reach them.", *footnotes.notes()]
    return Table(columns, rows, notes)


def step_time_table(records: Sequence[dict[str, Any]]) -> Table | None:
    """Median step time per rule and its ratio to BP on the same model (newest per config), with anchors."""
    perf = latest_by((r for r in records if _is_rule_timing(r)), _config_identity)
    if not perf:
        return None
    footnotes = _Footnotes()
    rows = []

    def order(r: dict[str, Any]) -> tuple[Any, ...]:
        ratio = (r.get("final") or {}).get("ratio_to_bp")
        rule = r["config"].get("rule")
        return (device_type(r.get("device", "")), r["config"].get("model", ""), rule != "bp", ratio is None,
                ratio or 0)

    for record in sorted(perf, key=order):
        config, final = record["config"], record.get("final") or {}
        commit, device = _provenance(record)
        rule, model = config.get("rule", "?"), _model_label(config)
        if "median_ms" not in final:
            reason = str(final.get("unavailable", "not measured"))
            rows.append([model, rule, "n/a", "–", "–", "–", "–", "–", "–", device, commit])
            rows[-1][2] = f"n/a: {reason[:80]}"
            continue
        anchor = paper_step_time_ratio(rule, config.get("model", ""), device_type(record.get("device", "")))
        anchor_cell = f"{anchor.value:.2f} [{footnotes.ref(anchor)}]" if anchor else "–"
        ratio = final.get("ratio_to_bp")
        peak = final.get("step_peak_bytes")
        rows.append([model, rule, f"{final['median_ms']:.2f}", f"{final['min_ms']:.2f}–{final['max_ms']:.2f}",
                     f"{ratio:.2f}" if ratio is not None else "–", anchor_cell,
                     f"{final['samples_per_s']:,.0f}", f"{peak / 2**20:.1f}" if peak is not None else "–",
                     f"{final['state_bytes'] / 2**20:.1f}" if final.get("state_bytes") is not None else "–",
                     device, commit])
    columns = ["model", "rule", "median ms/step", "min–max ms", "ratio to BP", "anchor ratio", "samples/s",
               "step peak (MiB)", "state (MiB)", "device", "commit"]
    methods = sorted({str((r.get("final") or {}).get("memory_method")) for r in perf
                      if (r.get("final") or {}).get("memory_method")})
    batch = sorted({str(b) for r in perf if (b := (r.get("final") or {}).get("batch_size")) is not None})
    notes = [f"A step is rule.step + optimizer step + model constraints, batch {', '.join(batch)}; rules on "
             "one model were timed interleaved in one process (median over the timed rounds). Step peak: "
             + "; ".join(methods) + ". State: parameters, buffers, rule state and optimizer state.",
             *footnotes.notes()]
    return Table(columns, rows, notes)


def _is_rule_timing(record: dict[str, Any]) -> bool:
    """A ``perf`` record in the layout of ``bench/perf.py``: one rule, its step time (or why it has none)."""
    final = record.get("final") or {}
    return (record.get("kind") == "perf" and "rule" in (record.get("config") or {})
            and ("median_ms" in final or "unavailable" in final))


def other_timing_blocks(records: Sequence[dict[str, Any]]) -> list[Block]:
    """``perf`` records in other layouts (e.g. a benchmark script's record whose ``final`` maps each
    contender to its metrics): one table per benchmark (name before ``/``), a row per contender."""
    others = latest_by((r for r in records if r.get("kind") == "perf" and not _is_rule_timing(r)),
                       lambda r: (r.get("name"), r.get("config_key")))
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in others:
        groups.setdefault(str(record.get("name", "?")).split("/")[0], []).append(record)
    blocks: list[Block] = []
    for name, group in sorted(groups.items()):
        rows_by_record: list[tuple[dict[str, Any], str, dict[str, Any]]] = []
        for record in group:
            final = record.get("final") or {}
            nested = {k: v for k, v in final.items() if isinstance(v, dict)}
            if nested:
                rows_by_record += [(record, k, flatten_scalars(v, depth=1)) for k, v in nested.items()]
            else:
                rows_by_record.append((record, "", flatten_scalars(final, depth=1)))
        columns: list[str] = []
        for _, _, values in rows_by_record:
            columns += [k for k in values if k not in columns]
        columns = columns[:MAX_WIDE_COLUMNS]
        rows = [[str(r.get("name", "?")).split("/", 1)[-1], contender, *[fmt(v.get(c)) for c in columns],
                 *_provenance(r)[::-1]] for r, contender, v in rows_by_record]
        blocks += [Heading(3, name), Table(["run", "contender", *columns, "device", "commit"], rows)]
    return blocks


def flatten_scalars(value: Any, prefix: str = "", depth: int = 4) -> dict[str, Any]:
    """Scalar leaves of nested dicts (and lists of dicts) as ``a.b[0].c`` -> value, ``depth`` levels down."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        if depth == 0:
            return out
        for k, v in value.items():
            out.update(flatten_scalars(v, f"{prefix}.{k}" if prefix else str(k), depth - 1))
    elif isinstance(value, list):
        if depth > 0 and value and all(isinstance(v, dict) for v in value):
            for i, v in enumerate(value):
                out.update(flatten_scalars(v, f"{prefix}[{i}]", depth - 1))
        elif value and len(value) <= 4 and all(isinstance(v, int | float | str) for v in value):
            out[prefix] = ", ".join(fmt(v) for v in value)
    elif isinstance(value, int | float | str | bool) or value is None:
        out[prefix] = value
    return out


def _paper_values(record: dict[str, Any]) -> dict[str, Any]:
    final = record.get("final") or {}
    config = record.get("config") or {}
    found = {k: v for k, v in flatten_scalars(final).items() if PAPER_KEY.search(k)}
    found.update({f"config.{k}": v for k, v in flatten_scalars(config).items() if PAPER_KEY.search(k)})
    return found


def _is_quick(record: dict[str, Any]) -> bool:
    return bool((record.get("config") or {}).get("quick") or (record.get("bench") or {}).get("quick"))


MAX_ROW_TABLE_COLUMNS = 12


def _row_lists(record: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Lists of per-row dicts in a record's ``final`` (e.g. one row per width and lambda)."""
    final = record.get("final") or {}
    return {k: v for k, v in final.items()
            if isinstance(v, list) and v and all(isinstance(row, dict) for row in v)}


def _rows_table(record: dict[str, Any], key: str, rows: list[dict[str, Any]]) -> Table:
    """One table row per dict (nested keys flattened, e.g. ``ours.mean`` beside ``authors.mean``)."""
    flat = [flatten_scalars(row) for row in rows]
    columns: list[str] = []
    for row in flat:
        columns += [k for k in row if k not in columns]
    paper = [c for c in columns if PAPER_KEY.search(c)][:MAX_ROW_TABLE_COLUMNS // 2]
    ours = [c for c in columns if not PAPER_KEY.search(c)][:MAX_ROW_TABLE_COLUMNS - len(paper)]
    columns = ours + paper
    label = f"{record.get('name')} `{key}` ({_provenance(record)[0]}, {_provenance(record)[1]})"
    body = [[fmt(row.get(c)) for c in columns] for row in flat]
    return Table([c + (" (paper)" if PAPER_KEY.search(c) else "") for c in columns], body, [label])


def reproduce_blocks(records: Sequence[dict[str, Any]], compact: bool = False) -> list[Block]:
    """One table per reproduction (records grouped by the name before ``/``), newest record per config.

    An experiment registered with a ``summary`` makes its own tables from its records. Otherwise, several
    records in a group: one row each, with the scalar ``final`` metrics they share as columns
    (the paper's numbers included). One record: a metric | value table. ``compact`` leaves out the
    one-record tables (for the README), pointing to the full report instead.
    """
    reproduce = latest_by((r for r in records if r.get("kind") == "reproduce"),
                          lambda r: (r.get("name"), r.get("config_key")))
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in reproduce:
        groups.setdefault(str(record.get("name", "?")).split("/")[0], []).append(record)
    from creditlab.experiments import load_all

    experiments = load_all()
    blocks: list[Block] = []
    for name, group in sorted(groups.items()):
        commits = sorted({_provenance(r)[0] for r in group})
        devices = sorted({_provenance(r)[1] for r in group})
        quick = any(_is_quick(r) for r in group)
        command = f"creditlab reproduce {name}{' --quick' if quick else ''}"
        header = (f"`{command}`: {len(group)} record(s); commit "
                  f"{', '.join(commits)}; device {', '.join(devices)}.")
        if quick:
            header += " Quick mode: smoke numbers from a reduced run, not results."
        summary = experiments.get(name).summary if name in experiments else None
        if summary is not None:  # the experiment's own tables (e.g. runs pooled over records)
            blocks += [Heading(3, name), Paragraph(header), *summary(group)]
            continue
        flat = [{k: v for k, v in flatten_scalars(r.get("final") or {}).items()} for r in group]
        shared = [k for k in flat[0] if all(k in f for f in flat[1:])]
        if len(group) > 1 and len(shared) <= MAX_WIDE_COLUMNS:
            paper_keys = [k for k in shared if PAPER_KEY.search(k)]
            numeric = [k for k in shared if k not in paper_keys
                       and all(isinstance(f[k], int | float) for f in flat)]
            keys = numeric + paper_keys
            rows = []
            for record, values in sorted(zip(group, flat, strict=True), key=lambda p: str(p[0].get("name"))):
                label = str(record.get("name", "?")).split("/", 1)[-1]
                unavailable = values.get("unavailable")
                cells = [fmt(values.get(k)) for k in keys]
                if unavailable and all(c == "–" for c in cells[:len(keys) - len(paper_keys)]):
                    cells[0] = f"n/a: {str(unavailable)[:60]}"
                rows.append([label, *cells])
            blocks += [Heading(3, name), Paragraph(header),
                       Table(["run", *[k + (" (paper)" if k in paper_keys else "") for k in keys]], rows)]
        elif any(_row_lists(r) for r in group):
            blocks += [Heading(3, name), Paragraph(header)]
            for record in group:
                for key, rows in _row_lists(record).items():
                    blocks.append(_rows_table(record, key, rows))
                paper = {k: v for k, v in _paper_values(record).items() if k.startswith("config.")}
                if paper:
                    blocks.append(Table(["metric", "value"], [[f"{k} (paper)", fmt(v)] for k, v in paper.items()]))
        elif not compact:
            blocks += [Heading(3, name), Paragraph(header)]
            for record, values in zip(group, flat, strict=True):
                paper = _paper_values(record)
                items = [(k, v) for k, v in values.items() if k not in paper]
                rows = [[k, fmt(v)] for k, v in items[:MAX_KEY_VALUE_ROWS]]
                rows += [[f"{k} (paper)", fmt(v)] for k, v in list(paper.items())[:MAX_KEY_VALUE_ROWS]]
                hidden = max(0, len(items) - MAX_KEY_VALUE_ROWS) + max(0, len(paper) - MAX_KEY_VALUE_ROWS)
                notes = [f"{hidden} more metrics in the record."] if hidden else []
                label = f"{record.get('name')} ({_provenance(record)[0]}, {record.get('timestamp', '')})"
                blocks.append(Table(["metric", label], rows, notes))
        else:
            blocks += [Paragraph(f"**{name}**: {header} Metrics: see the full report.")]
    return blocks


# -- plots ----------------------------------------------------------------------------------------------

def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _curve_label(record: dict[str, Any]) -> str:
    if record.get("kind") == "train":
        rule, model, _ = _train_identity(record)
        return f"{rule} ({_model_label({**(record.get('config') or {}), 'model': model})})"
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
        group = _train_identity(r)[2] if r["kind"] == "train" else str(r.get("name")).split("/")[0]
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
                      _config_identity)
    if not train:
        return None
    perf = {}
    timed = (r for r in records if r.get("kind") == "perf" and "median_ms" in (r.get("final") or {}))
    for r in latest_by(timed, _config_identity):
        perf[(r["config"].get("rule"), r["config"].get("model"), device_type(r.get("device", "")))] = r
    points = []
    for r in train:
        rule, model, dataset = _train_identity(r)
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


# -- the report --------------------------------------------------------------------------------------------

def load_records(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Every record in the JSON-lines files or directories ``paths``; CreditlabError if a path is missing."""
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise CreditlabError(f"no results at {', '.join(missing)} (run `creditlab bench quick` first?)")
    return read_records(paths)


def report_blocks(records: Sequence[dict[str, Any]], out_dir: Path, sources: Sequence[Path],
                  compact: bool = False) -> list[Block]:
    """The report's blocks; writes its PNGs into ``out_dir``. ``compact`` is the README's variant."""
    out_dir.mkdir(parents=True, exist_ok=True)
    commits = sorted({_provenance(r)[0] for r in records})
    blocks: list[Block] = []
    if not compact:
        blocks += [Heading(1, "creditlab results"),
                   Paragraph(f"{len(records)} records from {', '.join(f'`{p}`' for p in sources)}; commits "
                             f"{', '.join(commits) or '–'}. Accuracies are test-set accuracies in percent.")]
    level = 3 if compact else 2
    accuracy = accuracy_table(records)
    if accuracy:
        blocks += [Heading(level, "Accuracy per rule, model and dataset"), accuracy]
    step_time = step_time_table(records)
    if step_time:
        blocks += [Heading(level, "Step time relative to backprop"), step_time]
    other_timings = other_timing_blocks(records)
    if other_timings and not compact:
        blocks += [Heading(level, "Other timing records"), *other_timings]
    figures = [(plot_learning_curves(records, out_dir / "learning_curves.png"), "learning curves"),
               (plot_alignment(records, out_dir / "alignment.png"), "per-layer alignment over training"),
               (plot_accuracy_vs_step_time(records, out_dir / "accuracy_vs_step_time.png"),
                "accuracy vs step time")]
    if any(p for p, _ in figures):
        blocks.append(Heading(level, "Figures"))
        blocks += [Image(p, alt) for p, alt in figures if p]
    reproductions = reproduce_blocks(records, compact)
    if reproductions:
        blocks += [Heading(level, "Paper reproductions"), *reproductions]
    if not records:
        blocks.append(Paragraph("No records found."))
    return blocks


def build_report(paths: list[Path], out_dir: Path, format: str) -> Path:
    """Write ``report.md`` or ``report.html`` and its PNGs into ``out_dir`` from the records in ``paths``."""
    if format not in FORMATS:
        raise CreditlabError(f"unknown report format {format!r}; valid: {', '.join(FORMATS)}")
    records = load_records(paths)
    out_dir = Path(out_dir)
    blocks = report_blocks(records, out_dir, paths)
    target = out_dir / f"report.{format}"
    text = render_markdown(blocks, out_dir) if format == "md" else render_html(blocks, out_dir)
    target.write_text(text, encoding="utf-8")
    return target


def update_readme(readme: Path, paths: list[Path], out_dir: Path) -> Path:
    """Rewrite the text between ``<!-- results:begin -->`` and ``<!-- results:end -->`` in ``readme``
    with the generated results section (tables with commit and device per row, links to the PNGs)."""
    readme = Path(readme)
    if not readme.is_file():
        raise CreditlabError(f"README {readme} does not exist")
    text = readme.read_text(encoding="utf-8")
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < 0 or end < begin:
        raise CreditlabError(f"{readme} has no '{README_BEGIN}' ... '{README_END}' markers to fill")
    records = load_records(paths)
    blocks = report_blocks(records, Path(out_dir), paths, compact=True)
    source = " ".join(_link(Path(p), readme.parent) for p in paths)
    intro = Paragraph(f"_Generated by `creditlab report {source} --readme {readme.name}` from {len(records)} "
                      "records; do not edit by hand. Each row names the commit and device its "
                      "numbers came from._")
    section = render_markdown([intro, *blocks], readme.parent)
    new_text = text[:begin + len(README_BEGIN)] + "\n" + section + text[end:]
    readme.write_text(new_text, encoding="utf-8")
    return readme


__all__ = ["FORMATS", "README_BEGIN", "README_END", "accuracy_table", "build_report", "flatten_scalars",
           "latest_by", "plot_accuracy_vs_step_time", "plot_alignment", "plot_learning_curves",
           "render_html", "render_markdown", "report_blocks", "reproduce_blocks", "step_time_table",
           "update_readme"]
