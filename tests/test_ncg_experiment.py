"""The NCG reproduction's quick path, the feature cache's refusals, and the fold split."""

from __future__ import annotations

import json

import pytest
import torch

from creditlab.experiments import ExperimentContext, load_all
from creditlab.experiments.ncg import stratified_folds
from creditlab.spiking.cache import FeatureCacheError, load_or_extract


def test_quick_reproduction_writes_records(tmp_path, data_root, one_thread) -> None:
    ctx = ExperimentContext(quick=True, out_dir=tmp_path, data_dir=data_root)
    records = load_all().get("ncg-fmnist").run(ctx)
    names = [r["name"] for r in records]
    assert "ncg-fmnist/s2stdp+ncg" in names and "ncg-fmnist/M-5 (no CR, no L)" in names
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == len(records) and json.loads(lines[0])["final"]["paper_status"] == "verified"
    assert (tmp_path / "ncg_fashion-mnist_updates.png").is_file()
    # features were cached: a second extraction reads them back
    assert any(p.name.startswith("features-") for p in (tmp_path / "cache").iterdir())


def test_cache_refuses_corrupt_and_stale_files(tmp_path) -> None:
    features = load_or_extract(tmp_path, "abc", lambda: torch.ones(3))
    assert torch.equal(load_or_extract(tmp_path, "abc", lambda: pytest.fail("re-extracted")), features)
    (tmp_path / "features-abc.pt").write_bytes(b"not a torch file")
    with pytest.raises(FeatureCacheError, match="corrupt or truncated.*delete it"):
        load_or_extract(tmp_path, "abc", lambda: torch.ones(3))
    torch.save({"key": "other", "features": torch.ones(3)}, tmp_path / "features-xyz.pt")
    with pytest.raises(FeatureCacheError, match="stale"):
        load_or_extract(tmp_path, "xyz", lambda: torch.ones(3))


def test_stratified_folds_partition_each_class() -> None:
    labels = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])
    folds = stratified_folds(labels, 2)
    assert [f.tolist() for f in folds] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_options_refused_with_the_valid_values() -> None:
    from creditlab.experiments.ncg import protocol_from

    assert protocol_from(False, {"folds_run": 2, "epochs": None}).folds_run == 2  # unset keys keep the full protocol
    assert protocol_from(False, {"methods": "sstdp"}).methods == ("sstdp",)
    with pytest.raises(ValueError, match=r"unknown \[.bp.\]; valid: s2stdp\+ncg, s2stdp, sstdp\+ncg, sstdp"):
        protocol_from(False, {"methods": ["s2stdp", "bp"]})
    with pytest.raises(ValueError, match=r"folds_run in \[1, folds\]"):
        protocol_from(True, {"folds": 3, "folds_run": 4})


def test_ablation_rows_use_the_authors_configuration_for_each_row() -> None:
    from creditlab.experiments.ncg import ablation, protocol_from

    # ggoupy/SpikeNN config/STDP-CSNN/F-MNIST/s2stdp+ncg-no-nt.json: theta 400, gap 0.01, A+ 0.01,
    # A- -0.1, CR (1, 0.5), M = 5, no non-target neurons
    cr2 = ablation("fashion-mnist")["M-5+CR-2 (no L)"]
    assert cr2["model"] == {"neurons_per_class": 5, "non_target_per_class": 0, "threshold": 400, "w_init_mean": 0.3,
                            "weight_norm": True, "regulation": "cr2"}
    assert cr2["rule_options"] == {"t_gap": 0.01, "a_plus": 0.01, "a_minus": -0.1, "annealing": 0.98,
                                   "threshold_lr": 1, "threshold_annealing": 0.5}
    assert cr2["authors_config"] == "config/STDP-CSNN/F-MNIST/s2stdp+ncg-no-nt.json"
    # .../s2stdp+ncg-no-cr-no-nt.json: theta 300, gap 0.005, A+ 0.1, A- -0.05, no regularizer
    no_cr = ablation("fashion-mnist", ("no-cr",))["M-5 (no CR, no L)"]
    assert no_cr["model"]["threshold"] == 300 and no_cr["model"]["regulation"] == "none"
    assert no_cr["rule_options"] == {"t_gap": 0.005, "a_plus": 0.1, "a_minus": -0.05, "annealing": 0.98}
    assert protocol_from(False, {"ablation_rows": ["cr2"], "methods": []}).ablation_rows == ("cr2",)
    with pytest.raises(ValueError, match="valid: no-cr, cr2"):
        protocol_from(False, {"ablation_rows": ["cr3"]})


def test_ablation_headline_flags_a_row_not_run_with_the_authors_configuration() -> None:
    from creditlab.experiments.ncg import ablation, ncg_headline

    def record(name: str, setting: dict) -> dict:
        final = {"test_accuracy_pct_mean": 80.0, "test_accuracy_pct_folds": [80.0],
                 "target_updates_last_epoch": [5, 1, 1, 1, 1]}
        return {"name": f"ncg-fmnist/{name}", "timestamp": "2026-01-01", "final": final,
                "config": {**setting, "protocol": {"folds_run": 1, "folds": 10, "epochs": 2}}}

    rows = ablation("fashion-mnist")
    m1 = {"model": {"neurons_per_class": 1}, "rule_options": {}}
    good = [record("s2stdp", m1), *(record(k, v) for k, v in rows.items())]
    wrong = {**rows["M-5+CR-2 (no L)"], "model": {**rows["M-5+CR-2 (no L)"]["model"], "threshold": 300}}
    bad = [*good[:2], record("M-5+CR-2 (no L)", wrong)]
    budget = [h.budget for h in ncg_headline(good) if "ablation" in h.claim][0]
    assert "each row with the authors' own configuration" in budget and "1 of 10 folds (the same" in budget
    budget = [h.budget for h in ncg_headline(bad) if "ablation" in h.claim][0]
    assert "M-5+CR-2 (no L): not the authors' configuration" in budget
