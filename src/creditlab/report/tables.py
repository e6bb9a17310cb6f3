"""Generic tables from results records: accuracy per rule/model/dataset beside the papers' numbers,
step time as a ratio to BP beside the anchors', other timing records, and one table per reproduction
(an experiment's own ``summary`` tables where it registered one)."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from creditlab.papers import PaperValue, paper_accuracy, paper_step_time_ratio
from creditlab.report.render import Block, Heading, Paragraph, Table, fmt
from creditlab.results import device_type

PAPER_KEY = re.compile(r"paper|authors|biotorch", re.IGNORECASE)
MAX_KEY_VALUE_ROWS = 40
MAX_WIDE_COLUMNS = 10

#: experiment name -> its records -> its own tables (``Experiment.summary``)
Summaries = Mapping[str, Callable[[list[dict[str, Any]]], list[Table]]]


# -- selecting and formatting records ---------------------------------------------------------------

def latest_by(records: Iterable[dict[str, Any]], key: Any) -> list[dict[str, Any]]:
    """The newest record (by timestamp, then position) per value of ``key(record)``, in first-seen order."""
    chosen: dict[Any, dict[str, Any]] = {}
    for record in records:
        k = key(record)
        if k not in chosen or str(record.get("timestamp", "")) >= str(chosen[k].get("timestamp", "")):
            chosen[k] = record
    return list(chosen.values())



def config_identity(record: dict[str, Any]) -> Any:
    return record.get("config_key") or id(record)


def provenance(record: dict[str, Any]) -> tuple[str, str]:
    commit = str(record.get("commit", "unknown")) + ("+dirty" if record.get("dirty") else "")
    return commit, str(record.get("device", "?"))


def model_label(config: dict[str, Any]) -> str:
    options = {k: v for k, v in (config.get("model_options") or {}).items() if v}
    if not options:
        return str(config.get("model"))
    return f"{config.get('model')} ({', '.join(k if v is True else f'{k}={v}' for k, v in options.items())})"


def train_identity(record: dict[str, Any]) -> tuple[str, str, str]:
    """(rule, model, dataset) of a train record: from its config, else from its name ``rule/model/data``."""
    config = record.get("config") or {}
    parts = str(record.get("name", "")).split("/")
    parts += ["?"] * (3 - len(parts))
    return (str(config.get("rule", parts[0])), str(config.get("model", parts[1])),
            str(config.get("dataset", parts[2])))


class Footnotes:
    """Numbered references for paper numbers, so a table cell stays short."""

    def __init__(self) -> None:
        self.entries: dict[str, int] = {}

    def ref(self, number: PaperValue) -> int:
        """The footnote number of ``number``'s source, setting, note and (unless verified) status."""
        text = f"{number.source}. Setting: {number.setting}."
        if number.note:
            text += f" {number.note}."
        if number.status != "verified":
            text += f" ({number.status})"
        return self.entries.setdefault(text, len(self.entries) + 1)

    def notes(self) -> list[str]:
        return [f"[{i}] {text}" for text, i in self.entries.items()]


def paper_cell_text(shown: float, number: PaperValue, footnotes: Footnotes) -> str:
    """A paper's number in a cell: ``98.13 [1]``, with its status where it is not verified
    (``52.38 [3] unverified``)."""
    status = "" if number.status == "verified" else f" {number.status}"
    return f"{shown:.2f} [{footnotes.ref(number)}]{status}"


#: a measured quantity worth a rule page's cell (accuracy, error, loss, time, ratio, angle, divergence)
METRIC_KEY = re.compile(r"accuracy|error|loss|dkl|ratio|median_ms|samples_per_s|angle|_pct", re.IGNORECASE)


@dataclass(frozen=True)
class RuleMention:
    """A part of a record that measures one rule: the record, the rule, what the part is called in the
    record (``label``: the run, or the contender's key in ``final``) and its measured values."""

    record: dict[str, Any]
    rule: str
    label: str
    values: dict[str, Any]


