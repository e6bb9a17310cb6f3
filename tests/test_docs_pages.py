"""The docs pages say what the records say: every rule's page shows every record of that rule, whatever
experiment wrote it; generated sections read cleanly (no name printed twice); paper pages show the
README's rows for their paper."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from creditlab.results import append_record, make_record

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """docs/ with its generated sections written from the committed records (as `make docs` does)."""
    from creditlab.report.docs import write_docs_sections

    docs = tmp_path_factory.mktemp("site") / "docs"
    shutil.copytree(REPO / "docs", docs, ignore=shutil.ignore_patterns("generated"))
    write_docs_sections([REPO / "results"], docs)
    return docs


def _records_naming(rule: str, with_final: bool = False) -> Any:
    """Names of committed records that say, in their own words, that they measure ``rule``: the rule of
    the config or the final metrics, a segment of the run name, or a key of the final metrics (read from
    the raw JSON lines here, independently of the report's code)."""
    names = set()
    for path in sorted((REPO / "results").rglob("*.jsonl")):
        if "checkpoints" in path.parts:
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line) if line.strip() else {}
            if "kind" not in record:
                continue
            name, config, final = str(record.get("name", "")), record.get("config") or {}, record.get("final") or {}
            segments = {word for segment in name.split("/")[1:] for word in segment.replace(":", "+").split("+")}
            if config.get("rule") or final.get("rule"):  # the record's own word, where it has one
                segments = set()
            if (config.get("rule") == rule or final.get("rule") == rule or rule in segments
                    or (record["kind"] == "train" and name.split("/")[0] == rule) or isinstance(final.get(rule), dict)):
                names.add((name, json.dumps(final)) if with_final else name)
    return names


def _rules() -> list[str]:
    from creditlab.rules import RULES

    return list(RULES.names())


@pytest.mark.parametrize("rule", _rules())
def test_rule_page_shows_every_record_of_the_rule(rule: str, generated: Path) -> None:
    page = (generated / "generated" / "rules" / f"{rule}.md").read_text(encoding="utf-8")
    names = _records_naming(rule)
    if not names:
        assert "No training or step-time records" in page
        return
    assert "No training or step-time records" not in page, f"{rule} has records {sorted(names)[:3]}"
    for name in names:  # the accuracy table shows (rule, model, dataset); the others the run's name
        shown = name if "/" not in name or not name.startswith(f"{rule}/") else name.split("/")[1]
        assert shown in page, f"{rule}'s page does not show the record {name}"


def test_rule_page_finds_records_of_any_experiment(tmp_path: Path) -> None:
    """Synthetic records of three layouts: a reproduction run named by its rule, a benchmark whose final
    holds one dict per contender, a run list carrying each run's rule."""
    from creditlab.report.docs import write_docs_sections

    store = tmp_path / "results" / "r.jsonl"
    append_record(store, make_record("reproduce", "paper-x/cifar10/kp", {"epochs": 1}, {"test_accuracy": 0.4321}))
    append_record(store, make_record("perf", "bench-y", {"width": 8},
                                     {"bp": {"median_ms": 2.0}, "tp": {"median_ms": 5.0, "ratio_to_bp": 2.5}}))
    append_record(store, make_record("reproduce", "lib-z", {}, {"runs": [
        {"rule": "dtp", "test_accuracy": 0.25}, {"rule": "dtp", "test_accuracy": 0.75}]}))
    docs = tmp_path / "docs"
    (docs / "papers").mkdir(parents=True)
    write_docs_sections([tmp_path / "results"], docs)
    pages = {rule: (docs / "generated" / "rules" / f"{rule}.md").read_text() for rule in ("kp", "tp", "dtp", "fa")}
    assert "paper-x/cifar10/kp" in pages["kp"] and "0.4321" in pages["kp"]
    assert "bench-y" in pages["tp"] and "2.5" in pages["tp"]
    assert "lib-z" in pages["dtp"] and "mean test_accuracy 0.5" in pages["dtp"]
    assert "No training or step-time records of `fa` yet" in pages["fa"]


