"""Song, Xu & Lafferty 2021 two-layer FA theory: batched trainer, FA directions, metrics, MNIST nets."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from creditlab.analysis.fa_theory import (
    ACTIVATIONS,
    FAProblems,
    activation_pair,
    cosine_alignment,
    fa_directions,
    init_stacked_nets,
    sample_problems,
    stacked_sgd_step,
    step_budget,
    train_batched,
    train_reference,
)

STEP_SIZES = {"linear": 1e-3, "relu": 1e-2, "tanh": 1e-1, "sigmoid": 1e-1}


def _problems(activation: str, runs: int = 3, n: int = 6, d: int = 9, p: int = 12,
              seed: int = 0) -> FAProblems:
    data = "lr" if activation == "linear" else "nn"
    return sample_problems(runs, n, d, p, activation, data, torch.Generator().manual_seed(seed),
                           dtype=torch.float64)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_batched_equals_per_run_reference_loop(activation: str) -> None:
    problems = _problems(activation)
    lambdas = torch.tensor([0.0, 0.05, 0.3], dtype=torch.float64)
    step = STEP_SIZES[activation]
    # check_every small so the plateau rule fires; runs stop at different steps
    result = train_batched(problems, lambdas, activation, step, min_steps=30, check_every=7, plateau_tol=0.05,
                           max_steps=250, record_loss=True)
    for r in range(3):
        w, beta, steps, losses = train_reference(
            problems.x[r], problems.y[r], problems.w[r], problems.beta[r], problems.feedback[r],
            float(lambdas[r]), activation, step, min_steps=30, check_every=7, plateau_tol=0.05, max_steps=250)
        assert int(result.steps[r]) == steps
        torch.testing.assert_close(result.beta[r], beta, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(result.pre_activations[r], problems.x[r] @ w, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(result.loss_history[r, :steps], torch.tensor(losses, dtype=torch.float64),
                                   rtol=1e-9, atol=1e-12)
        assert torch.isnan(result.loss_history[r, steps:]).all()
        expected = torch.dot(beta, problems.feedback[r]) / beta.norm() / problems.feedback[r].norm()
        assert math.isclose(float(result.alignment[r]), float(expected), rel_tol=1e-9)


def test_runs_stop_at_different_steps_and_plateau_rule() -> None:
    problems = _problems("relu", runs=2)
    result = train_batched(problems, torch.tensor([0.0, 0.5], dtype=torch.float64), "relu", 1e-2,
                           min_steps=5, check_every=10, plateau_tol=1e-3, max_steps=100000)
    # lambda = 0.5 plateaus at a nonzero loss quickly; every run stops at a checkpoint (or min_steps)
    for s in result.steps.tolist():
        assert s == 5 or s % 10 == 0
    assert not result.hit_max_steps.any()


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_fa_equals_true_gradient_when_feedback_is_readout(activation: str) -> None:
    gen = torch.Generator().manual_seed(1)
    n, d, p, lam = 7, 5, 11, 0.3
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = torch.randn(n, generator=gen, dtype=torch.float64)
    w = torch.randn(d, p, generator=gen, dtype=torch.float64).requires_grad_()
    beta = torch.randn(p, generator=gen, dtype=torch.float64).requires_grad_()
    psi, _ = activation_pair(activation)
    loss = ((psi(x @ w) @ beta / math.sqrt(p) - y) ** 2).mean() + 0.5 * lam * beta.pow(2).sum()
    grad_w, grad_beta = torch.autograd.grad(loss, (w, beta))
    dir_w, dir_beta, mse = fa_directions(x, y, w.detach(), beta.detach(), beta.detach(), lam, activation)
    torch.testing.assert_close(dir_w, grad_w)
    torch.testing.assert_close(dir_beta, grad_beta)
    # a different feedback vector changes only the first-layer direction, b_r scaling column r
    b = torch.randn(p, generator=gen, dtype=torch.float64)
    dir_w_fa, dir_beta_fa, _ = fa_directions(x, y, w.detach(), beta.detach(), b, lam, activation)
    torch.testing.assert_close(dir_beta_fa, grad_beta)
    nonzero = beta.detach().abs() > 1e-8
    torch.testing.assert_close(dir_w_fa[:, nonzero], (grad_w / beta.detach() * b)[:, nonzero])
    assert math.isclose(float(mse), float(((psi(x @ w) @ beta / math.sqrt(p) - y) ** 2).mean().detach()))


def test_cosine_alignment_on_hand_made_vectors() -> None:
    b = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [3.0, 4.0, 0.0], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    beta = torch.tensor([[2.0, 0.0, 0.0], [1.0, 0.0, 0.0], [-3.0, -4.0, 0.0], [0.0, 0.0, 0.0],
                         [1.0, 1.0, 1.0]])
    expected = torch.tensor([1.0, 1.0 / math.sqrt(2.0), -1.0, 0.0, 0.0])
    torch.testing.assert_close(cosine_alignment(b, beta), expected)
    with pytest.raises(ValueError):
        cosine_alignment(torch.ones(3), torch.ones(4))


def test_step_budget_matches_authors_formula() -> None:
    assert step_budget(200) == 5050
    assert step_budget(12800) == 40406
    assert [step_budget(p) for p in (400, 800, 1600, 3200, 6400)] == [7142, 10101, 14285, 20203, 28571]


def test_bad_shapes_raise() -> None:
    with pytest.raises(ValueError):
        FAProblems(torch.zeros(2, 3, 4), torch.zeros(2, 3), torch.zeros(2, 5, 6), torch.zeros(2, 6),
                   torch.zeros(2, 6))
    with pytest.raises(ValueError):
        activation_pair("softplus")


def test_teacher_targets_and_lr_targets() -> None:
    gen = torch.Generator().manual_seed(3)
    problems = sample_problems(4, 5, 7, 9, "linear", "lr", gen, dtype=torch.float64)
    # y = X theta: y lies in the column space of X (n < d, so always true); check scale instead
    assert problems.y.shape == (4, 5)
    relu = sample_problems(2000, 1, 150, 64, "relu", "nn", gen, dtype=torch.float64)
    # teacher output variance: E[relu(h)^2] with h ~ N(0, d) is d/2 = 75
    assert 60 < float(relu.y.var()) < 90


def test_stacked_mnist_nets_match_autograd_and_fa_with_readout_feedback() -> None:
    gen = torch.Generator().manual_seed(4)
    d_in, p, k, batch = 13, 17, 4, 9
    nets = init_stacked_nets(d_in, p, k, (0.0, 0.3, 0.0), (True, True, False), gen)
    nets.feedback[1] = nets.beta[1]          # FA with B = beta must equal BP
    x = torch.randn(batch, d_in, generator=gen)
    labels = torch.randint(0, k, (batch,), generator=gen)
    w0, beta0 = nets.w.clone(), nets.beta.clone()
    expected = []
    for m in range(3):
        w = w0[m].clone().requires_grad_()
        beta = beta0[m].clone().requires_grad_()
        logits = torch.relu(x @ w) @ beta.t() / math.sqrt(p)
        lam = float(nets.weight_decay[m])
        loss = torch.nn.functional.cross_entropy(logits, labels) + 0.5 * lam * beta.pow(2).sum()
        expected.append(torch.autograd.grad(loss, (w, beta)))
    lr = 0.1
    metrics = stacked_sgd_step(nets, x, labels, lr)
    for m in (1, 2):
        torch.testing.assert_close(nets.w[m], w0[m] - lr * expected[m][0], rtol=1e-5, atol=1e-5)
    for m in range(3):
        torch.testing.assert_close(nets.beta[m], beta0[m] - lr * expected[m][1], rtol=1e-5, atol=1e-5)
    # net 0 uses a random B: its W update differs from the gradient, its beta update does not
    assert not torch.allclose(nets.w[0], w0[0] - lr * expected[0][0], atol=1e-4)
    assert math.isclose(float(metrics["weight_alignment"][1]), 1.0, rel_tol=1e-5)
    assert math.isclose(float(metrics["vec_alignment"][1]), 1.0, rel_tol=1e-5)
    assert abs(float(metrics["weight_alignment"][0])) < 0.6


def test_recorded_cells_pool_the_runs_of_every_seed(tmp_path) -> None:
    """Cells from every record; different seeds pooled; of one seed, the record with most runs counts."""
    from creditlab.experiments.fa_theory import recorded_cells
    from creditlab.results import append_record, make_record

    def cell(width: int, lam: float, values: list[float]) -> dict:
        return {"width": width, "lambda": lam, "ours": {"n": len(values)}, "alignment_values": values}

    def add(activation: str, seed: int, cells: list[dict], quick: bool = False) -> None:
        append_record(path, make_record("reproduce", "fa-theory-alignment",
                                        {"activation": activation, "seed": seed, "quick": quick}, {"cells": cells}))

    path = tmp_path / "results.jsonl"
    add("relu", 0, [cell(200, 0.0, [0.1, 0.2, 0.3]), cell(400, 0.0, [0.2])])
    add("relu", 0, [cell(200, 0.0, [0.9, 0.8])])  # same seed, fewer runs: not counted
    add("relu", 5, [cell(200, 0.0, [0.4]), cell(12800, 0.0, [0.01, 0.03])])
    add("tanh", 0, [cell(800, 0.0, [0.5])])
    add("relu", 1, [cell(800, 0.0, [0.5, 0.5])], quick=True)
    cells = recorded_cells(path, "relu")
    assert [(c["width"], c["ours"]["n"], c["seeds"]) for c in cells] == [
        (200, 4, {"0": 3, "5": 1}), (400, 1, {"0": 1}), (12800, 2, {"5": 2})]
    assert cells[0]["ours"]["mean"] == pytest.approx(0.25)
    assert cells[0]["ours"]["sd"] == pytest.approx(torch.tensor([0.1, 0.2, 0.3, 0.4]).double().std().item())
    assert cells[0]["within_2sd_of_authors"]  # 0.25 vs the authors' 0.220 +- 0.051
    assert cells[2]["within_2sd_of_authors"]  # 0.02 vs 0.006 +- 0.008


def test_run_batches_fit_cache_on_cpu_and_take_the_whole_cell_on_a_gpu() -> None:
    from creditlab.analysis.fa_theory import AUTHOR_SETTINGS, runs_per_batch

    relu, linear = AUTHOR_SETTINGS["relu"], AUTHOR_SETTINGS["linear"]
    assert runs_per_batch(relu, 12800, 200, "cpu") == 1          # one run's H (50 x 12800) already fills L3
    assert runs_per_batch(relu, 200, 200, "cpu") == 64           # 640_000 // (50 * 200)
    assert runs_per_batch(relu, 12800, 200, "cuda") == 200       # a whole 50-run x 4-lambda cell at once
    assert runs_per_batch(linear, 12800, 200, "cpu") == 15       # O(n^2) state: bounded by sampled weights
    assert runs_per_batch(relu, 200, 3, "cpu") == 3              # never more than the cell has


def _reproduce(*args: str) -> None:
    from typer.testing import CliRunner

    from creditlab.cli import app

    result = CliRunner().invoke(app, ["reproduce", *args])
    assert result.exit_code == 0, result.output


def test_command_line_trains_chosen_cells_and_records_them(tmp_path, monkeypatch) -> None:
    from creditlab.experiments import fa_theory
    from creditlab.results import read_records

    _reproduce("fa-theory-loss", "--opt", "activation=relu", "--opt", "widths=[200]", "--opt", "runs=2",
               "--opt", "steps=30", "--seed", "3", "--out", str(tmp_path))
    (record,) = read_records(tmp_path / "results.jsonl")
    assert record["name"] == "fa-theory-loss" and record["config"]["seed"] == 3
    assert record["config"]["stream"] == fa_theory.STREAM_VERSION
    assert (tmp_path / "loss_relu.png").is_file()
    calls = []
    monkeypatch.setattr(fa_theory, "alignment_sweep", lambda ctx, *args, **kw: calls.append((ctx.seed, *args)))
    _reproduce("fa-theory-alignment", "--opt", "activation=tanh", "--opt", "widths=[800,1600]", "--opt", "runs=50",
               "--seed", "7", "--out", str(tmp_path))
    assert calls == [(7, "tanh", (800, 1600), 50)]
    monkeypatch.undo()
    from creditlab.results import append_record, make_record

    append_record(tmp_path / "results.jsonl", make_record(
        "reproduce", "fa-theory-alignment", {"activation": "sigmoid", "seed": 0, "quick": False},
        {"cells": [{"width": 200, "lambda": 0.0, "ours": {"n": 2}, "alignment_values": [0.2, 0.3]}]}))
    _reproduce("fa-theory-figures", "--out", str(tmp_path))  # redrawn from the records alone
    assert (tmp_path / "alignment_sigmoid.png").is_file() and not (tmp_path / "alignment_tanh.png").exists()


def test_relu_and_tanh_draw_different_streams_and_old_shared_cells_are_marked() -> None:
    """Streams are keyed on the activation's name (not its length, which relu and tanh share), and
    the pooled table marks old (version-1) cells whose streams relu and tanh shared."""
    from creditlab.analysis.fa_theory import sample_problems
    from creditlab.experiments.fa_theory import _generator, activation_key, alignment_summary, pooled_cells
    from creditlab.report.render import render_markdown

    relu = sample_problems(2, 5, 7, 9, "relu", "nn", _generator(0, 200, activation_key("relu")))
    tanh = sample_problems(2, 5, 7, 9, "tanh", "nn", _generator(0, 200, activation_key("tanh")))
    assert not torch.equal(relu.x, tanh.x) and not torch.equal(relu.feedback, tanh.feedback)
    old_relu = sample_problems(2, 5, 7, 9, "relu", "nn", _generator(0, 200, len("relu")))
    old_tanh = sample_problems(2, 5, 7, 9, "tanh", "nn", _generator(0, 200, len("tanh")))
    assert torch.equal(old_relu.x, old_tanh.x)  # the defect: same numbers in both panels

    def rec(activation: str, seed: int, values: list[float], stream: int | None) -> dict:
        config = {"activation": activation, "seed": seed, "quick": False}
        if stream is not None:
            config["stream"] = stream
        return {"kind": "reproduce", "name": "fa-theory-alignment", "config": config,
                "final": {"cells": [{"width": 200, "lambda": 0.0, "ours": {"n": len(values)},
                                     "alignment_values": values}]}}

    records = [rec("relu", 0, [0.2, 0.3], None), rec("tanh", 0, [0.25, 0.3], None),
               rec("tanh", 0, [0.2, 0.22, 0.24], 2), rec("tanh", 1, [0.3], None)]
    (cell,) = pooled_cells(records, "tanh")
    assert cell["ours"]["n"] == 6 and cell["seeds"] == {"0": 2, "0/s2": 3, "1": 1}  # versions pooled apart
    assert cell["shared_stream_runs"] == 2
    text = render_markdown(alignment_summary(records), Path("."))
    assert "(6) ‡2 /" in text and "share their random stream with the relu panel" in text


def test_unknown_experiment_option_is_refused_with_the_valid_ones(tmp_path) -> None:
    from typer.testing import CliRunner

    from creditlab.cli import app

    result = CliRunner().invoke(app, ["reproduce", "fa-theory-loss", "--opt", "width=3", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "no option 'width'" in result.output and "valid: activation, runs, steps, widths" in result.output
    result = CliRunner().invoke(app, ["reproduce", "fa-theory-loss", "--opt", "activation=gelu"])
    assert result.exit_code == 2 and "one of 'linear', 'relu', 'tanh', 'sigmoid'" in " ".join(result.output.split())
