"""Rule identification: the feedforward model's RL expectation (Monte Carlo), the statistic on
synthetic cases with known answers, the BMI flow-field pieces, the library observables, refusals,
and each reproduction's --quick path."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from creditlab.analysis.rule_id import bmi
from creditlab.analysis.rule_id import feedforward as ff
from creditlab.analysis.rule_id import library as lib
from creditlab.cli import app
from creditlab.data import DATASETS, Dataset
from creditlab.errors import CreditlabError
from creditlab.experiments import load_all
from creditlab.train import TrainConfig, fit, prepare


# --- the RL expected update, by Monte Carlo ------------------------------------------------------
@pytest.mark.parametrize("baseline", ["clean", "running"])
def test_rl_expected_update_is_sigma_d_transpose_e_x_by_monte_carlo(baseline: str) -> None:
    """E[eta (R - Rbar) xi x^T] = eta Sigma D^T e x^T with a non-isotropic Sigma.

    Tolerance: relative Frobenius error < 3% with 2e5 draws (the Monte Carlo standard error is
    about 0.9% for the clean baseline, about 2x larger for a constant baseline); cosine > 0.999.
    """
    rng = np.random.default_rng(1)
    n_in, n_h, n_out, draws, eta = 3, 12, 2, 200_000, 0.5
    sigma = ff.noise_covariance(n_h, 0.4, 20.0, rng)
    decoder = rng.standard_normal((n_out, n_h)) / np.sqrt(n_h)
    weights = rng.standard_normal((n_h, n_in))
    x, y_star = rng.standard_normal(n_in), rng.standard_normal(n_out)
    clean_error = y_star - decoder @ weights @ x
    xi = rng.standard_normal((draws, n_h)) @ np.linalg.cholesky(sigma).T
    hidden = weights @ x + xi
    rew = ff.reward(np.tile(y_star, (draws, 1)), np.broadcast_to(decoder, (draws, n_out, n_h)), hidden)
    base = -0.5 * clean_error @ clean_error if baseline == "clean" else -0.8  # any constant: unbiased
    mean_update = ff.rl_update(xi, rew, base, np.tile(x, (draws, 1)), eta).mean(0)
    expected = ff.expected_rl_update(sigma, decoder, clean_error, x, eta)
    assert np.linalg.norm(mean_update - expected) / np.linalg.norm(expected) < 0.03
    assert ff.matrix_cosine(mean_update, expected) > 0.999
    # and, non-isotropic Sigma, it is NOT the plain decoder direction (the prediction needs Sigma)
    assert ff.matrix_cosine(expected, np.outer(decoder.T @ clean_error, x)) < 0.95


def test_sl_update_is_m_e_x_by_hand() -> None:
    credit = np.array([[[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]])  # (1, 3, 2)
    update = ff.sl_update(credit, np.array([[1.0, -1.0]]), np.array([[2.0, 0.5]]), eta=0.1)
    np.testing.assert_allclose(update[0], 0.1 * np.outer([1.0, -2.0, 0.0], [2.0, 0.5]))


def test_matrix_with_overlap_has_exact_cosine_and_norm() -> None:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((2, 30))
    for overlap in (-0.3, 0.0, 0.4, 1.0):
        m = ff.matrix_with_overlap(ref, overlap, rng)
        assert ff.matrix_cosine(m, ref) == pytest.approx(overlap, abs=1e-12)
        assert np.linalg.norm(m) == pytest.approx(np.linalg.norm(ref))


# --- the statistic on synthetic cases with known answers -----------------------------------------
def test_mean_cosine_on_known_vectors() -> None:
    observed = np.array([[[1.0, 0.0], [0.0, 2.0]]])
    predicted = np.array([[[3.0, 0.0], [1.0, 1.0]]])
    assert ff.mean_cosine(observed, predicted)[0] == pytest.approx((1.0 + 1 / np.sqrt(2)) / 2)


def test_statistic_separates_mismatched_sl_from_rl() -> None:
    """Low overlap (M far from Sigma D^T): every run is called right."""
    result = ff.identification_accuracy(ff.FeedforwardSetting(overlap=0.2), replicates=20, seed=3)
    assert result["accuracy"] >= 0.95
    assert result["c_sl_under_sl"] > result["c_rl_under_sl"] and result["c_rl_under_rl"] > result["c_sl_under_rl"]


def test_statistic_fails_when_m_equals_sigma_d_transpose() -> None:
    """The failure case: M = Sigma D^T (isotropic Sigma: M = D^T) makes the predictions coincide."""
    result = ff.identification_accuracy(ff.FeedforwardSetting(m_toward_sigma=1.0), replicates=30, seed=4)
    assert result["cos_m_sigma_d"] == pytest.approx(1.0)
    assert 0.3 <= result["accuracy"] <= 0.7  # chance, up to sampling


def test_anisotropic_noise_separates_unbiased_sl_only_with_sigma() -> None:
    """M = D^T with strongly non-isotropic Sigma: the Sigma-aware RL prediction separates the rules, the
    plain decoder prediction cannot (it equals the SL prediction)."""
    with_sigma = ff.identification_accuracy(ff.FeedforwardSetting(overlap=1.0, anisotropy=100.0), 20, seed=5)
    without = ff.identification_accuracy(ff.FeedforwardSetting(overlap=1.0, anisotropy=100.0, use_sigma=False),
                                         20, seed=5)
    assert with_sigma["accuracy"] >= 0.9
    assert without["accuracy"] <= 0.75


@pytest.mark.parametrize(("changes", "message"), [
    ({"noise_std": 0.0}, "noise_std > 0"), ({"overlap": 1.5}, "overlap in"),
    ({"observed_trials": 1}, "observed_trials"),
    ({"anisotropy": 0.5}, "anisotropy >= 1"), ({"baseline": "mean"}, "baseline 'clean' or 'running'"),
    ({"n_out": 30}, "n_out"),
])
def test_feedforward_refuses_bad_settings(changes: dict, message: str) -> None:
    with pytest.raises(CreditlabError, match=message):
        ff.simulate("sl", ff.FeedforwardSetting(**changes), 2, 0)


def test_feedforward_refuses_unknown_rule_and_sweep_field() -> None:
    with pytest.raises(CreditlabError, match="valid: sl, rl"):
        ff.simulate("bp", ff.FeedforwardSetting(), 2, 0)
    with pytest.raises(CreditlabError, match="unknown setting 'noise'"):
        ff.sweep(ff.FeedforwardSetting(), "noise", [1.0], 2, 0)


# --- BMI pieces ------------------------------------------------------------------------------------
def test_flow_field_recovers_a_known_linear_map() -> None:
    rng = np.random.default_rng(0)
    true = 0.3 * rng.standard_normal((5, 5))
    h = np.zeros((1, 40, 12, 5))
    h[:, :, 0] = rng.standard_normal((40, 5))
    for t in range(1, 12):
        h[0, :, t] = h[0, :, t - 1] @ true.T
    np.testing.assert_allclose(bmi.flow_field(h)[0], true, atol=1e-8)


def test_predicted_flow_change_and_correlation_by_hand() -> None:
    w = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])          # (1, 2, 3)
    err = np.array([[[[1.0, 2.0]]]])                              # (1, 1, 1, 2)
    h = np.array([[[[0.0, 0.0, 3.0]]]])                           # (1, 1, 1, 3)
    pred = bmi.predicted_flow_change(w, err, h)
    np.testing.assert_allclose(pred[0], np.outer([1.0, 2.0, 0.0], [0.0, 0.0, 3.0]))
    assert bmi.flow_field_correlation(pred, pred, h)[0] == pytest.approx(1.0)
    assert bmi.flow_field_correlation(pred, -pred, h)[0] == pytest.approx(-1.0)


def test_sign_flip_test_exact_small_case() -> None:
    rng = np.random.default_rng(0)
    assert bmi.sign_flip_test(np.array([1.0, 1.0, 1.0, 1.0]), rng) == pytest.approx(2 / 16)
    assert bmi.sign_flip_test(np.array([1.0, -1.0]), rng) == pytest.approx(1.0)
    with pytest.raises(CreditlabError, match="at least one"):
        bmi.sign_flip_test(np.array([]), rng)


def test_bmi_refuses_bad_settings() -> None:
    with pytest.raises(CreditlabError, match="sig_rec > 0"):
        bmi.pretrain(bmi.BMISetting(sig_rec=0.0))
    with pytest.raises(CreditlabError, match="test_duration >= 2"):
        bmi.BMISetting(test_duration=1).validate()
    with pytest.raises(CreditlabError, match="construction one of authors, exact"):
        bmi.BMISetting(construction="dense").validate()
    setting = bmi.BMISetting(pretrain_duration=2, train_duration=2, test_duration=2)
    net = bmi.pretrain(setting)
    with pytest.raises(CreditlabError, match=r"M overlap 1.5 out of range: a flat cosine in \[0, 1\]"):
        bmi.retrain_and_score(setting, net, "sl", [0], [(0.5, 1.5)])
    with pytest.raises(CreditlabError, match="valid: sl, rl"):
        bmi.retrain_and_score(setting, net, "bptt", [0], [(0.5, 0.5)])


def _authors_stream(setting: bmi.BMISetting, trials: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The authors' draws written out call by call with numpy's own functions (rand, randn and
    multivariate_normal, in the order of their RNN.initialize_weights, Simulation.run_session,
    RNN.next_state and RNN.output): an independent account of the stream."""
    rng = np.random.RandomState(setting.network_seed)
    n = setting.n_rec
    weights = {"w_in": setting.g_in * (rng.rand(n, 4) - 1), "w_rec": setting.g_rec * rng.randn(n, n) / n ** 0.5,
               "w_out": setting.g_out * (2 * rng.rand(2, n) - 1) / n ** 0.5}
    tasks = rng.choice(np.arange(0, 4), size=trials)
    xi = np.zeros((trials, setting.trial_duration, n))
    out = np.zeros((trials, setting.trial_duration, 2))
    for trial in range(trials):
        for t in range(setting.trial_duration):
            rng.randn(4, 1)  # the input noise, times sig_in = 0
            xi[trial, t] = rng.multivariate_normal(np.zeros(n), setting.sig_rec * np.eye(n), size=1).ravel()
            out[trial, t] = setting.sig_out * rng.randn(2, 1).ravel()
    return weights, {"tasks": tasks, "xi": xi, "out": out}


