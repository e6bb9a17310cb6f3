"""``creditlab report``: the report's blocks from results records, written as Markdown or HTML with its
PNGs. Every row names the commit and device its numbers came from."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from creditlab.errors import CreditlabError
from creditlab.report.headline import Headline
from creditlab.report.plots import plot_accuracy_vs_step_time, plot_alignment, plot_learning_curves
from creditlab.report.render import Block, Heading, Image, Paragraph, render_html, render_markdown
from creditlab.report.tables import (
    Summaries,
    accuracy_table,
    other_timing_blocks,
    provenance,
    reproduce_blocks,
    step_time_table,
)
from creditlab.results import read_records

FORMATS = ("md", "html")


# -- the report --------------------------------------------------------------------------------------------

def load_records(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Every record in the JSON-lines files or directories ``paths``; CreditlabError if a path is missing."""
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise CreditlabError(f"no results at {', '.join(missing)} (run `creditlab bench quick` first?)")
    return read_records(paths)


def experiment_summaries() -> Summaries:
    """name -> summary of every registered experiment that has one (its own tables in the report).

    The one place the report asks the experiment registry (imported here, at call time); experiments
    import only ``creditlab.report.render``, so the imports never run in a circle.
    """
    from creditlab.experiments import load_all

    registry = load_all()
    return {name: summary for name in registry.names() if (summary := registry.get(name).summary)}


def experiment_headlines(records: Sequence[dict[str, Any]]) -> list[Headline]:
    """README's rows: every registered headline function (in its order) applied to ``records``."""
    from creditlab.experiments import HEADLINES, load_all

    load_all()
    return [row for _, fn in sorted(HEADLINES.items()) for row in fn(list(records))]


def report_blocks(records: Sequence[dict[str, Any]], out_dir: Path, sources: Sequence[Path],
                  compact: bool = False, summaries: Summaries | None = None) -> list[Block]:
    """The report's blocks; writes its PNGs into ``out_dir``. ``compact`` is the README's variant;
    ``summaries`` defaults to :func:`experiment_summaries`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    commits = sorted({provenance(r)[0] for r in records})
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
    reproductions = reproduce_blocks(
        records, compact, experiment_summaries() if summaries is None else summaries)
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



__all__ = ["FORMATS", "build_report", "experiment_headlines", "experiment_summaries", "load_records",
           "report_blocks"]
