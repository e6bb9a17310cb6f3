"""GEVB: hand-computed updates, the sign-match property, exact readout, model checks, and learning."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import perturbed_vnn
from creditlab.errors import IncompatibleModelError
from creditlab.models import build_model
from creditlab.models.vnn import build_vectorized, init_generator
from creditlab.models.vnn_layers import VecGate
from creditlab.report.render import render_markdown
from creditlab.rules import build_rule

TINY_LAYOUTS = {
    "fc": (("fc", 8), ("fc", 6)),
    "conv": (("conv", 4, 3, 1, 1), ("pool", 2), ("conv", 6, 3, 1, 1), ("pool", 2), ("fc", 8)),
    "lc": (("lc", 4, 3, 1, 1), ("pool", 2), ("lc", 6, 3, 1, 1), ("pool", 2), ("fc", 8)),
}


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_net(kind: str, nonnegative: bool, seed: int, classes: int = 4):
    return perturbed_vnn(TINY_LAYOUTS[kind], classes, nonnegative, seed, noise=0.2, noise_seed=seed + 1000)


def test_gevb_matches_hand_computed_update_on_tiny_fc_net() -> None:
    """Loops over the paper's formula dW_ij = sum_b G_bi (e_b . a_bj), db_ki = sum_b G_bi e_bk."""
    k, d = 3, 4
    net = build_vectorized((1, 2, 2), k, (("fc", 4), ("fc", 2)), True, init_generator(0)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1), dtype=p.dtype))
    net.apply_constraints()
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(5, 1, 2, 2, generator=gen, dtype=torch.float64)
    y = torch.randint(0, k, (5,), generator=gen)
    rule = build_rule("gevb", net)
    rule.step(x, y)

    w1, b1 = net.layers[0].weight, net.layers[0].bias  # (K, 4, D), (K, 4)
    t1, w2, b2, t2 = net.layers[1].t, net.layers[2].weight, net.layers[2].bias, net.layers[3].t
    w3, b3 = net.layers[4].weight, net.layers[4].bias
    xf = x.view(5, d)
    expected = {name: torch.zeros_like(p) for name, p in net.named_parameters()}
    for b in range(5):
        h1 = torch.stack([w1[kk] @ xf[b] + b1[kk] for kk in range(k)])  # (K, 4)
        g1 = torch.tensor([float(t1[i] @ h1[:, i] >= 0) for i in range(4)], dtype=torch.float64)
        a1 = h1 * g1
        h2 = a1 @ w2.t() + b2  # (K, 2)
        g2 = torch.tensor([float(t2[i] @ h2[:, i] >= 0) for i in range(2)], dtype=torch.float64)
        a2 = h2 * g2
        z = (a2 @ w3.t() + b3)[:, 0]
        e = (torch.softmax(z, 0) - F.one_hot(y[b], k).double()) / 5
        for i in range(4):
            for kk in range(k):
                for j in range(d):  # expanded input: e . a0_{kD+j} = e_k x_j
                    expected["layers.0.weight"][kk, i, j] += g1[i] * e[kk] * xf[b, j]
                expected["layers.0.bias"][kk, i] += g1[i] * e[kk]
        for i in range(2):
            for j in range(4):
                expected["layers.2.weight"][i, j] += g2[i] * (e @ a1[:, j])
            expected["layers.2.bias"][:, i] += g2[i] * e
        for j in range(2):
            expected["layers.4.weight"][0, j] += e @ a2[:, j]  # readout: exact gradient
        expected["layers.4.bias"][:, 0] += e
    for name, param in net.named_parameters():
        assert torch.allclose(param.grad, expected[name], atol=1e-12), name


@pytest.mark.parametrize("kind", ["fc", "conv", "lc"])
def test_gevb_is_the_gradient_of_the_broadcast_surrogate(kind: str) -> None:
    """Each layer's GEVB update = d/dW of sum_b sum_i G_bi (e_b . h_bi(W)) with a, G, e held fixed
    (autograd through the layer's own forward; conv sums over positions, LC does not share)."""
    net = tiny_net(kind, True, seed=5)
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(4, 2, 8, 8, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 4, (4,), generator=gen)
    rule = build_rule("gevb", net)
    rule.step(x, y)
    record = net.record_forward(x)
    error = torch.autograd.grad(F.cross_entropy(record.logits.requires_grad_(), y), record.logits)[0]
    layers = net.weight_layers()
    for position, (index, layer) in enumerate(layers):
        if position == len(layers) - 1:
            credit = torch.ones(4, 1, dtype=torch.float64)
        else:
            credit = record.gate_masks[index + 1]
        h = layer(record.layer_inputs[index])  # (B, K, units, ...)
        surrogate = (h * error.view(4, -1, *([1] * (h.dim() - 2))) * credit.unsqueeze(1)).sum()
        grad_w, grad_b = torch.autograd.grad(surrogate, [layer.weight, layer.bias])
        assert torch.allclose(layer.weight.grad, grad_w, atol=1e-12)
        assert torch.allclose(layer.bias.grad, grad_b, atol=1e-12)


