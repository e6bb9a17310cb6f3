"""``creditlab reproduce``: every registered experiment runs in its quick mode, options are checked."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from creditlab.cli import app
from creditlab.experiments import load_all
from creditlab.results import read_records

EXPERIMENT_NAMES = load_all().names()


@pytest.mark.parametrize("name", EXPERIMENT_NAMES)
def test_every_experiment_runs_in_quick_mode(name: str, tmp_path: Path, data_root: Path, one_thread) -> None:
    result = CliRunner().invoke(app, ["reproduce", name, "--quick", "--threads", "1", "--out", str(tmp_path),
                                      "--data-dir", str(data_root)])
    assert result.exit_code == 0, result.output[-3000:]
    records = read_records(tmp_path / "results.jsonl") if (tmp_path / "results.jsonl").exists() else []
    assert f"{name}: {len(records)} records" in result.output
    if name != "fa-theory-figures":  # the one experiment that only redraws figures from records
        assert records and all(r["kind"] == "reproduce" and r["name"].split("/")[0] == name for r in records)


def test_unknown_experiment_and_unknown_option_are_refused() -> None:
    result = CliRunner().invoke(app, ["reproduce", "no-such-experiment"])
    assert result.exit_code == 2 and "unknown experiment 'no-such-experiment'" in result.output
    assert "gevb-mnist" in result.output
    result = CliRunner().invoke(app, ["reproduce", "gevb-mnist", "--opt", "row=vnn-fc:gevb+"])
    assert result.exit_code == 2 and "no option 'row'" in result.output
    assert "valid: epochs, parallel, rows, seeds, test_limit, time_budget, train_limit" in result.output
    result = CliRunner().invoke(app, ["reproduce", "biotorch-mnist-lenet", "--opt", "epochs=3"])
    assert result.exit_code == 2 and "takes no options" in result.output
    result = CliRunner().invoke(app, ["reproduce", "gevb-mnist", "--opt", "rows=vnn-fc"])
    assert result.exit_code == 2 and "expected MODEL:LABEL" in result.output
