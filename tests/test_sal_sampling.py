"""sal-sampling: the spiking network samples the Boltzmann distribution of a symmetric W (closed
form over all states), the asymmetry metric by hand, the quick reproduction end to end, bad options."""

from __future__ import annotations

import json

import pytest
import torch

from creditlab.experiments import ExperimentContext
from creditlab.experiments import sal_sampling as sampling


def test_a_symmetric_network_samples_its_boltzmann_distribution() -> None:
    gen = torch.Generator().manual_seed(0)
    upper = torch.triu(torch.rand(3, 3, generator=gen) * 2 - 1, 1)
    weights, biases = (upper + upper.T).unsqueeze(0), (torch.rand(1, 3, generator=gen) * 2 - 1)
    counts = sampling.sample_counts(weights, biases, chains=64, steps=4000, seeds=[5], device="cpu")
    exact = sampling.boltzmann(weights, biases)  # softmax of z^T W z / 2 + b^T z over the 8 states
    states = sampling.all_states(3)
    by_hand = torch.stack([torch.exp(0.5 * z @ weights[0].double() @ z + biases[0].double() @ z) for z in states])
    assert torch.allclose(exact[0], by_hand / by_hand.sum(), atol=1e-12)
    assert float(sampling.kl_divergence(exact, counts.double())[0]) < 0.01
    empirical = counts[0] / counts[0].sum()
    assert torch.allclose(empirical.double(), exact[0], atol=0.02)


def test_asymmetry_is_the_variance_of_w_ij_minus_w_ji() -> None:
    w = torch.tensor([[[0.0, 1.0, 2.0], [0.0, 0.0, 5.0], [1.0, 3.0, 0.0]]])
    diffs = torch.tensor([1.0 - 0.0, 2.0 - 1.0, 5.0 - 3.0])
    assert torch.allclose(sampling.asymmetry(w), diffs.var().unsqueeze(0))


def test_quick_reproduction_writes_one_record_per_condition(tmp_path) -> None:
    ctx = ExperimentContext(quick=True, out_dir=tmp_path)
    records = sampling.run(ctx)
    assert len(records) == 8  # 2 scenarios x 2 levels x SAL off/on
    lines = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert {r["name"] for r in lines} == {r["name"] for r in records}
    assert all(r["final"]["runs"] == 2 and len(r["epochs"]) == 3 for r in lines)
    assert (tmp_path / "sal_sampling.png").is_file()
    # no SAL and no asymmetric start: learning keeps W symmetric (the symmetric window updates both alike)
    sym = next(r for r in lines if r["name"] == "sal-sampling/synaptic/0.0/no-sal")
    assert sym["final"]["final_asymmetry"]["median"] < 1e-10


def test_bad_protocol_option_is_refused() -> None:
    ctx = ExperimentContext(quick=False)
    ctx.options = {"protocol": "fast"}  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="protocol must be 'cpu' or 'paper', got 'fast'"):
        sampling.run(ctx)


def test_budget_options_restrict_the_conditions_and_bad_ones_exit_2(tmp_path) -> None:
    from typer.testing import CliRunner

    from creditlab.cli import app

    chosen = sampling.restricted(sampling.CPU, {"iterations": 1800, "scenarios": ["synaptic"], "levels": [0.0, 1.0]})
    assert chosen.iterations == 1800 and chosen.levels == {"synaptic": (0.0, 1.0)}
    assert len(sampling.conditions(chosen)) == 2 * 2 * 20  # levels x SAL off/on x seeds
    result = CliRunner().invoke(app, ["reproduce", "sal-sampling", "--opt", "levels=[0.3]", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "leave a scenario without a level" in result.output