@pytest.mark.parametrize("kind", ["fc", "conv", "lc"])
def test_sign_match_in_nonnegative_vnns(kind: str) -> None:
    """Over random nonnegative nets and batches: the true scalar credit is >= 0 and nonzero only where
    the gate is open, so GEVB's credit G has its sign wherever it is nonzero; per example, every
    weight and bias update of an FC net has the sign of the true gradient where that is nonzero."""
    for seed in range(4):
        net = tiny_net(kind, True, seed=seed)
        gen = torch.Generator().manual_seed(50 + seed)
        x = torch.randn(6, 2, 8, 8, generator=gen, dtype=torch.float64) * 2
        y = torch.randint(0, 4, (6,), generator=gen)
        record = net.record_forward(x)
        unit_credit, _ = net.backprop_credits(record)
        for index, _ in net.weight_layers()[:-1]:
            delta, gate = unit_credit[index], record.gate_masks[index + 1]
            assert bool((delta >= 0).all())
            assert bool((gate[delta > 0] == 1).all())
        if kind != "fc":
            continue  # conv/LC sums over positions weight delta and G differently: sign match is per unit
        rule = build_rule("gevb", net)
        for b in range(6):
            rule.step(x[b:b + 1], y[b:b + 1])
            true = rule.true_gradients(x[b:b + 1], y[b:b + 1])
            for name, param in net.named_parameters():
                nonzero = true[name].abs() > 1e-12
                assert bool((torch.sign(param.grad[nonzero]) == torch.sign(true[name][nonzero])).all()), name


def test_sign_match_fails_without_nonnegativity() -> None:
    """Control: in mixed-sign VNNs the true credit takes both signs (GEVB is then not sign-matched)."""
    net = tiny_net("fc", False, seed=1)
    x = torch.randn(16, 2, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    unit_credit, _ = net.backprop_credits(net.record_forward(x))
    assert bool((unit_credit[0] < 0).any())


def test_readout_gradient_exact_and_true_gradients_equal_autograd() -> None:
    net = tiny_net("conv", True, seed=2)
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(5, 2, 8, 8, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 4, (5,), generator=gen)
    rule = build_rule("gevb", net)
    rule.step(x, y)
    loss = F.cross_entropy(net(x), y)
    names, params = zip(*net.named_parameters(), strict=True)
    auto = dict(zip(names, torch.autograd.grad(loss, params), strict=True))
    true = rule.true_gradients(x, y)
    for name in names:
        assert torch.allclose(true[name], auto[name], atol=1e-12), name
    readout = len(net.layers) - 1
    assert torch.allclose(net.layers[readout].weight.grad, auto[f"layers.{readout}.weight"], atol=1e-12)
    assert torch.allclose(net.layers[readout].bias.grad, auto[f"layers.{readout}.bias"], atol=1e-12)
    assert not torch.allclose(net.layers[0].weight.grad, auto["layers.0.weight"])  # hidden: not BP


@pytest.mark.parametrize("model", ["mlp", "arelu-fc"])
def test_gevb_refuses_non_vnn_models(model: str) -> None:
    net = build_model(model, (1, 28, 28), 10)
    with pytest.raises(IncompatibleModelError, match="vnn-fc, vnn-conv, vnn-lc"):
        build_rule("gevb", net)


def test_gate_pairs_share_one_gate() -> None:
    gate = VecGate(6, 4, torch.Generator().manual_seed(0))
    assert set(gate.t.unique().tolist()) == {-1.0, 1.0} and torch.equal(gate.t[1::2], -gate.t[::2])


def _data_dir() -> str | None:
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    candidates = [os.environ.get("CREDITLAB_DATA"), str(shared)]
    return next((c for c in candidates if c and (Path(c) / "mnist").exists()), None)


@pytest.mark.skipif(_data_dir() is None, reason="MNIST files not found (set CREDITLAB_DATA)")
def test_a_few_gevb_steps_on_mnist_lower_the_loss() -> None:
    from creditlab.data import load_dataset

    data = load_dataset("mnist", _data_dir(), "cpu", 0.0, 0, "symmetric")
    x, y = data.train_x[:512], data.train_y[:512]
    net = build_model("vnn-fc", (1, 28, 28), 10, hidden=(64, 32), seed=0)
    rule = build_rule("gevb", net)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)

    def loss() -> float:
        with torch.no_grad():
            return float(F.cross_entropy(net(x), y))

    before = loss()
    for _ in range(3):
        for start in range(0, 512, 64):
            rule.step(x[start:start + 64], y[start:start + 64])
            optimizer.step()
            net.apply_constraints()
    after = loss()
    assert after < 0.7 * before, (before, after)
    assert all(bool((layer.weight >= 0).all()) for index, layer in net.weight_layers() if index > 0)


