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
