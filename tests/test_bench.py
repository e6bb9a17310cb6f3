"""Benchmark suites, the results runner (skip-if-recorded), the timing core and the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from creditlab.bench import perf
from creditlab.bench.compat import natural_model
from creditlab.bench.runner import (
    completed_keys,
    expand_suite,
    load_suite,
    parse_suite,
    run_suite,
    train_unit_config,
)
from creditlab.errors import CreditlabError
from creditlab.papers import paper_accuracy, paper_step_time_ratio
from creditlab.report.build import build_report
from creditlab.report.readme import README_BEGIN, README_END, update_readme
from creditlab.report.tables import flatten_scalars
from creditlab.results import append_record, config_key, make_record, read_records
from creditlab.rules import RULES

# -- suites -------------------------------------------------------------------------------------------


def test_shipped_suites_parse_and_expand_from_the_registries() -> None:
    quick = expand_suite(load_suite("quick"), "cpu")
    pairs = [(u.config["rule"], u.config["model"]) for u in quick]
    # every registered rule once on its natural model, plus BP on each model used
    for rule in RULES.names():
        assert (rule, natural_model(rule)) in pairs
    for model in {natural_model(r) for r in RULES.names()}:
        assert ("bp", model) in pairs
    assert len(pairs) == len(set(pairs))
    assert all(u.config["dataset"] == "mnist" and u.config["track_alignment"] for u in quick)
    perf_units = expand_suite(load_suite("perf"), "cpu")
    assert all(u.kind == "perf" and u.config["rules"][0] == "bp" for u in perf_units)
    timed = {r for u in perf_units for r in u.config["rules"]}
    assert timed == set(RULES.names())
    # GPU-only groups appear on cuda only
    assert len(expand_suite(load_suite("perf"), "cuda")) > 0
    assert not any(u.config["model"] == "resnet20" for u in perf_units)
    paper = expand_suite(load_suite("paper"), "cuda")
    assert {u.config["experiment"] for u in paper if u.kind == "reproduce"} >= {"biotorch-mnist-lenet"}


def test_suite_by_path_and_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    entry = {"id": "a", "kind": "perf", "model": "mlp", "rules": ["fa"]}
    path.write_text(yaml.safe_dump({"entries": [entry]}))
    suite = load_suite(str(path))
    assert suite.name == "mine" and suite.entries[0]["model"] == "mlp"
    with pytest.raises(CreditlabError, match="known suites: .*quick"):
        load_suite("no-such-suite")
    with pytest.raises(CreditlabError, match="kind 'trian'"):
        parse_suite({"entries": [{"kind": "trian"}]}, path)
    with pytest.raises(CreditlabError, match="unknown keys \\['epochs'\\]"):
        parse_suite({"entries": [{"kind": "train", "epochs": 3}]}, path)
    with pytest.raises(CreditlabError, match="two entries have the id"):
        parse_suite({"entries": [{"id": "x", "kind": "perf"}, {"id": "x", "kind": "perf"}]}, path)
    with pytest.raises(CreditlabError, match="unknown rule 'nope'"):
        run_suite(str(_write(tmp_path / "bad.yaml", [{"kind": "perf", "rules": ["nope"]}])), "cpu",
                  tmp_path / "r.jsonl")
    with pytest.raises(CreditlabError, match="cannot train model"):
        entry = {"kind": "train", "rules": ["gevb"], "model": "mlp"}
        expand_suite(parse_suite({"entries": [entry]}, path), "cpu")


def _write(path: Path, entries: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"name": path.stem, "entries": entries}))
    return path


# -- skip-if-recorded -----------------------------------------------------------------------------------

def test_completed_keys_match_config_and_commit() -> None:
    settings = {"epochs": 1, "train_limit": 100}
    config = train_unit_config("fa", "mlp", "mnist", settings, "cpu", 0, {}, {}, False)
    record = make_record("train", "fa/mlp/mnist", config, {"test_accuracy": 0.5})
    assert record["config_key"] == config_key(config)
    assert config_key(config) in completed_keys([record], record["commit"])
    assert config_key(config) not in completed_keys([record], "another-commit")
    other = train_unit_config("fa", "mlp", "mnist", {**settings, "epochs": 2}, "cpu", 0, {}, {}, False)
    assert config_key(other) != config_key(config)
    # a different rule with an identical training config is a different unit
    bp = train_unit_config("bp", "mlp", "mnist", settings, "cpu", 0, {}, {}, False)
    assert config_key(bp) != config_key(config)


def test_run_suite_records_once_then_skips(tmp_path: Path) -> None:
    suite = _write(tmp_path / "tiny.yaml", [{"id": "t", "kind": "perf", "model": "mlp", "rules": ["fa"],
                                             "batch_size": 8, "rounds": 2, "warmup": 1, "model_options":
                                             {"hidden": [16]}, "memory": False}])
    store = tmp_path / "store.jsonl"
    first = run_suite(str(suite), "cpu", store)
    assert [r["config"]["rule"] for r in first] == ["bp", "fa"]
    assert all(r["kind"] == "perf" and r["bench"]["suite"] == "tiny" for r in first)
    assert first[0]["final"]["ratio_to_bp"] == 1.0
    again = run_suite(str(suite), "cpu", store)
    assert again == [] and len(read_records(store)) == 2
    # a record from another commit does not count
    lines = [json.loads(line) for line in store.read_text().splitlines()]
    store.write_text("".join(json.dumps({**r, "commit": "0000000000"}) + "\n" for r in lines))
    assert len(run_suite(str(suite), "cpu", store)) == 2


def test_train_unit_runs_records_and_resumes(tmp_path: Path, data_root: Path) -> None:
    entry = {"id": "t", "kind": "train", "rules": ["bp"], "model": "mlp", "dataset": "mnist",
             "settings": {"epochs": 1, "train_limit": 256, "test_limit": 200, "batch_size": 64},
             "model_options": {"hidden": [32]}, "track_alignment": True}
    suite = _write(tmp_path / "train.yaml", [entry])
    store = tmp_path / "store.jsonl"
    records = run_suite(str(suite), "cpu", store, data_dir=data_root, runs_dir=tmp_path / "runs")
    (record,) = records
    assert record["kind"] == "train" and record["name"] == "bp/mlp/mnist"
    assert record["final"]["train_examples"] == 256 and 0 <= record["final"]["test_accuracy"] <= 1
    assert "alignment" in record["epochs"][0]
    run_dir = Path(record["bench"]["run_dir"])
    assert (run_dir / "checkpoint.pt").is_file()
    assert run_dir.parent.parent == tmp_path / "runs" / "train"  # runs/SUITE/COMMIT/UNIT
    assert run_suite(str(suite), "cpu", store, data_dir=data_root, runs_dir=tmp_path / "runs") == []


# -- timing core ------------------------------------------------------------------------------------------

def test_time_interleaved_counts_and_rotates() -> None:
    calls: list[str] = []
    steps = {name: (lambda x, y, name=name: calls.append(name)) for name in ("a", "b", "c")}
    batch = (torch.zeros(2, 1), torch.zeros(2, dtype=torch.long))
    times = perf.time_interleaved(steps, [batch], rounds=3, warmup=2, device="cpu")
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3, "c": 3}
    assert calls[:6] == ["a", "a", "b", "b", "c", "c"]  # warm-up, per function
    assert calls[6:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]  # rounds, order rotated
    with pytest.raises(ValueError, match="rounds"):
        perf.time_interleaved(steps, [batch], rounds=0, warmup=0, device="cpu")


def test_summarize_times_hand_values() -> None:
    rows = perf.summarize_times({"bp": [0.001, 0.002, 0.003], "fa": [0.002, 0.004, 0.006, 0.008, 0.010]}, 64)
    assert rows["bp"]["ratio_to_bp"] == 1.0 and rows["bp"]["median_ms"] == pytest.approx(2.0)
    assert rows["fa"]["median_ms"] == pytest.approx(6.0) and rows["fa"]["ratio_to_bp"] == pytest.approx(3.0)
    assert rows["fa"]["min_ms"] == pytest.approx(2.0) and rows["fa"]["max_ms"] == pytest.approx(10.0)
    assert rows["fa"]["p10_ms"] == pytest.approx(2.8)  # linear interpolation between 2 and 4 at 0.4
    assert rows["fa"]["samples_per_s"] == pytest.approx(64 / 0.006)
    assert perf.summarize_times({"fa": [0.1]}, 1)["fa"]["ratio_to_bp"] is None


def test_cpu_step_peak_counts_live_tensors() -> None:
    def three_live_mib() -> None:
        a = torch.zeros(1 << 18)  # 1 MiB of float32
        b = torch.ones(1 << 18) + a  # a temporary 1 MiB, then the 1 MiB result: 3 MiB live at once
        del a, b

    assert perf._cpu_step_peak(three_live_mib) == 3 * 2**20


def test_measure_rules_on_a_tiny_model() -> None:
    result = perf.measure_rules("mlp", ["fa", "dfa"], "cpu", batch_size=8, rounds=3, warmup=1,
                                model_options={"hidden": [16]})
    assert list(result.rows) == ["bp", "fa", "dfa"] and result.unavailable == {}
    for row in result.rows.values():
        assert row["timed_steps"] == 3 and row["min_ms"] <= row["median_ms"] <= row["max_ms"]
        assert row["samples_per_s"] == pytest.approx(8 / (row["median_ms"] / 1000))
        assert row["step_peak_bytes"] > 0
    # state of BP with Adam: parameters, exp_avg, exp_avg_sq (float32) and one step counter per tensor
    n_params = 784 * 16 + 16 + 16 * 10 + 10
    assert result.rows["bp"]["state_bytes"] == 3 * 4 * n_params + 4 * 4
    contenders, unavailable = perf.build_contenders("mlp", ["gevb"], "cpu", model_options={"hidden": [16]})
    assert contenders == {} and "cannot train" in unavailable["gevb"]


# -- paper numbers and the report ------------------------------------------------------------------------

def test_paper_numbers_lookup() -> None:
    assert paper_accuracy("gevb", "vnn-fc", "mnist").value == 1.87
    assert paper_accuracy("gevb", "vnn-fc", "mnist", {"mixed_sign": True}).value == 2.32
    assert paper_accuracy("bp", "arelu-fc", "mnist", {"nonnegative": True}).value == 1.36
    assert paper_accuracy("fa", "lenet", "mnist").value == 1.7
    assert paper_accuracy("bp", "lenet", "cifar10", optimizer="adam").value == 15.92
    assert paper_accuracy("bp", "mlp", "mnist") is None
    assert paper_step_time_ratio("dfa", "lenet", "cuda").value == 1.80


def _epochs(accuracies: list[float], with_alignment: bool) -> list[dict[str, Any]]:
    rows = []
    for i, acc in enumerate(accuracies, start=1):
        row: dict[str, Any] = {"epoch": i, "test_accuracy": acc, "train_loss": 1.0 / i,
                               "samples_per_s": 1000.0, "epoch_time_s": 5.0}
        if with_alignment:
            row["alignment"] = {"0.weight": {"angle_deg": 80.0 - 10 * i}, "2.weight": {"angle_deg": 60.0 + i},
                                "0.bias": {"angle_deg": 30.0}}
        rows.append(row)
    return rows


def _fixture_store(path: Path) -> None:
    for rule, model, accs in (("bp", "mlp", [0.95, 0.9712]), ("gevb", "vnn-fc", [0.9, 0.9634])):
        config = train_unit_config(rule, model, "mnist", {"epochs": 2, "train_limit": 5000}, "cpu", 0, {}, {},
                                   True)
        append_record(path, make_record("train", f"{rule}/{model}/mnist", config,
                                        {"test_accuracy": accs[-1], "epochs": 2, "train_examples": 5000},
                                        _epochs(accs, rule == "gevb"), 12.5))
    for rule, median in (("bp", 100.0), ("gevb", 93.0)):
        final = {"median_ms": median, "min_ms": median - 5, "max_ms": median + 9,
                 "ratio_to_bp": median / 100.0, "samples_per_s": 128000 / median,
                 "step_peak_bytes": 3 * 2**20, "state_bytes": 2**20,
                 "memory_method": "test", "batch_size": 128}
        append_record(path, make_record("perf", f"{rule}/vnn-fc", {"model": "vnn-fc", "rule": rule}, final))
    for rule, error in (("bp", 1.05), ("fa", 2.4)):
        append_record(path, make_record("reproduce", f"biotorch-mnist-lenet/{rule}", {"rule": rule},
                                        {"test_error_pct_anchor": error, "biotorch_test_error_pct": 0.91}))
    # an experiment without its own summary: the generic table, one row per dict of a list
    append_record(path, make_record("reproduce", "fa-theory-mnist", {"width": 3200, "paper": {"slope": -0.2}},
                                    {"per_lambda": [{"lambda": 0.0, "final_alignment": {"mean": 0.0502}}],
                                     "curve": [1.0] * 50}))
    append_record(path, make_record("reproduce", "fa-theory-loss",  # its summary: a row per lambda
                                    {"activation": "relu", "width": 3200, "runs": 2, "steps": 5000},
                                    {"per_lambda": [{"lambda": 0.02, "mean_loss_at": {"0": 141.0, "4999": 2.5e-3},
                                                     "sd_loss_at": {"0": 60.0, "4999": 1e-3},
                                                     "log10_loss_slope_second_half_per_1000_steps": -0.1,
                                                     "final_alignment": {"mean": 0.487}}]}))
    for seed, values in ((0, [0.25, 0.2]), (1, [0.21])):  # an experiment with its own summary tables
        append_record(path, make_record("reproduce", "fa-theory-alignment",
                                        {"activation": "relu", "seed": seed, "quick": False},
                                        {"cells": [{"width": 200, "lambda": 0.0, "ours": {"n": len(values)},
                                                    "alignment_values": values}]}))


def test_report_tables_and_plots(tmp_path: Path) -> None:
    store = tmp_path / "results" / "bench.jsonl"
    _fixture_store(store)
    report = build_report([store.parent], tmp_path / "report", "md")
    text = report.read_text()
    assert "97.12" in text and "96.34" in text  # our accuracies in percent
    assert "98.13 [" in text  # GEVB's paper accuracy (100 - 1.87) beside ours
    assert "0.93" in text and "0.95 [" in text  # our step-time ratio and the anchor's
    assert "1.05" in text and "2.4" in text and "0.91" in text  # reproduction rows with BioTorch's number
    assert "| final_alignment.mean |" in text and "| 0 | 0.0502 |" in text  # one row per lambda
    assert "config.paper.slope (paper)" in text
    assert "| 0.02 | 1.41e+02 ± 6.0e+01 | 2.50e-03 ± 1.0e-03 | -0.10 | 0.487 |" in text  # fa-theory-loss summary
    # fa-theory-alignment: the experiment's summary, runs of both seeds pooled beside the authors'
    assert "| 0 | 0.220±0.026 (3) / 0.220±0.051 | – / 0.136±0.043 |" in text and "| 1/1 | – |" in text
    title = "**relu: targets from a random teacher network"  # each panel's table is named above it
    assert text.index(title) < text.index("| 0 | 0.220±0.026 (3)")
    assert read_records(store)[0]["commit"] in text and "cpu:" in text  # provenance of every row
    for name in ("learning_curves", "alignment", "accuracy_vs_step_time"):
        png = tmp_path / "report" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({name}.png)" in text
    page = build_report([store], tmp_path / "html", "html").read_text()
    assert "<table>" in page and "<caption>relu: targets" in page and "97.12" in page and 'src="alignment.png"' in page
    with pytest.raises(CreditlabError, match="format"):
        build_report([store], tmp_path, "pdf")
    with pytest.raises(CreditlabError, match="no results"):
        build_report([tmp_path / "missing.jsonl"], tmp_path, "md")


def test_readme_section_rewritten_between_markers(tmp_path: Path) -> None:
    store = tmp_path / "results" / "bench.jsonl"
    _fixture_store(store)
    readme = tmp_path / "README.md"
    readme.write_text(f"# creditlab\n\nintro\n\n{README_BEGIN}\nold numbers\n{README_END}\n\nfooter\n")
    update_readme(readme, [store.parent], tmp_path / "results" / "report")
    text = readme.read_text()
    assert text.startswith("# creditlab\n\nintro\n\n" + README_BEGIN)
    assert text.endswith(README_END + "\n\nfooter\n")
    assert "old numbers" not in text and "| paper | claim | ours | paper's | status |" in text
    assert "(results/report/report.md)" in text  # the full tables, with commit and device per row
    update_readme(readme, [store.parent], tmp_path / "results" / "report")  # idempotent
    assert readme.read_text() == text
    readme.write_text("no markers")
    with pytest.raises(CreditlabError, match="markers"):
        update_readme(readme, [store], tmp_path / "r")


def test_flatten_scalars() -> None:
    flat = flatten_scalars({"a": 1, "b": {"c": 2.5, "d": [1, 2]}, "e": [{"f": 3}], "g": list(range(50))})
    assert flat == {"a": 1, "b.c": 2.5, "b.d": "1, 2", "e[0].f": 3}


def _append_many(path: str, writer: int) -> None:
    for i in range(40):
        append_record(path, {"writer": writer, "i": i, "payload": "x" * 200_000})


def test_concurrent_writers_never_interleave_record_lines(tmp_path: Path) -> None:
    import multiprocessing

    path = str(tmp_path / "results.jsonl")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(path, w)) for w in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    lines = Path(path).read_text().splitlines()
    assert len(lines) == 120
    assert sorted((r["writer"], r["i"]) for r in map(json.loads, lines)) == [(w, i) for w in range(3)
                                                                             for i in range(40)]


def test_records_reader_skips_run_logs_and_lines_that_are_not_records(tmp_path: Path) -> None:
    store = tmp_path / "results"
    append_record(store / "a.jsonl", make_record("train", "bp/mlp/mnist", {}, {"test_accuracy": 0.9}))
    append_record(store / "a.jsonl", {"epoch": 3, "test_accuracy": 0.8})  # not a record
    append_record(store / "gevb" / "checkpoints" / "r" / "metrics.jsonl", {"kind": "train", "name": "x"})
    append_record(store / "x" / "metrics.jsonl", {"epoch": 1})
    append_record(store / "fa" / "fa-theory-mnist-progress.jsonl", {"epoch": 1})
    assert [r["name"] for r in read_records(store)] == ["bp/mlp/mnist"]


def test_dirty_flag_ignores_results_and_the_readme_generated_section(tmp_path: Path, monkeypatch) -> None:
    import subprocess

    from creditlab import results
    from creditlab.report.readme import README_BEGIN, README_END

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "code.py").write_text("x = 1\n")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "r.jsonl").write_text("{}\n")
    readme = tmp_path / "README.md"
    readme.write_text(f"# t\nintro\n{README_BEGIN}\nold\n{README_END}\nend\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    monkeypatch.setattr(results, "_git", lambda *args: _git_in(tmp_path, *args))
    assert not results.git_dirty()
    (tmp_path / "results" / "r.jsonl").write_text("{}\n{}\n")  # a record appended
    readme.write_text(f"# t\nintro\n{README_BEGIN}\nnew numbers\n{README_END}\nend\n")  # section regenerated
    assert not results.git_dirty()
    readme.write_text(f"# t\nintro changed\n{README_BEGIN}\nnew numbers\n{README_END}\nend\n")
    assert results.git_dirty()
    readme.write_text(f"# t\nintro\n{README_BEGIN}\nold\n{README_END}\nend\n")
    (tmp_path / "pkg" / "code.py").write_text("x = 2\n")
    assert results.git_dirty()


def _git_in(root: Path, *args: str) -> str | None:
    import subprocess

    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None
