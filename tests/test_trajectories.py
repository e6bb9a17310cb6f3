"""Today's rules keep their trajectories: fixed-seed CPU runs of bp, fa, dfa and gevb on MNIST give the
per-epoch metrics recorded in ``tests/data/trajectories.json`` before the trainer protocol (issue #15
part B) was built, exactly (CPU, one thread: the same float operations in the same order).

Re-record only on purpose: ``python tests/test_trajectories.py --record``.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from creditlab.data import Dataset
from creditlab.train import train_from_names

FIXTURE = Path(__file__).parent / "data" / "trajectories.json"
#: per-epoch fields that are measurements of the run itself, not of its wall clock
METRICS = ("epoch", "train_loss", "train_accuracy", "lr", "test_accuracy", "test_loss")
SETTINGS = {"epochs": 2, "train_limit": 512, "test_limit": 256, "seed": 0, "progress": False}
RUNS = {
    "bp-mlp": ("bp", "mlp", {}),
    "fa-mlp": ("fa", "mlp", {}),
    "dfa-mlp": ("dfa", "mlp", {}),
    "gevb-vnn-fc": ("gevb", "vnn-fc", {"hidden": (256, 256)}),
}


def run_metrics(name: str, data: Dataset) -> dict[str, object]:
    """The fixed-seed run ``name`` of :data:`RUNS`: per-epoch metrics and a digest of the final weights."""
    rule, model, model_options = RUNS[name]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as out_dir:
            summary = train_from_names(rule, model, "mnist", loaded=data, model_options=model_options,
                                       out_dir=out_dir, **SETTINGS)
            weights = torch.load(Path(out_dir) / "checkpoint.pt", weights_only=True)["model"]
    finally:
        torch.set_num_threads(threads)
    digest = hashlib.sha256()
    for key in sorted(weights):
        digest.update(key.encode())
        value = weights[key]  # a tensor, or a layer's extra state (FA: a dict of ints)
        digest.update(value.contiguous().numpy().tobytes() if isinstance(value, torch.Tensor)
                      else json.dumps(value, sort_keys=True).encode())
    return {"history": [{key: epoch[key] for key in METRICS} for epoch in summary["history"]],
            "weights_sha256": digest.hexdigest()}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_trajectory_is_unchanged(name, mnist):
    expected = json.loads(FIXTURE.read_text())[name]
    assert run_metrics(name, mnist) == expected


if __name__ == "__main__" and "--record" in sys.argv:
    import os

    from creditlab.data import load_dataset

    mnist = load_dataset("mnist", os.environ.get("CREDITLAB_DATA"))
    FIXTURE.write_text(json.dumps({name: run_metrics(name, mnist) for name in sorted(RUNS)}, indent=1) + "\n")
    print(f"wrote {FIXTURE}")