def _name_rules(name: str, rules: Collection[str]) -> list[str]:
    """Rules named by the segments of a record name after the experiment (``gaitprop-mnist/tp``,
    ``gevb-mnist/vnn-fc:gevb+``, ``sal-deep/cifar10/kp``, ``ncg-fmnist/s2stdp+ncg``)."""
    found = []
    for segment in name.split("/")[1:]:
        for word in re.split(r"[:+ ]", segment):
            if word in rules and word not in found:
                found.append(word)
    return found


def rule_mentions(record: dict[str, Any], rules: Collection[str]) -> list[RuleMention]:
    """Every part of ``record`` that measures one of ``rules``, found where records of any kind say it:
    the rule of a train record; a config's or final's ``rule`` (or ``label``); the record name's segments;
    ``final`` keys that are rules, start with one (``FA λ=0.1``) or are ``config.variants`` naming one, each
    a contender's metrics; lists of
    runs in ``final`` that carry a ``rule`` (summarised per rule: runs and the mean of each metric)."""
    config, final = record.get("config") or {}, record.get("final") or {}
    name = str(record.get("name", ""))
    if record.get("kind") == "train":
        rule = train_identity(record)[0]
        return [RuleMention(record, rule, name, final)] if rule in rules else []
    mentions: list[RuleMention] = []
    variants = config.get("variants") if isinstance(config.get("variants"), dict) else {}
    for key, value in final.items():
        variant, first_word = variants.get(key), str(key).split(" ", 1)[0].lower()
        rule = key if key in rules else (variant[0] if isinstance(variant, list | tuple) and variant
                                         else first_word if " " in str(key) and first_word in rules else None)
        if isinstance(value, dict) and rule in rules:
            mentions.append(RuleMention(record, str(rule), f"{name}: {key}", value))
    for key, value in final.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) and v.get("rule") in rules for v in value):
            for rule in dict.fromkeys(v["rule"] for v in value):
                runs = [v for v in value if v["rule"] == rule]
                means = {k: sum(float(v[k]) for v in runs) / len(runs) for k in runs[0]
                         if all(isinstance(v.get(k), int | float) and not isinstance(v.get(k), bool) for v in runs)
                         and METRIC_KEY.search(k)}
                mentions.append(RuleMention(record, rule, f"{name}: {key} of {rule}",
                                            {"runs": len(runs), **{f"mean {k}": m for k, m in means.items()}}))
    if mentions:
        return mentions
    named = [str(r) for r in (config.get("rule"), final.get("rule"), final.get("label")) if r in rules]
    named += [r for r in _name_rules(name, rules) if r not in named]
    return [RuleMention(record, named[0], name, final)] if named else []


def mention_metrics(values: dict[str, Any], limit: int = 4) -> str:
    """A few measured numbers of a mention, ``key value`` joined by ``; ``: its top-level ones, else its
    nested ones (per-fold, per-seed and initial values left out)."""
    flat = flatten_scalars(values, depth=2)
    picked = [(k, v) for k, v in flat.items() if METRIC_KEY.search(k) and isinstance(v, int | float)
              and not isinstance(v, bool) and "[" not in k and "initial" not in k]
    top = [(k, v) for k, v in picked if "." not in k]
    picked = top or picked  # nested numbers (per layer, quantiles) only where there is no top-level one
    return "; ".join(f"{k} {fmt(v)}" for k, v in picked[:limit]) or "–"


def differing_settings(records: Sequence[dict[str, Any]]) -> list[str]:
    """For each record, its scalar config values that differ among ``records`` (``width=256``), or ``''``."""
    flat = [flatten_scalars(r.get("config") or {}, depth=2) for r in records]
    keys = [k for k in dict.fromkeys(k for f in flat for k in f)
            if len({fmt(f.get(k)) for f in flat}) > 1 and not re.search(r"out|dir|path|device|commit", k)]
    return [", ".join(f"{k}={fmt(f.get(k))}" for k in keys[:4]) for f in flat]


# -- tables -------------------------------------------------------------------------------------------