def test_time_budgeted_row_continues_after_interruption(mnist_small, tmp_path) -> None:
    """A budgeted run stopped early continues from its checkpoint, ending where an unbroken run ends."""
    from creditlab.experiments import ExperimentContext
    from creditlab.experiments.gevb import Row, run_row

    data = mnist_small.subset(train=256, test=200)
    row = Row("vnn-fc", "gevb+")
    broken = ExperimentContext(out_dir=tmp_path / "broken")
    first = run_row(broken, "gevb-mnist", "mnist", data, row, 0, 3, time_budget_s=0.0)
    assert first["final"]["epochs"] == 1
    resumed = run_row(broken, "gevb-mnist", "mnist", data, row, 0, 3, time_budget_s=1e9)
    unbroken = run_row(ExperimentContext(out_dir=tmp_path / "unbroken"), "gevb-mnist", "mnist", data, row, 0, 3)
    assert resumed["final"]["epochs"] == 3 and len(resumed["epochs"]) == 3
    assert resumed["final"]["test_error_pct"] == unbroken["final"]["test_error_pct"]


def test_table_keeps_the_newest_record_of_each_run() -> None:
    """A continued time-budgeted run writes a record per invocation; the table reads only the newest."""
    from creditlab.experiments.gevb import error_table

    def rec(seed: int, test: float, epochs: int, device: str = "cpu:x86_64x1threads") -> dict:
        return {"device": device, "config": {"model": "vnn-fc", "label": "gevb+", "seed": seed,
                                             "train_limit": None, "test_limit": None},
                "final": {"test_error_pct": test, "train_error_pct": 0.0, "epochs": epochs,
                          "authors_test_error_pct": 1.87, "authors_train_error_pct": 0.06}}

    table = error_table("mnist", [rec(0, 9.0, 3), rec(1, 3.0, 5), rec(0, 2.0, 10),
                                     rec(0, 1.5, 100, device="cuda:NVIDIA H100")])
    table = render_markdown([table], Path("."))
    rows = [line for line in table.splitlines() if line.startswith("| vnn-fc")]
    assert rows == ["| vnn-fc:gevb+ | cpu | all | 2.50 (0.00) | 2 | 5,10 | 1.87 (0.06) |",
                    "| vnn-fc:gevb+ | cuda | all | 1.50 (0.00) | 1 | 100 | 1.87 (0.06) |"]


def test_angle_table_puts_seed_means_per_layer_beside_the_authors() -> None:
    from creditlab.experiments.gevb import angle_table

    def rec(seed: int, init: list[float], final: list[float]) -> dict:
        return {"device": "cuda:NVIDIA H100", "config": {"model": "vnn-fc", "label": "gevb+", "seed": seed,
                                                        "train_limit": None, "test_limit": None},
                "final": {"epochs": 100, "credit_angles_init": init, "credit_angles_final": final}}

    table = angle_table("mnist", [rec(0, [9.0, 55.0], [40.0, 57.0]), rec(1, [9.4, 55.4], [42.0, 58.0])])
    table = render_markdown([table], Path("."))
    lines = table.splitlines()
    assert "| vnn-fc:gevb+ | cuda | 2 | 100,100 | 9.2, 55.2 | 41.0, 57.5 | 9.2, 55.7 | 41.3, 57.7 |" in lines
    assert "| arelu-fc:dfa | - | 0 | - | no record | no record | 90.1, 89.5 | 64.8, 67.0 |" in lines


def test_parallel_rows_each_run_in_their_own_process_and_share_one_table(tmp_path, data_root) -> None:
    import subprocess
    import sys

    out = tmp_path / "gevb"
    cmd = [sys.executable, "-m", "creditlab", "reproduce", "gevb-mnist", "--opt", "rows=vnn-fc:gevb+,arelu-fc:dfa+",
           "--opt", "seeds=[0]", "--opt", "epochs=1", "--opt", "train_limit=128", "--opt", "test_limit=200",
           "--threads", "1", "--opt", "parallel=2", "--out", str(out), "--data-dir", str(data_root)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    from creditlab.results import read_records

    names = sorted(r["name"] for r in read_records(out / "results.jsonl"))
    assert names == ["gevb-mnist/arelu-fc:dfa+", "gevb-mnist/vnn-fc:gevb+"]
    table = (out / "gevb-mnist-table.md").read_text()
    assert "| arelu-fc:dfa+ | cpu | 128 |" in table and "| vnn-fc:gevb+ | cpu | 128 |" in table
    for record in read_records(out / "results.jsonl"):  # both kinds of row carry the authors' angles
        final = record["final"]
        assert len(final["credit_angles_init"]) == len(final["credit_angles_final"]) == 2
    assert "| arelu-fc:dfa+ | cpu | 1 | 1 |" in table  # the angle table
