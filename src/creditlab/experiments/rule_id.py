"""Rule identification (issue 21): ``rule-id-feedforward``, ``rule-id-bmi``, ``rule-id-library``.

Portes, Schmid & Murray, "Distinguishing Learning Rules with Brain Machine Interfaces" (NeurIPS 2022):
the feedforward SL-vs-RL model and the BMI recurrent-network experiment; then, beyond the paper,
identifying which creditlab rule trained a network from observables recorded during training.
Models, equations and departures: :mod:`creditlab.analysis.rule_id`. Every number printed here is
also in the records the experiment writes (``results.jsonl`` in ``--out``).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import time
from typing import Any

import numpy as np
import torch

from creditlab.analysis.rule_id import bmi as bmi_lib
from creditlab.analysis.rule_id import feedforward as ff
from creditlab.analysis.rule_id import library as lib
from creditlab.errors import IncompatibleModelError
from creditlab.experiments import ExperimentContext, register_experiment
from creditlab.results import make_record

#: the authors' figure data, ``tables_recovered.md`` §6.2 (VERIFIED, pre-submission figure-data pickles,
#: commit f6bb45e of jacobfulano/learning-rules-with-bmi); mean over seeds {0, 22, 33, 47}
PAPER_BMI: dict[str, dict[str, Any]] = {
    "sl": {"status": "verified (pre-submission figure data)", "source": "stats_rflo_m-fig2b-5-18.pickle",
           "overlaps": [0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
           "corr_m": [0.742, 0.778, 0.741, 0.692, 0.722, 0.685, 0.647],
           "corr_w_bmi1": [0.226, 0.357, 0.414, 0.439, 0.482, 0.588, 0.647],
           "corr_w_bmi0": [-0.082, -0.019, 0.078, 0.140, 0.052, 0.089, 0.133]},
    "rl": {"status": "verified (pre-submission figure data)", "source": "stats_reinforce_wout.pickle",
           "overlaps": [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
           "corr_w_bmi1": [0.242, 0.276, 0.288, 0.270, 0.219, 0.139, 0.144, 0.171, 0.144],
           "corr_m": [-0.019, 0.007, 0.002, 0.041, 0.065, 0.080, 0.107, 0.130, 0.144]},
}
BMI_SEEDS = [0, 22, 33, 47]


# ---------------------------------------------------------------------------------------------
# feedforward
# ---------------------------------------------------------------------------------------------
FF_SWEEPS: dict[str, tuple[dict[str, Any], str, list[Any]]] = {
    # name: (changes to the base setting, swept field, values)
    "observed_trials": ({}, "observed_trials", [2, 3, 5, 10, 20, 50]),
    "learning_trials": ({}, "learning_trials", [5, 10, 20, 50, 100, 200, 400]),
    "noise_std": ({}, "noise_std", [0.05, 0.1, 0.3, 1.0, 3.0]),
    "overlap": ({}, "overlap", [0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 1.0]),
    "anisotropy_with_sigma": ({"overlap": 1.0}, "anisotropy", [1.0, 3.0, 10.0, 30.0, 100.0]),
    "anisotropy_without_sigma": ({"overlap": 1.0, "use_sigma": False}, "anisotropy", [1.0, 3.0, 10.0, 30.0, 100.0]),
    "failure_m_toward_sigma_d": ({}, "m_toward_sigma", [0.0, 0.25, 0.5, 0.75, 0.9, 1.0]),
    "running_baseline_learning_trials": ({"baseline": "running"}, "learning_trials", [5, 10, 20, 50, 100, 200, 400]),
}


@register_experiment("rule-id-feedforward",
                     "Portes et al. 2022 feedforward model: SL (credit matrix M) vs RL (node perturbation) "
                     "identified from activity changes; accuracy vs trials, noise, overlap, anisotropy")
def run_feedforward(ctx: ExperimentContext) -> list[dict[str, Any]]:
    """Every sweep of FF_SWEEPS with ``replicates`` SL and as many RL experiments per point."""
    replicates = 12 if ctx.quick else 200
    base = ff.FeedforwardSetting()
    records = []
    panels: dict[str, list[dict[str, Any]]] = {}
    for name, (changes, field, values) in FF_SWEEPS.items():
        if ctx.quick:
            values = values[:2] + values[-1:]
        started = time.perf_counter()
        points = ff.sweep(dataclasses.replace(base, **changes), field, values, replicates, ctx.seed)
        record = make_record("reproduce", f"rule-id-feedforward/{name}",
                             {"base": dataclasses.asdict(base), "changes": changes, "field": field, "values": values,
                              "replicates": replicates, "seed": ctx.seed, "quick": ctx.quick},
                             {"points": points}, wall_time_s=time.perf_counter() - started)
        ctx.record(record)
        records.append(record)
        panels[name] = points
    print(f"\nrule-id-feedforward{' (quick: smoke numbers, not results)' if ctx.quick else ''}: balanced accuracy "
          f"of 'RL iff c_RL > c_SL' ({replicates} SL + {replicates} RL experiments per point)")
    for name, points in panels.items():
        cells = "  ".join(f"{p['value']}:{p['accuracy']:.3f}" for p in points)
        print(f"{name:<34} {cells}")
    _feedforward_figure(ctx, panels)
    return records


def _feedforward_figure(ctx: ExperimentContext, panels: dict[str, list[dict[str, Any]]]) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(16, 7))
    for ax, (name, points) in zip(axes.ravel(), panels.items(), strict=False):
        x = [p["value"] for p in points]
        ax.plot(x, [p["accuracy"] for p in points], "o-k", label="balanced")
        ax.plot(x, [p["accuracy_sl"] for p in points], "s--", color="tomato", label="SL runs called SL")
        ax.plot(x, [p["accuracy_rl"] for p in points], "^--", color="darkblue", label="RL runs called RL")
        ax.axhline(0.95, color="grey", lw=0.8, ls=":")
        ax.axhline(0.5, color="grey", lw=0.8)
        ax.set_title(name.replace("_", " "), fontsize=9)
        ax.set_xlabel(points[0]["field"])
        ax.set_ylim(0, 1.02)
        if points[0]["field"] in ("observed_trials", "learning_trials", "noise_std", "anisotropy"):
            ax.set_xscale("log")
    axes[0, 0].set_ylabel("identification accuracy")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Feedforward SL vs RL: 'RL iff cos(dh, Sigma-hat D^T e) > cos(dh, M e)'")
    ctx.figure(fig, "rule_id_feedforward")


# ---------------------------------------------------------------------------------------------
# BMI recurrent network
# ---------------------------------------------------------------------------------------------
def _bmi_plan(ctx: ExperimentContext) -> tuple[bmi_lib.BMISetting, list[int], dict[str, list[float]]]:
    if ctx.quick:
        setting = bmi_lib.BMISetting(pretrain_trials=200, train_trials=60, window=30)
        return setting, [0, 22], {"sl": [0.4, 1.0], "rl": [0.2, 1.0]}
    return bmi_lib.BMISetting(), BMI_SEEDS, {rule: PAPER_BMI[rule]["overlaps"] for rule in ("sl", "rl")}


@register_experiment("rule-id-bmi",
                     "Portes et al. 2022 BMI RNN: center-out reach, decoder switch, RFLO with M vs REINFORCE, "
                     "flow-field change vs each decoder's prediction")
def run_bmi(ctx: ExperimentContext) -> list[dict[str, Any]]:
    """Pretrain once, then for each rule every (seed, overlap) network at once; sign-flip tests."""
    setting, seeds, overlaps = _bmi_plan(ctx)
    started = time.perf_counter()
    net = bmi_lib.pretrain(setting)
    pretrain_s = time.perf_counter() - started
    records, results = [], {}
    test_rng = np.random.default_rng([ctx.seed, 2022])
    for rule in ("sl", "rl"):
        started = time.perf_counter()
        res = bmi_lib.retrain_and_score(setting, net, rule, seeds, overlaps[rule], ctx.seed)
        elapsed = time.perf_counter() - started
        predicted, other = ("corr_m", "corr_w_bmi1") if rule == "sl" else ("corr_w_bmi1", "corr_m")
        below_one = np.asarray(overlaps[rule]) < 0.999
        diff = (res[predicted] - res[other])[:, below_one]
        final = {
            "overlaps": overlaps[rule], "seeds": seeds,
            **{f"{k}_mean": res[k].mean(0).tolist() for k in ("corr_w_bmi0", "corr_w_bmi1", "corr_m")},
            **{f"{k}_sd": res[k].std(0).tolist() for k in ("corr_w_bmi0", "corr_w_bmi1", "corr_m")},
            **{f"{k}_per_seed": res[k].tolist() for k in ("corr_w_bmi0", "corr_w_bmi1", "corr_m")},
            "loss_before_mean": float(res["loss_before"].mean()), "loss_after_mean": float(res["loss_after"].mean()),
            "pretrain_loss_first_100": float(net["loss"][:100].mean()),
            "pretrain_loss_last_100": float(net["loss"][-100:].mean()),
            "cos_m_w_bmi1": res["cos_m_w_bmi1"].mean(0).tolist(),
            "cos_w_bmi0_w_bmi1": float(res["cos_w_bmi0_w_bmi1"].mean()),
            "rule_prediction": predicted, "other_prediction": other,
            "pairs_tested": int(diff.size), "mean_difference": float(diff.mean()) if diff.size else math.nan,
            "sign_flip_p": bmi_lib.sign_flip_test(diff, test_rng) if diff.size else math.nan,
            "paper": PAPER_BMI[rule], "pretrain_wall_time_s": round(pretrain_s, 2),
        }
        record = make_record("reproduce", f"rule-id-bmi/{rule}",
                             {"setting": dataclasses.asdict(setting), "rule": rule, "seeds": seeds,
                              "overlaps": overlaps[rule], "seed": ctx.seed, "quick": ctx.quick}, final,
                             wall_time_s=elapsed)
        ctx.record(record)
        records.append(record)
        results[rule] = final
        ctx.out_dir.mkdir(parents=True, exist_ok=True)
        np.savez(ctx.out_dir / f"bmi_{rule}_correlations.npz",
                 **{k: v for k, v in res.items() if isinstance(v, np.ndarray)})
    print(f"\nrule-id-bmi{' (quick: smoke numbers, not results)' if ctx.quick else ''}: mean held-out cosine of "
          "the observed flow-field change with each prediction (mean over seeds)")
    for rule, final in results.items():
        print(f"{rule.upper()}-trained; overlap: " + "  ".join(f"{o:.1f}" for o in final["overlaps"]))
        for key in ("corr_m", "corr_w_bmi1", "corr_w_bmi0"):
            print(f"  {key:<12} " + "  ".join(f"{v:+.3f}" for v in final[f"{key}_mean"]))
        paper = final["paper"]
        for key in ("corr_m", "corr_w_bmi1"):
            print(f"  paper {key:<6} " + "  ".join(f"{o}:{v:+.3f}" for o, v in zip(paper["overlaps"], paper[key],
                                                                                   strict=True)))
        print(f"  {final['rule_prediction']} - {final['other_prediction']} over {final['pairs_tested']} "
              f"(seed, overlap<1) pairs: mean {final['mean_difference']:+.3f}, "
              f"sign-flip p = {final['sign_flip_p']:.2g}")
    _bmi_figure(ctx, results)
    return records


def _bmi_figure(ctx: ExperimentContext, results: dict[str, dict[str, Any]]) -> None:
    import matplotlib.pyplot as plt

    colors = {"corr_w_bmi0": "teal", "corr_w_bmi1": "darkblue", "corr_m": "tomato"}
    labels = {"corr_w_bmi0": "W_bmi0 (old decoder)", "corr_w_bmi1": "W_bmi1 (RL prediction)",
              "corr_m": "M (SL prediction)"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (rule, final) in zip(axes, results.items(), strict=True):
        x = np.asarray(final["overlaps"])
        for key, color in colors.items():
            per_seed = np.asarray(final[f"{key}_per_seed"])
            for row in per_seed:  # the distribution over seeds
                ax.scatter(x + {"corr_w_bmi0": -0.012, "corr_w_bmi1": 0.0, "corr_m": 0.012}[key], row,
                           s=10, color=color, alpha=0.5)
            ax.plot(x, per_seed.mean(0), "-", color=color, label=labels[key])
            paper = final["paper"]
            if key in paper:
                ax.plot(paper["overlaps"], paper[key], "x:", color=color, alpha=0.8)
        ax.set_title(f"trained with {'SL (RFLO with M)' if rule == 'sl' else 'RL (REINFORCE)'}; "
                     f"p = {final['sign_flip_p']:.2g}", fontsize=9)
        ax.set_xlabel("sim(M, W_bmi1^T)" if rule == "sl" else "sim(M-hat, W_bmi1)")
        ax.set_ylabel("Corr(dF_obs, dF_pred)")
    axes[0].legend(fontsize=7, title="dots: seeds; x: authors' figure data", title_fontsize=7)
    ctx.figure(fig, "rule_id_bmi")


# ---------------------------------------------------------------------------------------------
# library rules
# ---------------------------------------------------------------------------------------------
LIBRARY_ARCHS = {"train": {"hidden": (32,)}, "held_out": {"hidden": (48, 24)}}


def library_rules(model_builder: Any) -> tuple[list[str], dict[str, str]]:
    """Rules of the registry whose own check accepts the model(s), and why the others are left out."""
    from creditlab.rules import RULES

    accepted, refused = [], {}
    for name in RULES.names():
        try:
            for arch in LIBRARY_ARCHS.values():
                RULES.get(name).check_model(model_builder(arch))
        except IncompatibleModelError as error:
            refused[name] = str(error)
        else:
            accepted.append(name)
    return accepted, refused


def _fit_with_recorder(rule_obj: Any, data: Any, config: Any, recorder: lib.ObservableRecorder) -> dict[str, Any]:
    """Train with the recorder as a trainer step hook (``fit(hooks=...)``, PROTOCOL_SPEC.md)."""
    from creditlab.train import fit

    recorder.record(rule_obj)  # the trajectory starts at the initialization
    if "hooks" in inspect.signature(fit).parameters:
        return fit(rule_obj, data, config, hooks=[recorder])
    return _fit_stepwise(rule_obj, data, config, recorder)  # until the protocol's hooks are merged


def _fit_stepwise(rule_obj: Any, data: Any, config: Any, recorder: lib.ObservableRecorder) -> dict[str, Any]:
    """Stand-in for ``fit(hooks=...)`` before the protocol lands: the trainer's batches, optimizer and
    step order (rule.step -> optimizer.step), with ``on_step_end`` called after every step."""
    from types import SimpleNamespace

    from creditlab.data import batch_indices
    from creditlab.train import _epoch_generator, evaluate, make_optimizer

    optimizer = make_optimizer(config, [p for p in rule_obj.model.parameters() if p.requires_grad])
    train_x, train_y = data.train_x[:config.train_limit], data.train_y[:config.train_limit]
    step_count = 0
    for epoch in range(config.epochs):
        for index in batch_indices(len(train_x), config.batch_size, _epoch_generator(config.seed, epoch, 0), "cpu"):
            out = rule_obj.step(train_x[index], train_y[index])
            optimizer.step()
            recorder.on_step_end(rule_obj, SimpleNamespace(epoch=epoch, step=step_count, loss=out.loss))
            step_count += 1
    test = evaluate(rule_obj, data.test_x[:config.test_limit], data.test_y[:config.test_limit])
    return {"test_accuracy": test["accuracy"], "epochs": config.epochs}


@register_experiment("rule-id-library",
                     "Beyond the paper: which creditlab rule trained a small MLP, from weight/update/activation "
                     "statistics recorded during training (held-out seeds and architecture)")
def run_library(ctx: ExperimentContext) -> list[dict[str, Any]]:
    """Train every compatible rule over seeds; classify trajectories; held-out accuracy and confusion."""
    from creditlab.data import load_dataset
    from creditlab.models import build_model
    from creditlab.train import TrainConfig, prepare

    torch.set_num_threads(1)
    n_train_seeds, n_test_seeds, n_arch_seeds = (2, 1, 1) if ctx.quick else (8, 4, 4)
    train_limit = 256 if ctx.quick else 2048
    epochs, every, timepoints = (1, 1, 4) if ctx.quick else (2, 4, 8)
    rules, refused = library_rules(lambda arch: build_model("mlp", (1, 28, 28), 10, **arch))
    data = load_dataset("mnist", ctx.data_dir, "cpu", 0.0, 0, "standard")
    probe = data.train_x[-256:]  # outside every run's training subset
    plan = [("train", s) for s in range(n_train_seeds)] + [("test", 100 + s) for s in range(n_test_seeds)] + \
        [("held_out", 200 + s) for s in range(n_arch_seeds)]
    features: dict[str, list[np.ndarray]] = {"train": [], "test": [], "held_out": []}
    labels: dict[str, list[int]] = {"train": [], "test": [], "held_out": []}
    runs = []
    started_all = time.perf_counter()
    for label, rule in enumerate(rules):
        for split, seed in plan:
            arch = LIBRARY_ARCHS["held_out" if split == "held_out" else "train"]
            config = TrainConfig(epochs=epochs, batch_size=64, lr=1e-3, optimizer="adam", seed=ctx.seed + seed,
                                 train_limit=train_limit, test_limit=1000, progress=False)
            rule_options = {"seed": ctx.seed + seed} if "seed" in inspect.signature(
                __import__("creditlab.rules", fromlist=["RULES"]).RULES.get(rule).__init__).parameters else {}
            learner = prepare(rule, "mlp", "mnist", config, rule_options, dict(arch))
            recorder = lib.ObservableRecorder(probe, every=every)
            started = time.perf_counter()
            summary = _fit_with_recorder(learner, data, config, recorder)
            run_dir = ctx.out_dir / "library_runs" / f"{rule}-{split}-seed{seed}"
            path = recorder.save(run_dir)
            values = lib.load_observables(path)["values"]
            features[split].append(lib.trajectory_features(values, timepoints))
            labels[split].append(label)
            runs.append({"rule": rule, "split": split, "seed": seed, "hidden": list(arch["hidden"]),
                         "test_accuracy": summary.get("test_accuracy"), "observables": str(path),
                         "wall_time_s": round(time.perf_counter() - started, 2)})
    classifier = lib.LogisticClassifier().fit(np.stack(features["train"]), np.asarray(labels["train"]), len(rules))
    final: dict[str, Any] = {"rules": rules, "refused": refused, "chance": 1 / len(rules), "runs": runs}
    for split in ("test", "held_out"):
        predicted = classifier.predict(np.stack(features[split]))
        truth = np.asarray(labels[split])
        final[f"{split}_accuracy"] = float((predicted == truth).mean())
        final[f"{split}_confusion"] = lib.confusion_matrix(truth, predicted, len(rules)).tolist()
    final["train_accuracy"] = float((classifier.predict(np.stack(features["train"])) ==
                                     np.asarray(labels["train"])).mean())
    config_rec = {"archs": {k: list(v["hidden"]) for k, v in LIBRARY_ARCHS.items()}, "train_limit": train_limit,
                  "epochs": epochs, "every": every, "timepoints": timepoints, "seeds": plan, "seed": ctx.seed,
                  "quick": ctx.quick, "optimizer": "adam", "lr": 1e-3, "batch_size": 64}
    record = make_record("reproduce", "rule-id-library", config_rec, final,
                         wall_time_s=time.perf_counter() - started_all)
    ctx.record(record)
    print(f"\nrule-id-library{' (quick: smoke numbers, not results)' if ctx.quick else ''}: {len(rules)} rules "
          f"({', '.join(rules)}), chance {1 / len(rules):.3f}")
    if refused:
        print("left out (their own model check refuses the MLPs): " + ", ".join(refused))
    print(f"accuracy: train seeds {final['train_accuracy']:.3f}, held-out seeds {final['test_accuracy']:.3f}, "
          f"held-out architecture {final['held_out_accuracy']:.3f}")
    for split in ("test", "held_out"):
        print(f"confusion ({split}; rows: true rule, columns: called):")
        for name, row in zip(rules, final[f"{split}_confusion"], strict=True):
            print(f"  {name:<18} " + " ".join(f"{v:3d}" for v in row))
    _library_figure(ctx, final)
    return [record]


def _library_figure(ctx: ExperimentContext, final: dict[str, Any]) -> None:
    import matplotlib.pyplot as plt

    rules = final["rules"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    for ax, split in zip(axes, ("test", "held_out"), strict=True):
        counts = np.asarray(final[f"{split}_confusion"])
        ax.imshow(counts, cmap="Blues")
        for i in range(len(rules)):
            for j in range(len(rules)):
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(rules)), rules, rotation=60, fontsize=8)
        ax.set_yticks(range(len(rules)), rules, fontsize=8)
        ax.set_title(f"{split.replace('_', '-')} {'seeds' if split == 'test' else 'architecture'}: "
                     f"accuracy {final[f'{split}_accuracy']:.2f} (chance {final['chance']:.2f})", fontsize=9)
        ax.set_xlabel("called")
        ax.set_ylabel("true rule")
    ctx.figure(fig, "rule_id_library_confusion")