def accuracy_table(records: Sequence[dict[str, Any]]) -> Table | None:
    """Test accuracy of every training run (newest per config) beside the paper's number for that cell."""
    train = latest_by((r for r in records if r.get("kind") == "train"), config_identity)
    if not train:
        return None
    footnotes = Footnotes()
    rows = []
    for record in sorted(train, key=lambda r: tuple(reversed(train_identity(r)))):
        config, final = record.get("config") or {}, record.get("final") or {}
        rule, model, dataset = train_identity(record)
        paper = paper_accuracy(rule, model, dataset, config.get("model_options"), config.get("optimizer"))
        paper_cell = "–"
        if paper is not None and paper.value is not None:
            paper_cell = paper_cell_text(100.0 - paper.value, paper, footnotes)
        epochs_done, epochs_set = final.get("epochs"), config.get("epochs")
        stopped_early = epochs_set and epochs_set != epochs_done
        budget = f"{epochs_done}" + (f"/{epochs_set}" if stopped_early else "") + " ep"
        if final.get("train_examples"):
            budget += f" × {final['train_examples'] / 1000:g}k"
        protocol = [str(config[k]) for k in ("optimizer", "schedule") if config.get(k) not in (None, "none")]
        if config.get("val_fraction"):
            protocol.append(f"val {100 * config['val_fraction']:g}%")
        if config.get("augment"):
            protocol.append("augment")
        budget += f" ({', '.join(protocol)})" if protocol else ""
        accuracy = final.get("test_accuracy")
        ours = "diverged" if "error" in final else (f"{100 * accuracy:.2f}" if accuracy is not None else "–")
        commit, device = provenance(record)
        rows.append([rule, model_label({**config, "model": model}), dataset, budget, ours, paper_cell,
                     fmt(record.get("wall_time_s"), 3), device, commit])
    columns = ["rule", "model", "dataset", "budget", "test acc. (%)", "paper test acc. (%)", "wall time (s)",
               "device", "commit"]
    notes = ["Budget: epochs run (/ configured, when training stopped early) × training examples (optimizer, "
             "schedule, validation split, augmentation: rows of one cell that differ in protocol say how). The paper "
             "numbers are the papers' full-budget results (100 − their test error %), shown for reference; "
             "a reduced budget is not expected to reach them.", *footnotes.notes()]
    return Table(columns, rows, notes)


def step_time_table(records: Sequence[dict[str, Any]]) -> Table | None:
    """Step time as a ratio to BP's on the same model and device: a row per (model, device), a column per
    rule (newest record per config), the anchors' ratio beside ours; BP's own ms/step in its column."""
    perf = latest_by((r for r in records if is_rule_timing(r)), config_identity)
    if not perf:
        return None
    footnotes = Footnotes()
    reasons: dict[str, int] = {}
    grid: dict[tuple[str, str, str], dict[str, str]] = {}
    commits: dict[tuple[str, str, str], set[str]] = {}
    rules: list[str] = []
    for record in perf:
        config, final = record["config"], record.get("final") or {}
        commit, device = provenance(record)
        rule = str(config.get("rule", "?"))
        key = (device_type(record.get("device", "")), model_label(config), device)
        rules += [rule] if rule not in rules else []
        commits.setdefault(key, set()).add(commit)
        if "median_ms" not in final:
            reason = str(final.get("unavailable", "not measured"))
            grid.setdefault(key, {})[rule] = f"n/a ({reasons.setdefault(reason, len(reasons) + 1)})"
            continue
        ratio = final.get("ratio_to_bp")
        cell = f"{final['median_ms']:.2f} ms" if rule == "bp" else (f"{ratio:.2f}" if ratio is not None else "–")
        anchor = paper_step_time_ratio(rule, config.get("model", ""), key[0])
        if anchor is not None and anchor.value is not None and rule != "bp":
            cell += f" ({paper_cell_text(anchor.value, anchor, footnotes)})"
        grid.setdefault(key, {})[rule] = cell
    order = ["bp", "fa", "usf", "brsf", "frsf", "kp", "dfa", "dfa+", "gevb"]
    rules = sorted(rules, key=lambda r: (order.index(r) if r in order else len(order), r))
    rows = [[model, device, *[grid[key].get(rule, "–") for rule in rules], ", ".join(sorted(commits[key]))]
            for key in sorted(grid) for (_, model, device) in [key]]
    methods = sorted({str((r.get("final") or {}).get("memory_method")) for r in perf
                      if (r.get("final") or {}).get("memory_method")})
    batch = sorted({str(b) for r in perf if (b := (r.get("final") or {}).get("batch_size")) is not None})
    notes = [f"Each rule's median step time over BP's on the same model and device (bp: its own ms/step); the "
             f"anchor's ratio to its own BP in brackets. A step is rule.step + optimizer step + model "
             f"constraints, batch {', '.join(batch)}; the rules of one model were timed interleaved in one "
             "process. Peak memory and state size per rule are in the records (" + "; ".join(methods) + ").",
             *[f"({i}) {reason}" for reason, i in reasons.items()], *footnotes.notes()]
    return Table(["model", "device", *rules, "commit"], rows, notes)


