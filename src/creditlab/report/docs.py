"""The documentation site's generated sections: each paper page's full tables and each rule page's
measured accuracy and step-time rows, written from the records into ``docs/generated/`` (which pages
include with ``--8<--``), and the records' figures copied beside them. ``make docs`` runs it first."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from creditlab.report.build import experiment_summaries, load_records
from creditlab.report.plots import plot_alignment
from creditlab.report.render import Block, Image, Paragraph, render_markdown
from creditlab.report.tables import accuracy_table, reproduce_blocks, step_time_table, train_identity

GENERATED = "generated"


def _copy_figures(results_dirs: Sequence[Path], target: Path) -> None:
    """Every PNG under the results folders, copied to ``target`` keeping its path below its folder."""
    for root in results_dirs:
        if not root.is_dir():
            continue
        for png in sorted(root.rglob("*.png")):
            if "checkpoints" in png.parts:
                continue
            destination = target / png.relative_to(root)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(png, destination)


def _write(path: Path, blocks: list[Block], base: Path, empty: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_markdown(blocks or [Paragraph(empty)], base), encoding="utf-8")
    return path


def _rule_blocks(records: list[dict[str, Any]], rule: str, figures: Path) -> list[Block]:
    trained = [r for r in records if r.get("kind") == "train" and train_identity(r)[0] == rule]
    timed = [r for r in records if r.get("kind") == "perf" and (r.get("config") or {}).get("rule") == rule]
    blocks: list[Block] = []
    accuracy = accuracy_table(trained)
    if accuracy:
        blocks += [Paragraph("**Measured accuracy** (newest record per configuration):"), accuracy]
    step_time = step_time_table(timed + [r for r in records if r.get("kind") == "perf"
                                         and (r.get("config") or {}).get("rule") == "bp"
                                         and any((t.get("config") or {}).get("model") == r["config"].get("model")
                                                 for t in timed)])
    if step_time and timed:
        blocks += [Paragraph("**Step time relative to backprop** (same model, interleaved in one process):"),
                   step_time]
    figures.mkdir(parents=True, exist_ok=True)
    alignment = plot_alignment(trained, figures / f"alignment_{rule.replace('+', 'plus')}.png")
    if alignment is not None:
        blocks += [Paragraph("**Alignment with the true gradient over training** (per layer, `--track-alignment`):"),
                   Image(alignment, f"alignment of {rule} with the true gradient")]
    return blocks


def write_docs_sections(paths: list[Path], docs_dir: Path) -> list[Path]:
    """Write ``docs_dir/generated/papers/<experiment>.md`` for every registered experiment and
    ``docs_dir/generated/rules/<rule>.md`` for every registered rule (a line saying there is no
    record yet where there is none), and copy the records' figures to ``docs_dir/generated/results/``."""
    from creditlab.experiments import load_all
    from creditlab.rules import RULES

    records = load_records(paths)
    target = Path(docs_dir) / GENERATED
    if target.exists():
        shutil.rmtree(target)
    figures = target / "results"
    _copy_figures([Path(p) for p in paths if Path(p).is_dir()], figures)
    summaries = experiment_summaries()
    written = []
    for name in load_all().names():
        mine = [r for r in records if str(r.get("name", "")).split("/")[0] == name]
        blocks = [b for b in reproduce_blocks(mine, False, summaries)]
        blocks = [_local_image(b, figures) for b in blocks]
        written.append(_write(target / "papers" / f"{name}.md", blocks, Path(docs_dir) / "papers",
                              f"No records of `creditlab reproduce {name}` yet."))
    for rule in RULES.names():
        written.append(_write(target / "rules" / f"{rule}.md", _rule_blocks(records, rule, figures / "rules"),
                              Path(docs_dir) / "rules",
                              f"No training or step-time records of `{rule}` yet."))
    return written


def _local_image(block: Block, figures: Path) -> Block:
    """An Image block pointing at a copy under the docs folder (pages cannot link outside docs/)."""
    if isinstance(block, Image) and block.path.exists() and figures not in block.path.parents:
        copy = figures / "report" / block.path.name
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(block.path, copy)
        return Image(copy, block.alt)
    return block


__all__ = ["GENERATED", "write_docs_sections"]
