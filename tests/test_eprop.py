"""e-prop and BPTT on the LSNN, checked against autograd (float64) and by hand-countable cases."""

from __future__ import annotations

import pytest
import torch

from conftest import killed_at_step
from creditlab.bench.perf import _cpu_step_peak
from creditlab.data.generated import EvidenceTask
from creditlab.errors import IncompatibleModelError
from creditlab.models import build_model
from creditlab.models.lsnn import lsnn_gradients
from creditlab.rules import build_rule
from creditlab.seeding import seeded_generator
from creditlab.tasks import IGNORE_INDEX

TINY = EvidenceTask(n_cues=3, t_cue=6, t_interval=8, delay=10, recall=8)  # 42 steps


def _network(steps: int = TINY.steps, dtype: torch.dtype = torch.float64, **options):  # noqa: ANN202
    torch.manual_seed(0)
    settings = {"n_regular": 6, "n_adaptive": 6, "tau_adaptation": 50.0, "threshold": 0.3, **options}
    return build_model("lsnn", (steps, 40), 2, **settings).to(dtype)


def _batch(count: int = 4, task: EvidenceTask = TINY):  # noqa: ANN202
    return task.generate(count, seeded_generator(1, "test"))


@pytest.mark.parametrize("feedback", ["symmetric", "random"])
def test_online_eprop_equals_autograd_on_the_graph_with_recurrent_paths_cut(feedback: str, one_thread) -> None:
    """Paper: e-prop = the gradient with dE/dz(t) restricted to its direct (readout) path. Autograd on the
    cut graph (z_{t-1} blocked into v_t, kept into the adaptation and the readout) gives it independently."""
    model = _network()
    x, y = _batch()
    rule = build_rule("eprop", model, feedback=feedback)
    online, loss, outputs = rule.online_update(x, y)
    readout_feedback = None if feedback == "symmetric" else rule.feedback_weight
    cut, cut_loss, cut_outputs = lsnn_gradients(model, x, y, cut=True, readout_feedback=readout_feedback)
    full, _, _ = lsnn_gradients(model, x, y)
    assert outputs.sum() != 0 and float(cut["input_weight"].abs().max()) > 1e-3  # a case with spikes and signal
    for name in online:
        torch.testing.assert_close(online[name], cut[name], rtol=1e-10, atol=1e-12)
    # the readout gradient is BPTT's exactly; the recurrent paths do matter for the others
    torch.testing.assert_close(online["readout_weight"], full["readout_weight"], rtol=1e-10, atol=1e-12)
    assert not torch.allclose(online["recurrent_weight"], full["recurrent_weight"], atol=1e-6)
    torch.testing.assert_close(loss, cut_loss, rtol=1e-12, atol=0)
    torch.testing.assert_close(outputs, cut_outputs)
    assert torch.all(online["recurrent_weight"].diagonal() == 0)  # no self-connections


def test_the_two_implementations_agree_and_write_grad(one_thread) -> None:
    model = _network()
    x, y = _batch()
    grads = {}
    for implementation in ("online", "autodiff"):
        rule = build_rule("eprop", model, implementation=implementation, feedback="random", seed=3)
        rule.step(x, y)
        grads[implementation] = {n: p.grad.clone() for n, p in model.named_parameters()}
    for name, value in grads["online"].items():
        torch.testing.assert_close(value, grads["autodiff"][name], rtol=1e-9, atol=1e-12)


def test_bptt_is_autograd_and_matches_a_hand_computed_readout_gradient() -> None:
    """Readout gradient by hand: sum over scored steps of zbar(t) (softmax(y) - onehot) / count."""
    model = _network()
    x, y = _batch()
    rule = build_rule("bptt", model)
    rule.step(x, y)
    simulation = model.simulate(x)
    zbar, outputs = torch.zeros(4, model.neurons, dtype=torch.float64), simulation.outputs.detach()
    expected = torch.zeros_like(model.readout_weight)
    count = (y != IGNORE_INDEX).sum()
    for t in range(x.shape[1]):
        zbar = model.kappa * zbar + simulation.spikes[:, t].detach()
        scored = (y[:, t] != IGNORE_INDEX).to(torch.float64)
        error = torch.softmax(outputs[:, t], 1) - torch.nn.functional.one_hot(y[:, t].clamp(min=0), 2)
        expected += zbar.T @ (error * scored[:, None]) / count
    torch.testing.assert_close(model.readout_weight.grad, expected)