def test_figure_has_a_row_for_every_rule_and_says_which_lack_records(tmp_path: Path) -> None:
    """README's "every rule beside backprop": with records of bp and fa only, every other registered rule
    is named in the caption as lacking each kind of record; a rule's accuracy is drawn beside BP's run of
    the same setting."""
    from creditlab.report.plots import plot_rules_side_by_side, rule_overview, rules_side_by_side_caption

    config = {"model": "mlp", "dataset": "mnist", "epochs": 1}
    records = [make_record("train", f"{rule}/mlp/mnist", {"rule": rule, **config}, {"test_accuracy": acc})
               for rule, acc in (("bp", 0.9), ("fa", 0.8))]
    records += [make_record("perf", f"{rule}/mlp", {"rule": rule, "model": "mlp"},
                            {"median_ms": ms, "ratio_to_bp": ms / 2.0}, device="cpu") for rule, ms in (("bp", 2.0),
                                                                                                      ("fa", 3.0))]
    overview = rule_overview(records)
    assert set(overview) == set(_rules())
    assert overview["fa"]["accuracy"] == [("mlp/mnist, 1 ep", 80.0, 90.0)]
    assert overview["fa"]["step"] == [("mlp", 1.5)]
    caption = rules_side_by_side_caption(overview)
    no_step, no_accuracy = caption.split("No cpu step-time record yet:")[1].split("No test-accuracy record yet:")
    for rule in set(_rules()) - {"bp", "fa"}:
        assert rule in no_step and rule in no_accuracy, rule
    assert plot_rules_side_by_side(records, tmp_path / "f.png").stat().st_size > 1000


def test_committed_records_of_each_rule_reach_the_figure() -> None:
    """Every rule that a committed record measures a test accuracy of (its final metrics name one; read
    from the raw records here) has an accuracy entry in the figure, and a rule without one is named."""
    from creditlab.report.build import load_records
    from creditlab.report.plots import rule_overview, rules_side_by_side_caption

    overview = rule_overview(load_records([REPO / "results"]))
    caption = rules_side_by_side_caption(overview).split("No test-accuracy record yet:")
    for rule in _rules():
        measured = [name for name, final in _records_naming(rule, with_final=True)
                    if '"test_acc' in final or '"test_error' in final]
        if measured:
            assert overview[rule]["accuracy"], f"{rule}: {measured[:3]} hold a test accuracy"
        if not overview[rule]["accuracy"]:
            assert len(caption) == 2 and rule in caption[1], rule


def test_readme_and_docs_link_nothing_outside_the_repository() -> None:
    """The project's documents stand alone: every relative link of README and the docs stays inside the
    repository, and no text points at a file beside it (``../shared/...``; the optional data folder
    ``../shared/data`` is a place to look for datasets, not a document)."""
    import re

    outside = []
    pages = [REPO / "README.md", *sorted(p for p in (REPO / "docs").rglob("*.md") if "generated" not in p.parts)]
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            resolved = (page.parent / target.split("#", 1)[0]).resolve()
            if REPO.resolve() not in (resolved, *resolved.parents):
                outside.append(f"{page.relative_to(REPO)} -> {target}")
        outside += [f"{page.relative_to(REPO)}: {m}" for m in re.findall(r"(?:\.\./)+shared/(?!data\b)\S*", text)]
    assert not outside, "\n".join(outside)


def test_generated_paper_sections_do_not_repeat_the_experiment_name(generated: Path) -> None:
    """The page heads each section with the experiment's name; the section itself does not again."""
    for section in sorted((generated / "generated" / "papers").glob("*.md")):
        headings = [line for line in section.read_text(encoding="utf-8").splitlines() if line.startswith("#")]
        assert f"### {section.stem}" not in headings, section.name


def test_truenorth_rule_list_is_the_construction_check(generated: Path) -> None:
    """docs/papers/truenorth.md lists the rules that can be built on a truenorth model (built here
    directly), node-perturbation among them, as a Markdown list that renders as one."""
    import markdown
    import torch

    from creditlab.errors import IncompatibleModelError
    from creditlab.models import build_model
    from creditlab.rules import build_rule

    trains = []
    for rule in _rules():
        torch.manual_seed(0)
        try:
            build_rule(rule, build_model("truenorth", (1, 28, 28), 10))
        except IncompatibleModelError:
            continue
        trains.append(rule)
    assert "node-perturbation" in trains
    page = (generated / "papers" / "truenorth.md").read_text(encoding="utf-8")
    assert '--8<-- "generated/models/truenorth.md"' in page
    section = (generated / "generated" / "models" / "truenorth.md").read_text(encoding="utf-8")
    first = section.split("\n", 1)[0]
    assert all(f"`{rule}`" in first for rule in trains), first
    assert all(f"`{rule}`" not in first for rule in set(_rules()) - set(trains)), first
    html = markdown.markdown(section)
    assert html.count("<li>") == len({line for line in section.splitlines() if line.startswith("- ")}) > 0


def test_wide_tables_scroll_instead_of_hiding_columns() -> None:
    """The site's stylesheet (named in mkdocs.yml) lets a table wider than the page scroll sideways."""
    import re

    import yaml

    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    sheets = config.get("extra_css") or []
    assert sheets, "mkdocs.yml names no stylesheet"
    css = "".join((REPO / "docs" / sheet).read_text(encoding="utf-8") for sheet in sheets)
    rule = re.search(r"\.md-typeset table:not\(\[class\]\)\s*\{([^}]*)\}", css)
    assert rule and "overflow-x: auto" in rule.group(1) and "display: block" in rule.group(1)
