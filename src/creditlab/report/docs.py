"""The documentation site's generated sections: each paper page's full tables and each rule page's
measured accuracy and step-time rows, written from the records into ``docs/generated/`` (which pages
include with ``--8<--``), and the records' figures copied beside them. ``make docs`` runs it first."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from creditlab.report.build import experiment_headlines, experiment_summaries, load_records
from creditlab.report.headline import Headline, page_headline_table
from creditlab.report.plots import plot_alignment
from creditlab.report.render import Block, Heading, Image, Paragraph, Table, fmt, render_markdown
from creditlab.report.tables import (
    accuracy_table,
    differing_settings,
    flatten_scalars,
    is_rule_timing,
    latest_by,
    mention_metrics,
    other_timing_blocks,
    provenance,
    reproduce_blocks,
    rule_mentions,
    step_time_table,
    train_identity,
)

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


def experiment_pages(docs_dir: Path, names: Iterable[str]) -> dict[str, str]:
    """Each of ``names`` (experiments, benchmarks) -> the docs page (relative to ``docs_dir``) about it:
    the paper page that includes one of its generated sections, else the first paper page naming it."""
    texts = {page.relative_to(docs_dir).as_posix(): page.read_text(encoding="utf-8")
             for page in sorted((Path(docs_dir) / "papers").glob("*.md"))}
    pages: dict[str, str] = {}
    for page, text in texts.items():
        for name in re.findall(r'--8<-- "generated/(?:papers|benchmarks|fields)/([^"/]+)(?:/[^"/]+)?\.md"', text):
            pages.setdefault(name, page)
    for name in names:
        if name not in pages:
            named = [page for page, text in texts.items() if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text)]
            if named:
                pages[name] = named[0]
    return pages


def _other_records_table(records: list[dict[str, Any]], rule: str, pages: dict[str, str]) -> Table | None:
    """Every record of ``rule`` that the accuracy and step-time tables do not show (reproductions,
    analyses, benchmarks of other layouts), newest per run and configuration: a row per part that
    measures the rule, with the settings that tell rows of one run apart."""
    from creditlab.rules import RULES

    names = set(RULES.names())
    others = [r for r in records if r.get("kind") != "train" and not is_rule_timing(r)]
    mentions = [m for r in latest_by(others, lambda r: (r.get("name"), r.get("config_key")))
                for m in rule_mentions(r, names) if m.rule == rule]
    if not mentions:
        return None
    groups: dict[str, list[Any]] = {}
    for mention in sorted(mentions, key=lambda m: (m.label, str(m.record.get("timestamp", "")))):
        groups.setdefault(mention.label, []).append(mention)
    rows = []
    for label, group in groups.items():
        settings = differing_settings([m.record for m in group]) if len(group) > 1 else [""]
        for mention, setting in zip(group, settings, strict=True):
            experiment = str(mention.record.get("name", "?")).split("/")[0]
            page = pages.get(experiment)
            where = f"[{experiment}](../{page})" if page else f"`{experiment}`"
            commit, device = provenance(mention.record)
            quick = " (quick: smoke run)" if (mention.record.get("config") or {}).get("quick") else ""
            rows.append([where, label + quick, setting or "–", mention_metrics(mention.values), device, commit])
    return Table(["experiment", "run", "setting", "measured", "device", "commit"], rows,
                 ["Every other record that measures this rule (newest per run and configuration; setting: what "
                  "tells the rows of one run apart), with a few of its numbers; the experiment's page has the "
                  "full tables and the protocol."])


def _rule_blocks(records: list[dict[str, Any]], rule: str, figures: Path,
                 pages: dict[str, str] | None = None) -> list[Block]:
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
    others = _other_records_table(records, rule, pages or {})
    if others is not None:
        blocks += [Paragraph("**In reproductions and benchmarks**:"), others]
    figures.mkdir(parents=True, exist_ok=True)
    alignment = plot_alignment(trained, figures / f"alignment_{rule.replace('+', 'plus')}.png")
    if alignment is not None:
        blocks += [Paragraph("**Alignment with the true gradient over training** (per layer, `--track-alignment`):"),
                   Image(alignment, f"alignment of {rule} with the true gradient")]
    return blocks


def write_docs_sections(paths: list[Path], docs_dir: Path) -> list[Path]:
    """Write ``docs_dir/generated/papers/<experiment>.md`` for every registered experiment,
    ``generated/headlines/<page>.md`` (README's rows of that paper page), ``generated/train/<model>-<dataset>.md``
    (training runs of that pair) and ``generated/rules/<rule>.md`` for every registered rule (a line saying
    there is no record yet where there is none), and copy the records' figures to ``generated/results/``."""
    from creditlab.experiments import load_all
    from creditlab.rules import RULES

    records = load_records(paths)
    target = Path(docs_dir) / GENERATED
    if target.exists():
        shutil.rmtree(target)
    figures = target / "results"
    _copy_figures([Path(p) for p in paths if Path(p).is_dir()], figures)
    summaries = experiment_summaries()
    pages = experiment_pages(Path(docs_dir), {str(r.get("name", "")).split("/")[0] for r in records})
    written = []
    for name in load_all().names():
        mine = [r for r in records if str(r.get("name", "")).split("/")[0] == name]
        # the page heads the section with the experiment's name already: not printed twice
        blocks = [_local_image(b, figures) for b in reproduce_blocks(mine, False, summaries)
                  if not (isinstance(b, Heading) and b.text == name)]
        written.append(_write(target / "papers" / f"{name}.md", blocks, Path(docs_dir) / "papers",
                              f"No records of `creditlab reproduce {name}` yet."))
    by_page: dict[str, list[Headline]] = {}
    for headline in experiment_headlines(records):
        by_page.setdefault(Path(headline.page).name, []).append(headline)
    for page in sorted((Path(docs_dir) / "papers").glob("*.md")):
        rows = by_page.get(page.name, [])
        written.append(_write(target / "headlines" / page.name, [page_headline_table(rows)] if rows else [],
                              Path(docs_dir) / "papers", "No README row from this paper's records yet."))
    for (model, dataset), group in _train_groups(records).items():
        written.append(_write(target / "train" / f"{model}-{dataset}.md", _train_blocks(records, group, model),
                              Path(docs_dir) / "papers", f"No training records of {model} on {dataset} yet."))
    for block_name, blocks in _benchmark_sections(records).items():
        written.append(_write(target / "benchmarks" / f"{block_name}.md", blocks, Path(docs_dir) / "papers",
                              f"No records of `{block_name}` yet."))
    for included in _included(Path(docs_dir), "fields", depth=2):
        experiment, field = included.split("/")
        written.append(_write(target / "fields" / experiment / f"{field}.md", _field_blocks(records, experiment, field),
                              Path(docs_dir) / "papers", f"No record of `{experiment}` holds `{field}` yet."))
    for model in _included(Path(docs_dir), "models"):
        written.append(_write(target / "models" / f"{model}.md", _model_blocks(model), Path(docs_dir),
                              f"No rule can train `{model}`."))
    for rule in RULES.names():
        written.append(_write(target / "rules" / f"{rule}.md", _rule_blocks(records, rule, figures / "rules", pages),
                              Path(docs_dir) / "rules",
                              f"No training or step-time records of `{rule}` yet."))
    return written


def _included(docs_dir: Path, section: str, depth: int = 1) -> list[str]:
    """Names ``X`` (``depth`` 2: ``A/B``) of the ``generated/<section>/X.md`` files some docs page includes."""
    names: set[str] = set()
    part = "/".join(['[^"/]+'] * depth)
    for page in Path(docs_dir).rglob("*.md"):
        if GENERATED not in page.relative_to(docs_dir).parts:
            text = page.read_text(encoding="utf-8")
            names.update(re.findall(rf'--8<-- "{GENERATED}/{section}/({part})\.md"', text))
    return sorted(names)


def _benchmark_sections(records: list[dict[str, Any]]) -> dict[str, list[Block]]:
    """``generated/benchmarks/<name>.md``: each benchmark of its own layout (``perf`` records that are not
    one rule's step time), a row per contender, as the report's "Other timing records" show it."""
    sections: dict[str, list[Block]] = {}
    current = None
    for block in other_timing_blocks(records):
        if isinstance(block, Heading):
            current = sections.setdefault(block.text, [])
        elif current is not None:
            current.append(block)
    return sections


def _field_blocks(records: list[dict[str, Any]], experiment: str, field: str) -> list[Block]:
    """``generated/fields/<experiment>/<field>.md``: one row per run of ``experiment`` (newest per run and
    full runs), the scalars of ``final[field]`` as columns, so a page quotes a record's
    numbers (e.g. ``ncg-fmnist/cost_per_inference``) without typing them."""
    runs = [r for r in latest_by((r for r in records if str(r.get("name", "")).split("/")[0] == experiment
                                  and not (r.get("config") or {}).get("quick")),
                                 lambda r: r.get("name"))
            if isinstance((r.get("final") or {}).get(field), dict | int | float)]
    if not runs:
        return []
    flat = [flatten_scalars({field: r["final"][field]}, depth=3) for r in runs]
    columns = list(dict.fromkeys(k for f in flat for k in f))
    rows = [[str(r.get("name", "?")).split("/", 1)[-1], *[fmt(f.get(c), 5) for c in columns], *provenance(r)[::-1]]
            for r, f in sorted(zip(runs, flat, strict=True), key=lambda p: str(p[0].get("timestamp", "")))]
    note = f"`final.{field}` of every `{experiment}` record (the newest of each run), oldest first."
    return [Table(["run", *[c.split(".", 1)[-1] if "." in c else c for c in columns], "device", "commit"], rows,
                  [note])]


def _model_blocks(model: str) -> list[Block]:
    """Which registered rules train ``model`` and why the others refuse it: the construction check of
    ``creditlab rules`` (``creditlab.bench.compat``), never a typed list."""
    from creditlab.bench.compat import refusal
    from creditlab.rules import RULES

    trains, refused = [], {}
    for rule in RULES.names():
        why = refusal(rule, model)
        if why is None:
            trains.append(rule)
        else:
            refused.setdefault(why.replace(f"rule '{rule}' ", "the rule "), []).append(rule)
    blocks: list[Block] = []
    if trains:
        blocks.append(Paragraph(f"Rules that train `{model}` (`creditlab rules`: the rule is built on the model): "
                                + ", ".join(f"`{r}`" for r in trains) + "."))
    if refused:
        blocks.append(Paragraph("The others refuse it when they are built, with these messages:\n\n" + "\n".join(
            f"- {', '.join(f'`{r}`' for r in rules)}: {why}" for why, rules in refused.items())))
    return blocks


def _train_groups(records: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Train records by (model, dataset)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        if record.get("kind") == "train":
            _, model, dataset = train_identity(record)
            groups.setdefault((model, dataset), []).append(record)
    return groups


def _train_blocks(records: list[dict[str, Any]], trained: list[dict[str, Any]], model: str) -> list[Block]:
    """``generated/train/<model>-<dataset>.md``: every rule's accuracy on that pair and the step times
    measured on that model (for pages that discuss `creditlab train` runs, e.g. BioTorch's)."""
    blocks: list[Block] = []
    accuracy = accuracy_table(trained)
    if accuracy:
        blocks += [Paragraph("**Test accuracy** (`creditlab train`, newest record per configuration):"), accuracy]
    timed = [r for r in records if is_rule_timing(r) and (r.get("config") or {}).get("model") == model]
    step_time = step_time_table(timed)
    if step_time:
        blocks += [Paragraph(f"**Step time relative to backprop on {model}** (interleaved in one process):"),
                   step_time]
    return blocks


def _local_image(block: Block, figures: Path) -> Block:
    """An Image block pointing at a copy under the docs folder (pages cannot link outside docs/)."""
    if isinstance(block, Image) and block.path.exists() and figures not in block.path.parents:
        copy = figures / "report" / block.path.name
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(block.path, copy)
        return Image(copy, block.alt)
    return block


__all__ = ["GENERATED", "write_docs_sections"]
