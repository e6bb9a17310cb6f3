"""GAIT-prop and TP on invertible MLPs: against autograd's gradient, closed forms and exact inverses
(DTP, which trains an ordinary MLP: tests/test_dtp.py)."""

from __future__ import annotations

import copy
import math
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from creditlab.cli import app
from creditlab.errors import IncompatibleModelError
from creditlab.models import apply_constraints, build_model
from creditlab.models.invertible import leaky_relu, orthogonality_penalty, orthogonality_penalty_gradient
from creditlab.rules import Rule, build_rule

pytestmark = pytest.mark.usefixtures("one_thread")


def _net(depth: int = 4, width: int = 64, seed: int = 0, **options) -> torch.nn.Module:
    return build_model("invertible-mlp", (1, 8, 8), 10, width=width, depth=depth, seed=seed, **options)


def _batch(seed: int = 1, batch: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Standard-normal inputs and random labels (the setting of the research notes' numeric check)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 1, 8, 8, generator=generator), torch.randint(0, 10, (batch,), generator=generator)


def _weight_cosines(rule: Rule, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """Cosine of the rule's update with autograd's gradient of the rule's loss, per weight (input first)."""
    rule.step(x, y)
    true = rule.true_gradients(x, y)
    return [float(torch.nn.functional.cosine_similarity(p.grad.flatten(), true[n].flatten(), dim=0))
            for n, p in rule.model.named_parameters() if n.endswith("weight")]


def _relative_errors(rule: Rule, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """‖update − autograd's gradient‖ / ‖gradient‖ of the rule's step, per weight (input first)."""
    rule.step(x, y)
    true = rule.true_gradients(x, y)
    return [float((p.grad - true[n]).norm() / true[n].norm())
            for n, p in rule.model.named_parameters() if n.endswith("weight")]


def _gaitprop_roundoff_bounds(rule: Rule, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """Per weight (input first): the relative error that round-off can put in vanilla GAIT-prop's update
    when it equals BP in exact arithmetic (orthogonal weights, no unit crossing 0 under the nudge).

    The offset t_l − h_l is a difference of two activities of norm ‖h_l‖ (the nudged target comes back
    through k = L − l exact inverses), so it carries an absolute error of c u ‖h_l‖ (u: the dtype's unit
    round-off), while its size is γ^k ‖∂ℓ_n/∂h_l‖ (linearized GAIT-prop with W^{-1} = W^T is BP scaled
    by γ per layer). Its relative error, and the update's, is c u γ^-k ‖h_l‖ / ‖∂ℓ_n/∂h_l‖: the γ^-k
    amplification, with the ratio of norms taken from autograd (the same on every CPU to leading order;
    the CPU's kernels only decide which way each rounding goes). c counts the roundings of one step
    down: 4 elementwise ones (the nudge's sum, f⁻¹, the bias, the difference), each ≤ u relative, and
    two n-term dot products (the forward matvec, the inverse's solve), each ≈ λ √n u in the probabilistic
    model of rounding errors (Higham & Mary 2019; n u in the worst case), λ = 3: c = 4 + 2·3·√n = 52 for
    n = 64. The errors the layers above pass down are smaller by a factor γ each. Measured
    (``python tests/test_gaitprop.py --roundoff``): the errors are 0.17 to 0.36 of this bound, with the
    default, AVX2 and AVX-512 kernels alike.
    """
    model = rule.model
    unit_roundoff = torch.finfo(model.dtype).eps / 2
    with torch.enable_grad():
        forward = model.forward_pass(x)
        per_sample_total = rule.loss_fn(forward.output[:, :model.num_classes], y) * len(y)  # Σ_n ℓ_n
        activity_gradients = torch.autograd.grad(per_sample_total, forward.post)
    bounds = []
    for index, (activity, gradient) in enumerate(zip(forward.post, activity_gradients, strict=True)):
        nudges = model.depth - 1 - index  # k: inverses between the output and this layer
        c = 4 + 2 * 3 * math.sqrt(activity.shape[1])
        ratio = float(activity.detach().norm() / gradient.norm())
        bounds.append(c * unit_roundoff * rule.gamma ** -nudges * ratio)
    return bounds


@pytest.mark.parametrize("output_loss", ["mse", "cross-entropy"])
def test_gaitprop_equals_backprop_with_orthogonal_weights(output_loss):
    rule = build_rule("gaitprop", _net(depth=4), gamma=1e-3, orthogonality=0.0, output_loss=output_loss)
    assert rule.model.dtype == torch.float64
    x, y = _batch()
    bounds = _gaitprop_roundoff_bounds(rule, x, y)
    errors = _relative_errors(rule, x, y)
    # Equal to BP up to round-off amplified by γ^-k (see _gaitprop_roundoff_bounds): the bound is
    # ~1e-14 at the top and grows ×1/γ per layer down to ~0.2 at the input layer (k = 4 nudges,
    # γ^-4 = 1e12); an error below ρ means a cosine above √(1 − ρ²) (≥ 0.98 at the bottom, 1 − 1e-8 one
    # layer up). The input layer's measured 1 − cos is 0.4e-3 to 1.2e-3 depending on the CPU's kernels:
    # a fixed 0.999 held on one machine only.
    assert len(errors) == 5 and all(e <= b for e, b in zip(errors, bounds, strict=True)), (errors, bounds)
    assert bounds[0] < 0.5 and bounds[1] < 1e-3  # the bound still pins every layer to BP's direction


def test_tower_gaitprop_equals_backprop():
    net = build_model("invertible-mlp", (1, 8, 8), 10, widths=[64, 48, 32], output_width=10, seed=0)
    rule = build_rule("gaitprop", net, orthogonality=0.0)
    cosines = _weight_cosines(rule, *_batch())
    assert min(cosines) >= 0.999, cosines


def test_vanilla_gamma_collapses_at_depth_and_adaptive_rescaling_restores_it():
    x, y = _batch()
    vanilla = _weight_cosines(build_rule("gaitprop", _net(depth=6), gamma=1e-3, orthogonality=0.0), x, y)
    adaptive = _weight_cosines(build_rule("gaitprop", _net(depth=6), adaptive=True, gamma0=1e-7,
                                          orthogonality=0.0), x, y)
    assert max(vanilla[:2]) < 0.5, vanilla  # the two bottom layers' offsets are below float64 round-off
    assert min(vanilla[3:]) > 0.999, vanilla  # the upper layers are still exact
    assert min(adaptive) >= 0.99, adaptive


@pytest.mark.parametrize("dtype,tolerance", [("float64", 1e-10), ("float32", 1e-3)])
@pytest.mark.parametrize("method", ["inverse", "solve"])
def test_inverse_is_exact_and_stays_current_after_100_updates(dtype, tolerance, method):
    net = _net(depth=3, dtype=dtype, inverse_method=method)
    rule = build_rule("gaitprop", net, gamma=1e-2 if dtype == "float32" else 1e-3)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)  # fused: no version-counter bumps
    x, y = _batch(batch=60)

    def worst_reconstruction() -> float:
        h = torch.randn(50, 64, generator=torch.Generator().manual_seed(3), dtype=net.dtype)
        errors = []
        for index in range(1, net.depth):
            layer = net.layers[index]
            errors.append(float((net.invert_layer(index, leaky_relu(layer(h).detach())) - h).abs().max()))
        return max(errors)

    assert worst_reconstruction() < tolerance
    for step in range(100):
        rule.step(x, y)
        optimizer.step()
        if step != 99:
            apply_constraints(net)  # the last update skips the hook: the next use must notice it
    initial = _net(depth=3, dtype=dtype).layers[1].weight.detach()
    assert float((net.layers[1].weight.detach() - initial).abs().max()) > 1e-3  # the weights did move
    assert worst_reconstruction() < tolerance


@pytest.mark.parametrize("form", ["off-diagonal", "frobenius"])
def test_orthogonality_gradient_matches_autograd(form):
    weight = torch.randn(12, 12, dtype=torch.float64, requires_grad=True)
    (autograd,) = torch.autograd.grad(orthogonality_penalty(weight, form), weight)
    assert torch.allclose(orthogonality_penalty_gradient(weight.detach(), form), autograd)
    orthogonal = torch.linalg.qr(torch.randn(12, 12, dtype=torch.float64))[0]
    assert float(orthogonality_penalty(orthogonal, form)) < 1e-20


def test_gaitprop_adds_lambda_times_the_regularizer_gradient():
    x, y = _batch()
    net = _net(depth=2)
    with torch.no_grad():
        net.layers[1].weight.mul_(1.1)  # rows no longer unit: the frobenius penalty is nonzero
    plain = build_rule("gaitprop", copy.deepcopy(net), orthogonality=0.0, orthogonality_form="frobenius")
    regularized = build_rule("gaitprop", copy.deepcopy(net), orthogonality=0.5, orthogonality_form="frobenius")
    plain.step(x, y)
    regularized.step(x, y)
    penalty = orthogonality_penalty_gradient(net.layers[1].weight.detach(), "frobenius")
    expected = plain.model.layers[1].weight.grad + 0.5 * penalty
    assert torch.allclose(regularized.model.layers[1].weight.grad, expected)


def test_rules_refuse_a_model_without_inverses():
    mlp = build_model("mlp", (1, 8, 8), 10)
    for name in ("gaitprop", "tp"):
        with pytest.raises(IncompatibleModelError, match=f"rule '{name}' cannot train model 'mlp'.*invertible"):
            build_rule(name, mlp)


@pytest.mark.parametrize("options,message", [
    ({"gamma": 1.5}, "gamma must lie in"),
    ({"gamma0": 0.0, "adaptive": True}, "gamma0 must lie in"),
    ({"output_loss": "hinge"}, "unknown output_loss 'hinge'; valid: mse, cross-entropy"),
    ({"orthogonality": -1.0}, "orthogonality .* must be >= 0"),
    ({"orthogonality_form": "spectral"}, "unknown orthogonality_form"),
])
def test_gaitprop_refuses_settings_outside_the_method(options, message):
    with pytest.raises(ValueError, match=message):
        build_rule("gaitprop", _net(depth=2), **options)


def test_gaitprop_refuses_a_nudge_below_float32_resolution():
    with pytest.raises(ValueError, match="below the resolution of the model's torch.float32.*dtype=float64"):
        build_rule("gaitprop", _net(depth=2, dtype="float32"), adaptive=True, gamma0=1e-7)


@pytest.mark.parametrize("options,message", [
    ({"input_layer": "square", "width": 32}, "input_layer='square' needs width 64"),
    ({"widths": [32, 48]}, "must not grow"),
    ({"output_width": 5}, "smaller than the 10 classes"),
    ({"dtype": "float16"}, "unknown dtype 'float16'; valid: float32, float64"),
    ({"init": "kaiming"}, "unknown init"),
])
def test_model_refuses_bad_options(options, message):
    settings = {"width": 64, "depth": 2, **options}
    with pytest.raises(ValueError, match=message):
        build_model("invertible-mlp", (1, 8, 8), 10, **settings)


def test_cifar_shaped_first_layer_is_dense_and_never_inverted():
    net = build_model("invertible-mlp", (3, 8, 8), 10, width=64, depth=3, seed=0)
    assert net.input_layer == "dense" and tuple(net.layers[0].weight.shape) == (64, 192)
    rows = net.layers[0].weight
    assert torch.allclose(rows @ rows.T, torch.eye(64, dtype=rows.dtype), atol=1e-12)  # orthonormal rows
    with pytest.raises(ValueError, match="not square"):
        net.inverse_weight(0)
    rule = build_rule("gaitprop", net, orthogonality=0.0)
    x = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert min(_weight_cosines(rule, x, torch.arange(16) % 10)) >= 0.999


def test_cli_trains_gaitprop_with_alignment_and_refuses_a_wrong_model(tmp_path: Path, data_root: Path):
    runner = CliRunner()
    common = ["--data", "mnist", "--data-dir", str(data_root), "--epochs", "1", "--train-limit", "120",
              "--test-limit", "200", "--quiet", "--json"]
    result = runner.invoke(app, ["train", "--rule", "gaitprop", "--model", "invertible-mlp", "--track-alignment",
                                 "--model-opt", "width=32", "--model-opt", "depth=2", "--out",
                                 str(tmp_path / "run"), *common])
    assert result.exit_code == 0, result.output
    assert "layers.0.weight" in result.output.splitlines()[-1]
    refused = runner.invoke(app, ["train", "--rule", "tp", "--model", "mlp", "--out", str(tmp_path / "bad"), *common])
    assert refused.exit_code == 2 and "invertible" in refused.output


def test_tp_defaults_to_its_papers_lr_and_an_explicit_lr_wins():
    from creditlab.rules import RULES
    from creditlab.train import config_for

    requirement = RULES.get("tp").optimizer_requirement
    assert config_for("invertible-mlp", requirements=(requirement,)).lr == 1e-5
    assert config_for("invertible-mlp", requirements=(requirement,), lr=3e-4).lr == 3e-4
    assert config_for("invertible-mlp", requirements=(RULES.get("gaitprop").optimizer_requirement,)).lr == 1e-4


def test_quick_mnist_reproduction_records_early_stopped_tp_and_its_summary_table(tmp_path, data_root):
    from creditlab.experiments import ExperimentContext, load_all
    from creditlab.experiments.gaitprop import summary_tables

    ctx = ExperimentContext(quick=True, out_dir=tmp_path, data_dir=data_root,
                            options={"epochs": 2, "tp_patience": 1})
    records = load_all().get("gaitprop-mnist").run(ctx)
    by_label = {r["final"]["label"]: r for r in records}
    assert sorted(by_label) == ["bp", "gaitprop", "tp"]
    tp = by_label["tp"]
    assert tp["config"]["early_stopping"] == 1 and tp["config"]["lr"] == 1e-5 and tp["final"]["best_epoch"] in (1, 2)
    best = tp["epochs"][tp["final"]["best_epoch"] - 1]
    assert tp["final"]["test_accuracy"] == best["test_accuracy"]  # the best validation epoch's test accuracy
    assert all("val_accuracy" not in e for e in by_label["bp"]["epochs"])  # only TP evaluates the val split
    assert len({r["final"]["train_examples"] for r in records}) == 1
    table = summary_tables(records)[0]
    rows = {row[0]: row for row in table.rows}
    bp_accuracy = f"{100 * by_label['bp']['final']['test_accuracy']:.2f}"
    for row in rows.values():
        assert row[4] == bp_accuracy and row[6] == "not available"
        assert len(row[8].split(" / ")) == 3  # one angle per weight layer (2 hidden + output)
    assert rows["bp"][5] == "+0.00"


def test_quick_tp_curve_runs_both_tp_settings_beside_bp(tmp_path, data_root):
    from creditlab.experiments import ExperimentContext, load_all
    from creditlab.experiments.gaitprop import gaitprop_headline

    records = load_all().get("tp-mnist-curve").run(ExperimentContext(quick=True, out_dir=tmp_path, data_dir=data_root))
    by_label = {r["final"]["label"]: r for r in records}
    assert sorted(by_label) == ["bp", "tp", "tp-lr1e-4"]
    assert by_label["tp"]["config"]["lr"] == 1e-5 and by_label["tp-lr1e-4"]["config"]["lr"] == 1e-4
    assert by_label["tp"]["config"]["early_stopping"] == 10
    assert gaitprop_headline(records) == []  # quick records never reach the README


def test_tp_early_stopping_without_a_validation_split_is_refused(tmp_path, data_root):
    from creditlab.errors import CreditlabError
    from creditlab.experiments import ExperimentContext, load_all

    ctx = ExperimentContext(quick=True, out_dir=tmp_path, data_dir=data_root,
                            options={"val_fraction": 0.0, "rules": ["tp"]})
    with pytest.raises(CreditlabError, match="needs a validation split"):
        load_all().get("gaitprop-mnist").run(ctx)


def test_quick_cifar10_reproduction_saves_the_angle_figure(tmp_path, data_root):
    from creditlab.experiments import ExperimentContext, load_all

    ctx = ExperimentContext(quick=True, out_dir=tmp_path, data_dir=data_root)
    records = load_all().get("gaitprop-cifar10").run(ctx)
    assert [r["final"]["label"] for r in records] == ["bp", "fa", "gaitprop-vanilla", "gaitprop-adaptive"]
    assert all(r["final"]["paper_status"] == "not available" and r["final"]["angles_deg_initial"] for r in records)
    assert (tmp_path / "gaitprop_cifar10_angles.png").is_file()


@pytest.mark.parametrize(("rows", "cols", "block_rows"), [(7, 7, 3), (5, 9, 2), (600, 600, 256), (784, 784, 256)])
def test_symmetric_gram_equals_the_full_product(rows, cols, block_rows):
    from creditlab.models.invertible import symmetric_gram

    weight = torch.randn(rows, cols, dtype=torch.float64, generator=torch.Generator().manual_seed(rows))
    reference = torch.einsum("ik,jk->ij", weight, weight)  # every entry summed independently
    assert torch.allclose(symmetric_gram(weight, block_rows), reference, rtol=1e-12, atol=1e-10)
    single = weight.float()
    assert torch.allclose(symmetric_gram(single, block_rows), single @ single.T, rtol=1e-5, atol=1e-3)


def test_the_blocked_orthogonality_gradient_matches_autograd_at_the_papers_width():
    weight = torch.linalg.qr(torch.randn(784, 784, dtype=torch.float64))[0] + 0.01 * torch.randn(784, 784,
                                                                                                  dtype=torch.float64)
    weight.requires_grad_(True)
    (autograd,) = torch.autograd.grad(orthogonality_penalty(weight, "off-diagonal"), weight)
    assert torch.allclose(orthogonality_penalty_gradient(weight.detach(), "off-diagonal"), autograd,
                          rtol=1e-10, atol=1e-10)


if __name__ == "__main__" and "--roundoff" in sys.argv:
    # The measured side of _gaitprop_roundoff_bounds: error / bound per layer (input first), several batches;
    # run under ATEN_CPU_CAPABILITY=default / avx2 / avx512 to see other CPUs' kernels.
    torch.set_num_threads(1)
    print(f"ATen CPU capability: {torch.backends.cpu.get_cpu_capability()}")
    for output_loss in ("mse", "cross-entropy"):
        for seed in (1, 2, 3, 4):
            rule = build_rule("gaitprop", _net(depth=4), gamma=1e-3, orthogonality=0.0, output_loss=output_loss)
            x, y = _batch(seed)
            bounds = _gaitprop_roundoff_bounds(rule, x, y)
            errors = _relative_errors(rule, x, y)
            print(f"{output_loss:13s} batch {seed}: bound " + " ".join(f"{b:.1e}" for b in bounds)
                  + " | error/bound " + " ".join(f"{e / b:.2f}" for e, b in zip(errors, bounds, strict=True)))