@pytest.mark.parametrize("sig_rec", [0.25, 0.1])
def test_network_and_session_noise_are_the_authors_stream(sig_rec: float) -> None:
    """RandomState(72): the initial weights and a session's task order and noise, draw for draw."""
    setting = bmi.BMISetting(sig_rec=sig_rec, n_rec=12)
    weights, start = bmi.initial_weights(setting)
    expected_weights, expected = _authors_stream(setting, 7)
    for key, value in expected_weights.items():
        np.testing.assert_array_equal(weights[key], value)
    noise = bmi.session_noise(setting, start, 7)
    np.testing.assert_array_equal(noise["tasks"], expected["tasks"])
    np.testing.assert_allclose(noise["xi"], expected["xi"], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(noise["out"], expected["out"], rtol=1e-12, atol=1e-15)


def test_sessions_before_and_after_learning_replay_the_same_noise_for_every_network() -> None:
    """Common random numbers: a session replays from the same state each time (``start`` is not
    advanced), so a passive session run before and after with unchanged weights gives the same activity
    bit for bit, and two networks of a batch with the same weights see the same noise."""
    setting = bmi.BMISetting(n_rec=10, pretrain_duration=3, train_duration=4, test_duration=5)
    net = bmi.pretrain(setting)
    before = bmi.session_noise(setting, net["start"], 5)
    after = bmi.session_noise(setting, net["start"], 5)
    for key in before:
        np.testing.assert_array_equal(before[key], after[key])
    training = bmi.session_noise(setting, net["start"], 4)
    np.testing.assert_array_equal(training["tasks"], before["tasks"][:4])  # the task order's first trials too
    w_in, w_rec, w_out = (np.repeat(net[k][None], 2, 0) for k in ("w_in", "w_rec", "w_out"))
    runs = [bmi.run_session(setting, w_in, w_rec, w_out, None, None, noise, record=True) for noise in (before, after)]
    np.testing.assert_array_equal(runs[0]["h"], runs[1]["h"])
    np.testing.assert_array_equal(runs[0]["h"][0], runs[0]["h"][1])


@pytest.mark.parametrize("overlap", [0.2, 0.4, 0.5, 0.8, 1.0])
def test_authors_aligned_matrix_hits_the_cosine_and_keeps_the_other_entries(overlap: float) -> None:
    setting = bmi.BMISetting()
    w_bmi0 = bmi.initial_weights(setting)[0]["w_out"]
    for seed in (0, 22, 5):
        w_bmi1, m_like = bmi.draw_decoder_and_credit(setting, w_bmi0, seed, 0.5, overlap)
        for reference, drawn, target in ((w_bmi0, w_bmi1, 0.5), (w_bmi1, m_like, overlap)):
            cosine = ff.matrix_cosine(reference, drawn)
            assert abs(abs(cosine) - target) < 0.01
            changed = reference != drawn
            assert changed.sum() <= bmi.n_change_for(target, reference.size)  # the rest kept exactly
            assert np.all(np.abs(drawn[changed]) <= 1 / np.sqrt(setting.n_rec))  # scale-1 entries
        assert np.linalg.norm(w_bmi1) < np.linalg.norm(w_bmi0)  # re-drawn at scale 1 under g_out = 2
    assert bmi.n_change_for(1.0, 100) == 0
    with pytest.raises(CreditlabError, match="no draw with 100 re-drawn entries"):
        bmi.authors_aligned_matrix(w_bmi0, 0.95, 100, np.random.RandomState(0), loop=50)


def test_seed_level_test_has_one_unit_per_seed() -> None:
    """Four seeds, every overlap favouring the rule: one difference per seed, and p = 2/16 (the floor)."""
    difference = np.array([[0.5, 0.3, 0.0], [0.2, 0.4, 0.0], [0.1, 0.1, 0.0], [0.6, 0.2, 0.0]])
    per_seed = bmi.per_seed_differences(difference, [0.2, 0.5, 1.0])
    np.testing.assert_allclose(per_seed, [0.4, 0.3, 0.1, 0.4])  # overlap 1 left out: the predictions coincide
    assert bmi.sign_flip_test(per_seed, np.random.default_rng(0)) == pytest.approx(2 / 16)
    with pytest.raises(CreditlabError, match="at least one overlap below 1"):
        bmi.per_seed_differences(difference[:, 2:], [1.0])


def test_authors_rl_figure_data_is_stored_under_what_each_curve_is() -> None:
    """The RL figure sweeps the decoder overlap: at 1 the old and new decoders are the same matrix, so
    their predictions agree seed by seed; the 'SL(M-hat)' curve is the old decoder's."""
    from creditlab.papers import portes2022

    old, new = portes2022.paper_per_seed("rl", "corr_w_bmi0"), portes2022.paper_per_seed("rl", "corr_w_bmi1")
    np.testing.assert_array_equal(old[:, -1], new[:, -1])
    assert portes2022.paper_correlation("rl", "corr_w_bmi0", 0.2).value == pytest.approx(-0.019, abs=5e-4)
    assert portes2022.paper_correlation("rl", "corr_m", 0.2).value == pytest.approx(0.111, abs=5e-4)
    assert portes2022.paper_correlation("sl", "corr_m", 0.4).value == pytest.approx(0.742, abs=5e-4)
    sl_m, sl_new = portes2022.paper_per_seed("sl", "corr_m"), portes2022.paper_per_seed("sl", "corr_w_bmi1")
    np.testing.assert_array_equal(sl_m[:, -1], sl_new[:, -1])  # M = W_bmi1^T at overlap 1


# --- library observables -----------------------------------------------------------------------------
def test_summary_statistics_by_hand() -> None:
    stats = lib.summary_statistics(torch.tensor([-1.0, 1.0, 3.0, 5.0]))
    raw = dict(zip(lib.STATISTICS, stats[0], strict=True))
    assert raw["mean"] == pytest.approx(2.0) and raw["var"] == pytest.approx(5.0)
    assert raw["median"] == pytest.approx(2.0) and raw["skew"] == pytest.approx(0.0, abs=1e-12)
    assert raw["norm"] == pytest.approx(np.sqrt(36 / 4))
    assert raw["kurtosis"] == pytest.approx(np.mean(np.array([-3.0, -1.0, 1.0, 3.0]) ** 4) / 25)


def test_observables_npz_round_trip_and_corrupt_file(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    rule = type("R", (), {"model": model})()
    recorder = lib.ObservableRecorder(torch.randn(5, 4), every=2)
    recorder.on_fit_start(rule, None)
    for step in range(4):
        recorder.on_step_end(rule, step)
    loaded = lib.load_observables(recorder.save(tmp_path, {"rule": "bp"}), {"rule": "bp"})
    assert loaded["values"].shape == (3, 2, 3, 3, 7) and list(loaded["steps"]) == [0, 2, 4]
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    with pytest.raises(CreditlabError, match=r"observables file .*bad.npz is missing or corrupt"):
        lib.load_observables(tmp_path / "bad.npz")
    with pytest.raises(CreditlabError, match="fewer than the 9 timepoints"):
        lib.trajectory_features(loaded["values"], 9)


def test_observables_recorded_for_another_run_are_refused_naming_the_file(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    recorder = lib.ObservableRecorder(torch.randn(5, 4))
    recorder.record(type("R", (), {"model": model})())
    path = recorder.save(tmp_path, {"rule": "fa", "seed": 1, "lr": 0.001})
    with pytest.raises(CreditlabError, match=r"observables file .*observables.npz was recorded for another run "
                                             r"\(differs in: rule, seed\)"):
        lib.load_observables(path, {"rule": "bp", "seed": 2, "lr": 0.001})
    np.savez(tmp_path / "foreign.npz", values=np.zeros((3, 2, 3, 3)), steps=np.zeros(3))
    with pytest.raises(CreditlabError, match=r"foreign.npz has values of shape \(3, 2, 3, 3\)"):
        lib.load_observables(tmp_path / "foreign.npz")


def test_scale_normalised_statistics_do_not_see_a_layer_scale() -> None:
    """A layer whose weights, updates and activations are all scaled gives the same normalised features."""
    generator = torch.Generator().manual_seed(0)
    weight, update, activation = (torch.randn(6, 5, generator=generator, dtype=torch.float64) for _ in range(3))

    def values(w_scale: float, a_scale: float) -> np.ndarray:
        rows = [[lib.summary_statistics(w_scale * weight), lib.summary_statistics(torch.zeros(6, 5)),
                 lib.summary_statistics(a_scale * activation)],
                [lib.summary_statistics(w_scale * (weight + update)), lib.summary_statistics(w_scale * update),
                 lib.summary_statistics(a_scale * activation.relu())]]
        return np.asarray(rows)[:, None]  # (records, layers=1, measures, transforms, statistics)

    base, scaled = values(1.0, 1.0), values(0.37, 4.2)
    assert not np.allclose(base, scaled)
    np.testing.assert_allclose(lib.scale_normalised(scaled), lib.scale_normalised(base), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(lib.scale_normalised(base)[0, 0, 0, 0, 0], 1.0)  # initial weight RMS is the unit
    with pytest.raises(CreditlabError, match="unknown feature scaling 'width'; valid: none, init"):
        lib.trajectory_features(base, 2, "width")


def _tiny_dataset() -> Dataset:
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(40, 1, 28, 28, generator=generator)
    y = torch.randint(0, 10, (40,), generator=generator)
    return Dataset(DATASETS.get("mnist"), x, y, x[:0], y[:0], x[:8], y[:8])


def test_recorder_is_called_once_per_trainer_step_and_resumes_from_the_checkpoint(tmp_path: Path) -> None:
    data = _tiny_dataset()  # 40 images, batch 8: 5 steps per epoch

    def run(epochs: int, out: Path | None, resume: bool = False) -> lib.ObservableRecorder:
        config = TrainConfig(epochs=epochs, batch_size=8, lr=0.01, optimizer="sgd", seed=0, progress=False,
                             out_dir=str(out) if out else None, resume=resume)
        learner = prepare("bp", "mlp", "mnist", config, {}, {"hidden": (6,)})
        recorder = lib.ObservableRecorder(data.train_x[:4], every=2)
        fit(learner, data, config, hooks=[recorder])
        return recorder

    straight = run(3, None)
    assert straight.steps == [0, 2, 4, 6, 8, 10, 12, 14]  # 15 steps: the init, then every 2nd
    run(1, tmp_path)
    resumed = run(3, tmp_path, resume=True)
    assert resumed.steps == straight.steps
    np.testing.assert_array_equal(np.asarray(resumed.values), np.asarray(straight.values))


def test_recorder_state_from_another_run_is_refused_naming_the_checkpoint(tmp_path: Path) -> None:
    data = _tiny_dataset()
    config = TrainConfig(epochs=1, batch_size=8, lr=0.01, optimizer="sgd", seed=0, progress=False,
                         out_dir=str(tmp_path))
    fit(prepare("bp", "mlp", "mnist", config, {}, {"hidden": (6,)}), data, config,
        hooks=[lib.ObservableRecorder(data.train_x[:4], every=2)])
    config = dataclasses.replace(config, epochs=2, resume=True)
    with pytest.raises(CreditlabError, match=r"hook 0 \(ObservableRecorder\) in checkpoint .*checkpoint.pt does "
                                             r"not fit this run \(.*recorded every 2 steps, this recorder every 3"):
        fit(prepare("bp", "mlp", "mnist", config, {}, {"hidden": (6,)}), data, config,
            hooks=[lib.ObservableRecorder(data.train_x[:4], every=3)])
    with pytest.raises(CreditlabError, match="not an observable recorder's"):
        lib.ObservableRecorder(data.train_x[:4]).load_state_dict({"values": []})


def test_logistic_classifier_separates_separable_classes() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-2, 1, (30, 4)), rng.normal(2, 1, (30, 4))])
    y = np.repeat([0, 1], 30)
    assert (lib.LogisticClassifier(iterations=30).fit(x, y, 2).predict(x) == y).mean() > 0.95
    np.testing.assert_array_equal(lib.confusion_matrix(np.array([0, 1, 1]), np.array([0, 0, 1]), 2), [[1, 0], [1, 1]])


# --- the reproductions, --quick --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["rule-id-feedforward", "rule-id-bmi"])
def test_reproduce_quick_writes_records_and_figure(name: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["reproduce", name, "--quick", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert records and all(r["config"]["quick"] for r in records)
    assert list(tmp_path.glob("*.png"))
    tables = load_all().get(name).summary(records)  # what `creditlab report` shows
    assert tables and all(table.rows for table in tables)


def test_reproduce_library_quick(tmp_path: Path, data_root: Path) -> None:
    result = CliRunner().invoke(app, ["reproduce", "rule-id-library", "--quick", "--out", str(tmp_path),
                                      "--data-dir", str(data_root)])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[0])
    assert {"bp", "fa", "dfa", "node-perturbation"} <= set(record["final"]["rules"])
    assert "gevb" in record["final"]["refused"]  # its own model check refuses the MLPs
    assert len(list((tmp_path / "library_runs").rglob("observables.npz"))) == len(record["final"]["runs"])
    accuracy, confusion_seeds, _, confusion_fresh = load_all().get("rule-id-library").summary([record])
    assert [row[0] for row in accuracy.rows] == ["none", "init"]
    assert {run["split"] for run in record["final"]["runs"]} == {"train", "test", "held_out", "fresh"}
    assert {tuple(run["hidden"]) for run in record["final"]["runs"] if run["split"] == "fresh"} == {(64, 32, 16)}
    assert "fresh_accuracy" in record["final"] and confusion_fresh.title == "Confusion, fresh architecture"
    assert [row[0] for row in confusion_seeds.rows] == record["final"]["rules"]


def test_reproduce_library_refuses_a_corrupt_cached_observables_file(tmp_path: Path, data_root: Path) -> None:
    bad = tmp_path / "library_runs" / "bp-train-seed0" / "observables.npz"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"PK\x03\x04 truncated")
    result = CliRunner().invoke(app, ["reproduce", "rule-id-library", "--quick", "--out", str(tmp_path),
                                      "--data-dir", str(data_root), "--opt", "reuse=true"])
    assert result.exit_code == 2, result.output
    assert "bp-train-seed0" in result.output and "missing or corrupt" in result.output
    assert not (tmp_path / "results.jsonl").exists()  # nothing recorded from partial data


@pytest.mark.parametrize(("name", "options", "message"), [
    ("rule-id-library", ["rules=[bp]"], "at least 2 distinct rules"),
    ("rule-id-library", ["rules=[bp,gevb]"], "rule 'gevb' cannot be identified here"),
    ("rule-id-library", ["rules=[bp,sgd]"], "unknown rule 'sgd'; valid: bp"),
    ("rule-id-library", ["timepoints=9"], "records only 5 times"),
    ("rule-id-library", ["every=0"], "every=0: .*option 'every' takes a whole number >= 1"),
    ("rule-id-feedforward", ["replicates=-3"], "replicates=-3: .*takes a whole number >= 1"),
    ("rule-id-feedforward", ["sweeps=[depth]"], "takes one of 'observed_trials'.*item depth: not one of the valid"),
    ("rule-id-bmi", ["m_overlaps=[1.5]"],
     "m_overlaps=\\[1.5\\]: .*option 'm_overlaps' takes a number >= 0 and <= 1.*item 1.5"),
    ("rule-id-bmi", ["decoder_overlap=-0.2"], "--opt decoder_overlap=-0.2: .*takes a number >= 0 and <= 1"),
    ("rule-id-bmi", ["rule=bptt"], "--opt rule=bptt: .*takes one of 'sl', 'rl', 'both'"),
    ("rule-id-bmi", ["n_rec=2.5"], "--opt n_rec=2.5: .*takes a whole number >= 3"),
    ("rule-id-bmi", ["sig_rec=0"], "--opt sig_rec=0: .*takes a number > 0"),
    ("rule-id-bmi", ["train_duration=1"], "--opt train_duration=1: .*takes a whole number >= 2"),
    ("rule-id-bmi", ["construction=dense"], "--opt construction=dense: .*takes one of 'authors', 'exact'"),
    ("rule-id-bmi", ["seeds=[0,0]"], "--opt seeds: each seed once"),
])
def test_reproduce_refuses_bad_options(name: str, options: list[str], message: str, tmp_path: Path) -> None:
    args = ["reproduce", name, "--quick", "--out", str(tmp_path)]
    for option in options:
        args += ["--opt", option]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert re.search(message, " ".join(result.output.split())), result.output