def test_adaptive_feedback_moves_toward_the_readout_update() -> None:
    model = _network()
    x, y = _batch()
    rule = build_rule("eprop", model, feedback="adaptive", feedback_lr=0.5)
    before = rule.feedback_weight.clone()
    rule.step(x, y)
    torch.testing.assert_close(rule.feedback_weight, before - 0.5 * model.readout_weight.grad)


def test_online_memory_does_not_grow_with_sequence_length(one_thread) -> None:
    """Peak tensor memory of one step at T and 4T: flat for online e-prop, growing for BPTT."""
    peaks = {}
    for steps in (50, 200):
        task = EvidenceTask(n_cues=2, t_cue=5, t_interval=10, delay=steps - 30, recall=10)
        model = _network(steps=task.steps, dtype=torch.float32)
        x, y = _batch(8, task)
        for name in ("eprop", "bptt"):
            rule = build_rule(name, model)
            peaks[name, steps] = _cpu_step_peak(lambda rule=rule: rule.step(x, y))  # noqa: B023
    output_growth = 8 * 150 * (2 * 4 + 1)  # the (batch, T, classes) outputs and the (batch, T) mask: O(T) but tiny
    assert peaks["eprop", 200] <= peaks["eprop", 50] + output_growth + 4096
    assert peaks["bptt", 200] > 3 * peaks["bptt", 50]


def test_refusals_name_the_option() -> None:
    model = _network()
    with pytest.raises(ValueError, match="feedback='transpose' does not exist; valid: symmetric, random, adaptive"):
        build_rule("eprop", model, feedback="transpose")
    with pytest.raises(ValueError, match="implementation"):
        build_rule("eprop", model, implementation="hardcoded")
    with pytest.raises(IncompatibleModelError, match="only rules bptt, eprop train it"):
        build_rule("bp", model)
    with pytest.raises(IncompatibleModelError, match="LSNN"):
        build_rule("eprop", build_model("mlp", (1, 28, 28), 10))
    with pytest.raises(ValueError, match="LIF/ALIF split"):
        build_model("lsnn", (100, 40), 2, n_regular=0, n_adaptive=0)
    with pytest.raises(ValueError, match="n_adaptive"):
        build_model("lsnn", (100, 40), 2, n_adaptive=-1)
    with pytest.raises(ValueError, match="sequence inputs"):
        build_model("lsnn", (1, 28, 28), 10)


def test_evidence_task_matches_its_definition() -> None:
    """Counted by hand: cue windows, the recall window, the majority label, seeded reproducibility."""
    task = EvidenceTask(n_cues=7, t_cue=10, t_interval=20, delay=30, recall=15, rate_hz=1000.0)
    x, y = task.generate(64, seeded_generator(0, "t"))
    assert x.shape == (64, task.steps, 40) and task.steps == 7 * 20 + 30 + 15
    left, right, recall = (x[:, :, g * 10:(g + 1) * 10].sum(2) for g in range(3))
    for k in range(7):  # at rate 1 kHz every cue step spikes in all 10 channels of its side
        window = slice(10 + 20 * k, 20 + 20 * k)
        assert torch.all((left[:, window] == 10) ^ (right[:, window] == 10))
    right_cues = torch.stack([right[:, 10 + 20 * k] == 10 for k in range(7)], 1).sum(1)
    assert torch.equal(y[:, -1], (right_cues > 3).long())
    assert torch.all(y[:, :-15] == IGNORE_INDEX) and torch.all(recall[:, -15:] == 10)
    assert torch.all(recall[:, :-15] == 0)
    again, _ = task.generate(64, seeded_generator(0, "t"))
    assert torch.equal(x, again)