def is_rule_timing(record: dict[str, Any]) -> bool:
    """A ``perf`` record in the layout of ``bench/perf.py``: one rule, its step time (or why it has none)."""
    final = record.get("final") or {}
    return (record.get("kind") == "perf" and "rule" in (record.get("config") or {})
            and ("median_ms" in final or "unavailable" in final))


def other_timing_blocks(records: Sequence[dict[str, Any]]) -> list[Block]:
    """``perf`` records in other layouts (e.g. a benchmark script's record whose ``final`` maps each
    contender to its metrics): one table per benchmark (name before ``/``), a row per contender."""
    others = latest_by((r for r in records if r.get("kind") == "perf" and not is_rule_timing(r)),
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
                 *provenance(r)[::-1]] for r, contender, v in rows_by_record]
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
    label = f"{record.get('name')} `{key}` ({provenance(record)[0]}, {provenance(record)[1]})"
    body = [[fmt(row.get(c)) for c in columns] for row in flat]
    return Table([c + (" (paper)" if PAPER_KEY.search(c) else "") for c in columns], body, [label])


def reproduce_blocks(records: Sequence[dict[str, Any]], compact: bool = False,
                     summaries: Summaries | None = None) -> list[Block]:
    """One table per reproduction (records grouped by the name before ``/``), newest record per config.

    An experiment with an entry in ``summaries`` (name -> summary) makes its own tables from its
    records. Otherwise, several records in a group: one row each, with the scalar ``final`` metrics
    they share as columns (the paper's numbers included). One record: a metric | value table. ``compact`` leaves out the
    one-record tables (for the README), pointing to the full report instead.
    """
    reproduce = latest_by((r for r in records if r.get("kind") == "reproduce"),
                          lambda r: (r.get("name"), r.get("config_key")))
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in reproduce:
        groups.setdefault(str(record.get("name", "?")).split("/")[0], []).append(record)
    summaries = summaries or {}
    blocks: list[Block] = []
    for name, group in sorted(groups.items()):
        commits = sorted({provenance(r)[0] for r in group})
        devices = sorted({provenance(r)[1] for r in group})
        quick = any(_is_quick(r) for r in group)
        command = f"creditlab reproduce {name}{' --quick' if quick else ''}"
        header = (f"`{command}`: {len(group)} record(s); commit "
                  f"{', '.join(commits)}; device {', '.join(devices)}.")
        if quick:
            header += " Quick mode: smoke numbers from a reduced run, not results."
        summary = summaries.get(name)
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
                label = f"{record.get('name')} ({provenance(record)[0]}, {record.get('timestamp', '')})"
                blocks.append(Table(["metric", label], rows, notes))
        else:
            blocks += [Paragraph(f"**{name}**: {header} Metrics: see the full report.")]
    return blocks



__all__ = ["MAX_WIDE_COLUMNS", "METRIC_KEY", "PAPER_KEY", "Footnotes", "RuleMention", "Summaries",
           "accuracy_table", "config_identity", "differing_settings", "flatten_scalars", "is_rule_timing", "latest_by",
           "mention_metrics", "model_label", "other_timing_blocks", "provenance", "reproduce_blocks",
           "rule_mentions", "step_time_table", "train_identity"]