def test_killed_and_resumed_eprop_run_equals_the_uninterrupted_one(tmp_path, monkeypatch, one_thread) -> None:  # noqa: ANN001
    from creditlab.data.dataset import Dataset
    from creditlab.data.generated import EVIDENCE_SHORT
    from creditlab.data.specs import DATASETS
    from creditlab.tasks import SEQUENCE_CLASSIFICATION
    from creditlab.train import train_from_names

    x, y = EVIDENCE_SHORT.generate(48, seeded_generator(2, "test"))
    data = Dataset(DATASETS.get("evidence-short"), x, y, x[:0], y[:0], x[:16], y[:16], SEQUENCE_CLASSIFICATION)
    options = {"epochs": 2, "batch_size": 16, "progress": False, "model_options": {"n_regular": 6, "n_adaptive": 6},
               "rule_options": {"feedback": "adaptive"}}
    full = train_from_names("eprop", "lsnn", "evidence-short", loaded=data, out_dir=str(tmp_path / "full"), **options)
    with killed_at_step(monkeypatch, 4):  # in the second epoch (3 steps per epoch)
        train_from_names("eprop", "lsnn", "evidence-short", loaded=data, out_dir=str(tmp_path / "cut"), **options)
    resumed = train_from_names("eprop", "lsnn", "evidence-short", loaded=data, out_dir=str(tmp_path / "cut"),
                               resume=True, **options)
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in full["history"]]
    full_state = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=False)
    cut_state = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)
    assert torch.equal(full_state["rule"]["feedback_weight"], cut_state["rule"]["feedback_weight"])
    for key, value in full_state["model"].items():
        assert torch.equal(value, cut_state["model"][key]), key


def test_alignment_reports_the_exact_readout_and_the_approximate_recurrent_update(one_thread) -> None:
    """--track-alignment's measurement: e-prop's readout update is BPTT's (0 degrees), its recurrent one is not."""
    from creditlab.analysis.alignment import measure_alignment

    model = _network()
    x, y = _batch()
    metrics = measure_alignment(build_rule("eprop", model, feedback="random"), x, y)
    assert set(metrics) == {"input_weight", "recurrent_weight", "readout_weight"}
    angle = next(k for k in metrics["readout_weight"] if k.startswith("angle"))
    assert metrics["readout_weight"][angle] < 1e-3
    assert metrics["recurrent_weight"][angle] > 1.0
    assert 0 < metrics["readout_weight"]["weight_feedback_angle_deg"] < 180


@pytest.mark.parametrize("model,optimizer", [("eprop_iaf", "adam"), ("eprop_iaf_adapt", "gradient_descent")])
def test_nest_convention_eprop_gives_the_losses_nest_test_file_asserts(model: str, optimizer: str) -> None:
    """Against an independent source: the five losses nest-simulator's test_eprop_regression asserts
    (rtol 1e-8 there; its values carry 14 significant digits)."""
    import numpy as np

    from creditlab.papers.bellec2020 import NEST_SINE_LOSSES
    from creditlab.spiking.eprop_nest import NestSineSetting, simulate_nest_sine

    losses = simulate_nest_sine(NestSineSetting(neuron_model=model, optimizer=optimizer))["losses"]
    np.testing.assert_allclose(losses, NEST_SINE_LOSSES[model], rtol=1e-10)


def test_nir_export_reads_back_and_simulates_like_the_model(tmp_path) -> None:  # noqa: ANN001
    """Written to a file and read back, the graph simulated from its nodes gives the model's readout
    (float32 weights); ignoring the ALIF metadata changes it (NIR cannot express the adaptive threshold)."""
    pytest.importorskip("nir")
    from creditlab.spiking import lsnn_nir, nir_export

    model = _network(dtype=torch.float32, threshold=0.1)
    x, _ = _batch()
    nir_export.write(lsnn_nir.lsnn_graph(model), tmp_path / "lsnn.nir")
    graph = nir_export.read(tmp_path / "lsnn.nir")
    with torch.no_grad():
        expected = model.double()(x)
    torch.testing.assert_close(lsnn_nir.simulate(graph, x), expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(lsnn_nir.simulate(graph, x, adaptive=False), expected, atol=1e-6)


@pytest.mark.parametrize(("flags", "message"), [
    (["--rule-opt", "feedback=nope"], "feedback='nope' does not exist"),
    (["--model-opt", "n_adaptive=-1"], "n_adaptive"),
    (["--model-opt", "n_regular=0", "--model-opt", "n_adaptive=0"], "LIF/ALIF split"),
    (["--rule-opt", "implementation=hardcoded"], "implementation"),
])
def test_cli_refuses_bad_options_with_exit_2(flags: list[str], message: str, tmp_path) -> None:  # noqa: ANN001
    from typer.testing import CliRunner

    from creditlab.cli import app

    result = CliRunner().invoke(app, ["train", "--rule", "eprop", "--model", "lsnn", "--data", "evidence-short",
                                      "--epochs", "1", "--quiet", "--out", str(tmp_path), *flags])
    assert result.exit_code == 2, result.output
    assert message in result.output
