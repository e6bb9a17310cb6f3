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
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from creditlab.analysis.rule_id import bmi as bmi_lib
from creditlab.analysis.rule_id import feedforward as ff
from creditlab.analysis.rule_id import library as lib
from creditlab.errors import CreditlabError, IncompatibleModelError
from creditlab.experiments import ExperimentContext, ExperimentOption, register_experiment, register_headline
from creditlab.papers import portes2022
from creditlab.report.headline import Headline, least_sure
from creditlab.report.render import Block, Table
from creditlab.results import make_record
from creditlab.seeding import numpy_generator


def _fmt(value: Any, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _int_option(ctx: ExperimentContext, key: str, quick: int, full: int, minimum: int = 1) -> int:
    """``ctx.options[key]`` (or the quick/full default) as an int >= minimum, else a CreditlabError."""
    value = ctx.options.get(key)
    value = (quick if ctx.quick else full) if value is None else value
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise CreditlabError(f"--opt {key}: must be an integer >= {minimum}, got {value!r}")
    return value


def _list_option(ctx: ExperimentContext, key: str, default: list[Any], valid: Callable[[Any], bool],
                 what: str) -> list[Any]:
    value = ctx.options.get(key)
    if value is None:
        return list(default)
    value = list(value) if isinstance(value, list | tuple) else [value]
    bad = [v for v in value if not valid(v)]
    if not value or bad:
        raise CreditlabError(f"--opt {key}: {what}; got {value!r}")
    return value


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


FF_OPTIONS = {
    "replicates": ExperimentOption(None, "SL and as many RL experiments per point [default: 200; quick: 12]",
                                   type=int, minimum=1),
    "sweeps": ExperimentOption(None, "sweeps to run [default: all]", type=list, choices=tuple(FF_SWEEPS), single=True),
}


def feedforward_summary(records: list[dict[str, Any]]) -> list[Table]:
    """One row per sweep: the balanced accuracy at each swept value, and where it first reaches 95%."""
    rows = []
    for record in sorted(records, key=lambda r: list(FF_SWEEPS).index(r["name"].split("/", 1)[1])
                         if r["name"].split("/", 1)[1] in FF_SWEEPS else 99):
        points = record["final"]["points"]
        reached = [p["value"] for p in points if p["accuracy"] >= 0.95]
        rows.append([record["name"].split("/", 1)[1], points[0]["field"],
                     ", ".join(f"{p['value']}: {p['accuracy']:.3f}" for p in points),
                     ", ".join(map(str, reached)) or "none", str(record["config"]["replicates"])])
    base = records[0]["config"]["base"] if records else {}
    notes = ["Balanced accuracy of 'RL iff c_RL > c_SL' (c_X: mean cosine of the observed activity change "
             "with rule X's prediction), SL and RL experiments in equal numbers per point.",
             "Base setting: " + ", ".join(f"{k} {v}" for k, v in base.items()) + ".",
             "The paper reports no accuracy for this model (its equations 11 and 13 could not be read; "
             "portes2022 status for the feedforward model: not available)."]
    return [Table(["sweep", "swept", "value: accuracy", "values with >= 0.95", "replicates"], rows, notes,
                  title="Feedforward SL vs RL: identification accuracy")]


@register_experiment("rule-id-feedforward",
                     "Portes et al. 2022 feedforward model: SL (credit matrix M) vs RL (node perturbation) "
                     "identified from activity changes; accuracy vs trials, noise, overlap, anisotropy",
                     summary=feedforward_summary, options=FF_OPTIONS)
def run_feedforward(ctx: ExperimentContext) -> list[dict[str, Any]]:
    """Every sweep of FF_SWEEPS with ``replicates`` SL and as many RL experiments per point."""
    replicates = _int_option(ctx, "replicates", 12, 200)
    sweeps = _list_option(ctx, "sweeps", list(FF_SWEEPS), lambda v: v in FF_SWEEPS,
                          f"valid sweeps: {', '.join(FF_SWEEPS)}")
    base = ff.FeedforwardSetting()
    records = []
    panels: dict[str, list[dict[str, Any]]] = {}
    for name in sweeps:
        changes, field, values = FF_SWEEPS[name]
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
    from matplotlib.ticker import NullFormatter

    columns = 4
    rows = max(1, math.ceil(len(panels) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(16, 3.9 * rows), layout="constrained", squeeze=False)
    for ax in axes.ravel()[len(panels):]:
        ax.set_visible(False)
    for ax, (name, points) in zip(axes.ravel(), panels.items(), strict=False):
        x = [p["value"] for p in points]
        ax.plot(x, [p["accuracy"] for p in points], "o-k", label="balanced")
        ax.plot(x, [p["accuracy_sl"] for p in points], "s--", color="tomato", label="SL runs called SL")
        ax.plot(x, [p["accuracy_rl"] for p in points], "^--", color="darkblue", label="RL runs called RL")
        ax.axhline(0.95, color="grey", lw=0.8, ls=":")
        ax.axhline(0.5, color="grey", lw=0.8)
        ax.set_title(name.replace("_", " "), fontsize=9)
        ax.set_xlabel(points[0]["field"].replace("_", " "), fontsize=9)
        ax.set_ylim(0, 1.02)
        if points[0]["field"] in ("observed_trials", "learning_trials", "noise_std", "anisotropy"):
            ax.set_xscale("log")
            ax.set_xticks(x, [f"{v:g}" for v in x], fontsize=8)  # the swept values, no crowded minor labels
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.tick_params(labelsize=8)
    for row in axes:
        row[0].set_ylabel("identification accuracy", fontsize=9)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Feedforward SL vs RL: 'RL iff cos(dh, Sigma-hat D^T e) > cos(dh, M e)'")
    ctx.figure(fig, "rule_id_feedforward")


# ---------------------------------------------------------------------------------------------
# BMI recurrent network
# ---------------------------------------------------------------------------------------------
#: the full run's seeds: the authors' four, then twelve more (the independent unit of the test)
BMI_SEEDS = [*portes2022.SEEDS, *range(1, 13)]
_SETTING = bmi_lib.BMISetting()
#: the BMI settings ``--opt`` may change, named as in the authors' RNNparams / sweep notebooks
BMI_SETTING_OPTIONS = ("sig_rec", "n_rec", "eta_rec", "g_rec", "tau_rec", "train_duration", "pretrain_duration",
                       "test_duration", "network_seed", "construction")
BMI_OPTIONS = {
    "rule": ExperimentOption("both", "learning rule: sl (RFLO with M), rl (REINFORCE) or both",
                             choices=("sl", "rl", "both")),
    "seeds": ExperimentOption(BMI_SEEDS, "seeds (each draws W_bmi1 and M; the test's independent unit) "
                                         "[default: the authors' 0, 22, 33, 47 and 1..12; quick: 0, 22]",
                              item=int, minimum=0, single=True),
    "m_overlaps": ExperimentOption(list(portes2022.OVERLAPS["sl"]),
                                   "SL sweep: sim(M, W_bmi1^T) [default: 0.4..1.0; quick: 0.4, 1.0]",
                                   item=float, minimum=0, maximum=1, single=True),
    "decoder_overlap": ExperimentOption(portes2022.FIXED_OVERLAP["sl"], "SL: the fixed sim(W_bmi0, W_bmi1)",
                                        minimum=0, maximum=1),
    "decoder_overlaps": ExperimentOption(list(portes2022.OVERLAPS["rl"]),
                                         "RL sweep: sim(W_bmi0, W_bmi1) [default: 0.2..1.0; quick: 0.2, 1.0]",
                                         item=float, minimum=0, maximum=1, single=True),
    "m_overlap": ExperimentOption(portes2022.FIXED_OVERLAP["rl"], "RL: the fixed sim(M, W_bmi1^T)",
                                  minimum=0, maximum=1),
    "sig_rec": ExperimentOption(_SETTING.sig_rec, "recurrent noise variance per unit", above=0),
    "n_rec": ExperimentOption(_SETTING.n_rec, "recurrent units", minimum=3),
    "eta_rec": ExperimentOption(_SETTING.eta_rec, "learning rate of W_rec (pretraining and retraining)",
                                above=0),
    "g_rec": ExperimentOption(_SETTING.g_rec, "gain of the initial W_rec (g_rec randn / sqrt(n_rec))",
                              minimum=0),
    "tau_rec": ExperimentOption(_SETTING.tau_rec, "time constant of the units (steps)", minimum=1),
    "pretrain_duration": ExperimentOption(_SETTING.pretrain_duration, "pretraining trials [quick: 200]",
                                          minimum=1),
    "train_duration": ExperimentOption(_SETTING.train_duration, "retraining trials after the switch [quick: 60]",
                                       minimum=2),
    "test_duration": ExperimentOption(_SETTING.test_duration, "trials recorded before and after [quick: 30]",
                                      minimum=2),
    "network_seed": ExperimentOption(_SETTING.network_seed, "the network's RandomState seed (the authors': 72)",
                                     minimum=0),
    "construction": ExperimentOption(_SETTING.construction, "how W_bmi1 and M are drawn: authors (re-drawn "
                                                            "entries, |cosine| within 0.01) or exact",
                                     choices=("authors", "exact")),
}
_QUICK = {"seeds": [0, 22], "m_overlaps": [0.4, 1.0], "decoder_overlaps": [0.2, 1.0], "pretrain_duration": 200,
          "train_duration": 60, "test_duration": 30}
_INT_OPTIONS = {"n_rec": 3, "train_duration": 2, "pretrain_duration": 1, "test_duration": 2, "network_seed": 0}
#: number options: (bound, strict)
_FLOAT_OPTIONS = {"sig_rec": (0.0, True), "eta_rec": (0.0, True), "g_rec": (0.0, False), "tau_rec": (1.0, False)}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _bmi_option(ctx: ExperimentContext, key: str) -> Any:
    """``--opt key`` as given, or its default (the quick default in ``--quick`` when the key was not changed)."""
    value = ctx.options.get(key, BMI_OPTIONS[key].default)
    return _QUICK[key] if ctx.quick and key in _QUICK and value == BMI_OPTIONS[key].default else value


def _checked_list(key: str, value: Any, valid: Callable[[Any], bool], what: str) -> list[Any]:
    """``value`` as a non-empty list whose every item is ``valid``, else a CreditlabError naming ``--opt key``."""
    value = list(value) if isinstance(value, list | tuple) else [value]
    bad = [v for v in value if not valid(v)]
    if not value or bad:
        raise CreditlabError(f"--opt {key}: {what}; got {value!r}")
    return value


def _bmi_plan(ctx: ExperimentContext) -> tuple[bmi_lib.BMISetting, list[int], dict[str, list[tuple[float, float]]]]:
    """The setting, the seeds and each rule's (decoder overlap, M overlap) cells, every option checked
    (and every W_bmi1 / M drawn once) before any simulation starts."""
    changes: dict[str, Any] = {}
    for key in BMI_SETTING_OPTIONS:
        value = _bmi_option(ctx, key)
        if key in _INT_OPTIONS and (isinstance(value, bool) or not isinstance(value, int)
                                    or value < _INT_OPTIONS[key]):
            raise CreditlabError(f"--opt {key}: must be an integer >= {_INT_OPTIONS[key]}, got {value!r}")
        if key in _FLOAT_OPTIONS:
            bound, strict = _FLOAT_OPTIONS[key]
            if not _is_number(value) or value < bound or (strict and value == bound):
                raise CreditlabError(f"--opt {key}: must be a number {'>' if strict else '>='} {bound:g}, "
                                     f"got {value!r}")
        if key == "construction" and value not in bmi_lib.CONSTRUCTIONS:
            raise CreditlabError(f"--opt construction: {value!r} is not one of {', '.join(bmi_lib.CONSTRUCTIONS)}")
        changes[key] = float(value) if key in _FLOAT_OPTIONS else value
    setting = dataclasses.replace(_SETTING, **changes)
    setting.validate()
    rule = _bmi_option(ctx, "rule")
    if rule not in ("sl", "rl", "both"):
        raise CreditlabError(f"--opt rule: {rule!r} is not one of sl, rl, both")
    seeds = _checked_list("seeds", _bmi_option(ctx, "seeds"),
                         lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "seeds are integers >= 0")
    if len(set(seeds)) != len(seeds):
        raise CreditlabError(f"--opt seeds: each seed once (they are the test's independent units), got {seeds!r}")
    low = 0.0 if setting.construction == "authors" else -1.0
    in_range = lambda v: _is_number(v) and low <= v <= 1  # noqa: E731
    what = f"overlaps are flat cosines in [{low:g}, 1] for the {setting.construction!r} construction"
    sweeps = {key: [float(v) for v in _checked_list(key, _bmi_option(ctx, key), in_range, what)]
              for key in ("m_overlaps", "decoder_overlaps")}
    fixed = {}
    for key in ("decoder_overlap", "m_overlap"):
        value = _bmi_option(ctx, key)
        if not in_range(value):
            raise CreditlabError(f"--opt {key}: {what}; got {value!r}")
        fixed[key] = float(value)
    cells = {"sl": [(fixed["decoder_overlap"], m) for m in sweeps["m_overlaps"]],
             "rl": [(d, fixed["m_overlap"]) for d in sweeps["decoder_overlaps"]]}
    cells = {r: c for r, c in cells.items() if rule in (r, "both")}
    w_bmi0 = bmi_lib.initial_weights(setting)[0]["w_out"]  # the decoder is never learned: draw everything now
    for rule_cells in cells.values():
        for seed in seeds:
            for cell in rule_cells:
                try:
                    bmi_lib.draw_decoder_and_credit(setting, w_bmi0, seed, *cell)
                except CreditlabError as error:
                    raise CreditlabError(f"--opt seeds/overlaps: seed {seed}, (decoder, M) overlaps {cell}: "
                                         f"{error}") from error
    return setting, seeds, cells


def _like_for_like(record: dict[str, Any]) -> bool:
    """Whether a record ran the authors' own protocol for its figure (their settings, seeds among ours,
    their construction and network seed, their swept and fixed overlaps)."""
    config, rule = record["config"], record["config"]["rule"]
    setting = config["setting"]
    paper = portes2022.SETTINGS.get(rule)
    if paper is None or setting.get("construction") != "authors" or setting.get("network_seed") != paper["rnn_seed"]:
        return False
    same = all(setting.get(k) == v for k, v in paper.items() if k != "rnn_seed")
    final = record["final"]
    return (same and set(portes2022.SEEDS) <= set(final["seeds"]) and final["fixed_overlap"] ==
            portes2022.FIXED_OVERLAP[rule] and set(portes2022.OVERLAPS[rule]) <= set(final["overlaps"]))


def _paper_cell(rule: str, key: str, overlap: float) -> str:
    paper = portes2022.paper_correlation(rule, key, overlap)
    return "–" if paper is None else f"{paper.value:+.3f} ({paper.sd:.3f})"


def bmi_summary(records: list[dict[str, Any]]) -> list[Block]:
    """Per trained-with rule: our mean (sd) correlation with each prediction on the authors' seeds and
    scored trials beside the authors' figure data, the same over all our seeds on held-out trials, and
    the seed-level significance tests."""
    blocks: list[Block] = []
    tests = []
    for record in sorted(records, key=lambda r: r["name"]):
        final, rule = record["final"], record["config"]["rule"]
        names = {"corr_m": "M", "corr_w_bmi1": "W_bmi1", "corr_w_bmi0": "W_bmi0"}
        rows = []
        for i, overlap in enumerate(final["overlaps"]):
            row = [f"{overlap:g}"]
            for key in bmi_lib.PREDICTIONS:
                ours = final["authors_seeds"][key]
                row += [f"{ours['mean'][i]:+.3f} ({ours['sd'][i]:.3f})" if ours else "–",
                        _paper_cell(rule, key, overlap)]
            for key in bmi_lib.PREDICTIONS:
                row.append(f"{final[f'{key}_mean'][i]:+.3f} ({final[f'{key}_sd'][i]:.3f})")
            rows.append(row)
        columns = ["overlap"]
        for key in bmi_lib.PREDICTIONS:
            columns += [f"{names[key]} (authors' seeds, split)", f"{names[key]} (paper)"]
        columns += [f"{names[key]} ({len(final['seeds'])} seeds, held out)" for key in bmi_lib.PREDICTIONS]
        match = _paper_match(final, rule) or {}
        notes = [f"Corr(dF_obs, dF_pred): mean (sd over seeds); x-axis {portes2022.SWEPT[rule]} at "
                 f"{'sim(W_bmi0, W_bmi1)' if rule == 'sl' else 'sim(M, W_bmi1^T)'} = {final['fixed_overlap']:g}. "
                 "W_bmi0: the old decoder" + (" (M-hat = W_bmi0^T: the authors' SL(M-hat) curve)" if rule == "rl"
                                              else "") + ";"
                 " W_bmi1: the new decoder (the RL prediction); M: the credit matrix (the SL prediction).",
                 "Columns 2-7: the authors' seeds scored on the authors' trials (arange(n)[~idx_train]), beside "
                 f"their figure data ({portes2022.SOURCES[rule]}; {portes2022.NOTE}); last three: every seed, "
                 "scored on the true complement of the fitted trials.",
                 f"Like for like (the authors' settings, construction and network seed): "
                 f"{'yes' if _like_for_like(record) else 'no'}. "
                 + (f"Cells within one sd of the authors' mean: {match['within_one_sd']} of {match['cells']}; "
                    f"largest per-seed difference {match['max_abs_per_seed']:.1e}." if match else ""),
                 f"W_bmi1 norm / W_bmi0 norm {final['norm_w_bmi1_mean']:.3f}; M norm / W_bmi0 norm "
                 f"{final['norm_m_mean']:.3f} (mean over cells). Setting: "
                 + ", ".join(f"{k} {record['config']['setting'][k]}" for k in BMI_SETTING_OPTIONS) + "."]
        blocks.append(Table(columns, rows, notes,
                            title=f"BMI RNN trained with {'SL (RFLO with M)' if rule == 'sl' else 'RL (REINFORCE)'}"))
        tests.append([rule.upper(), f"{final['rule_prediction']} - {final['other_prediction']}",
                      str(len(final["seed_differences"])), f"{final['mean_difference']:+.3f}",
                      str(final["seeds_positive"]), f"{final['sign_flip_p']:.2g}", f"{final['smallest_p']:.2g}"])
    sig = portes2022.SIGNIFICANCE
    blocks.append(Table(["trained with", "difference", "seeds", "mean", "seeds > 0", "sign-flip p", "smallest p"],
                        tests,
                        ["The independent unit is the seed: each seed draws W_bmi1 and M, and all its overlaps share "
                         "them (and every seed shares the network and the noise, as in the authors' code), so one "
                         "difference per seed (the mean over its overlaps below 1) enters a two-sided paired "
                         "sign-flip test, exact up to 16 seeds (20000 random flips above). 'smallest p': the "
                         "smallest p that number of seeds can give.",
                         f"Paper's significance tests: {sig.status} ({sig.note})."],
                        title="BMI RNN: is the rule's own prediction the better one? (one unit per seed)"))
    return blocks


def _bmi_final(setting: bmi_lib.BMISetting, net: dict[str, Any], rule: str, seeds: list[int],
               cells: list[tuple[float, float]], res: dict[str, Any], test_rng: np.random.Generator) -> dict[str, Any]:
    """The record's ``final``: per prediction mean / sd / per seed (held out, and on the authors' seeds and
    trials), the seed-level test and, where the run is like for like, the match with the authors' data."""
    swept_index = 1 if rule == "sl" else 0
    overlaps = [cell[swept_index] for cell in cells]
    predicted, other = ("corr_m", "corr_w_bmi1") if rule == "sl" else ("corr_w_bmi1", "corr_w_bmi0")
    differences = bmi_lib.per_seed_differences(res[predicted] - res[other], overlaps)
    order = [seeds.index(seed) for seed in portes2022.SEEDS if seed in seeds]  # the authors' seeds, their order
    authors_seeds = {}
    for key in bmi_lib.PREDICTIONS:
        values = res[key + bmi_lib.AUTHORS_SPLIT][order] if order else None
        authors_seeds[key] = ({"mean": values.mean(0).tolist(), "sd": values.std(0).tolist(),
                               "per_seed": values.tolist(), "seeds": [seeds[i] for i in order]}
                              if values is not None else None)
    final: dict[str, Any] = {
        "overlaps": overlaps, "fixed_overlap": cells[0][1 - swept_index], "seeds": seeds,
        "swept": portes2022.SWEPT[rule],
        **{f"{k}_mean": res[k].mean(0).tolist() for k in bmi_lib.PREDICTIONS},
        **{f"{k}_sd": res[k].std(0).tolist() for k in bmi_lib.PREDICTIONS},
        **{f"{k}_per_seed": res[k].tolist() for k in bmi_lib.PREDICTIONS},
        "authors_seeds": authors_seeds,
        "loss_before_mean": float(res["loss_before"].mean()), "loss_after_mean": float(res["loss_after"].mean()),
        "pretrain_loss_first_100": float(net["loss"][:100].mean()),
        "pretrain_loss_last_100": float(net["loss"][-100:].mean()),
        "cos_m_w_bmi1": res["cos_m_w_bmi1"].mean(0).tolist(),
        "cos_w_bmi0_w_bmi1": res["cos_w_bmi0_w_bmi1"].mean(0).tolist(),
        "norm_w_bmi1_mean": float(res["norm_w_bmi1"].mean()), "norm_m_mean": float(res["norm_m"].mean()),
        "rule_prediction": predicted, "other_prediction": other,
        "seed_differences": differences.tolist(), "mean_difference": float(differences.mean()),
        "seeds_positive": int((differences > 0).sum()),
        "sign_flip_p": bmi_lib.sign_flip_test(differences, test_rng),
        "smallest_p": 2.0 / 2 ** len(differences) if len(differences) <= 16 else 1 / 20001,
    }
    return final


def _paper_match(final: dict[str, Any], rule: str) -> dict[str, Any] | None:
    """On the authors' seeds and trials: cells within one sd of their mean, and the largest per-seed gap
    (computed when the report is made, from the record's values and :mod:`creditlab.papers.portes2022`)."""
    if any(final["authors_seeds"][k] is None or final["authors_seeds"][k]["seeds"] != list(portes2022.SEEDS)
           for k in bmi_lib.PREDICTIONS):
        return None
    within, cells, gap = 0, 0, 0.0
    for key in bmi_lib.PREDICTIONS:
        ours = final["authors_seeds"][key]
        paper_rows = portes2022.paper_per_seed(rule, key)
        for j, overlap in enumerate(portes2022.OVERLAPS[rule]):
            if overlap not in final["overlaps"]:
                continue
            i = final["overlaps"].index(overlap)
            paper = portes2022.paper_correlation(rule, key, overlap)
            cells += 1
            within += int(abs(ours["mean"][i] - paper.value) <= paper.sd)
            gap = max(gap, float(np.abs(np.asarray(ours["per_seed"])[:, i] - paper_rows[:, j]).max()))
    return {"within_one_sd": within, "cells": cells, "max_abs_per_seed": gap} if cells else None


@register_experiment("rule-id-bmi",
                     "Portes et al. 2022 BMI RNN: center-out reach, decoder switch, RFLO with M vs REINFORCE, "
                     "flow-field change vs each decoder's prediction", summary=bmi_summary, options=BMI_OPTIONS)
def run_bmi(ctx: ExperimentContext) -> list[dict[str, Any]]:
    """Pretrain once, then for each rule every (seed, overlap) network; seed-level sign-flip tests."""
    setting, seeds, cells = _bmi_plan(ctx)
    started = time.perf_counter()
    net = bmi_lib.pretrain(setting)
    pretrain_s = time.perf_counter() - started
    records, results = [], {}
    test_rng = numpy_generator(ctx.seed, "rule-id-bmi", "sign-flip")
    for rule, rule_cells in cells.items():
        started = time.perf_counter()
        res = bmi_lib.retrain_and_score(setting, net, rule, seeds, rule_cells)
        elapsed = time.perf_counter() - started
        final = _bmi_final(setting, net, rule, seeds, rule_cells, res, test_rng)
        final["pretrain_wall_time_s"] = round(pretrain_s, 2)
        config = {"setting": dataclasses.asdict(setting), "rule": rule, "seeds": seeds,
                  "cells": [list(c) for c in rule_cells], "seed": ctx.seed, "quick": ctx.quick}
        record = make_record("reproduce", f"rule-id-bmi/{rule}", config, final, wall_time_s=elapsed)
        ctx.record(record)
        records.append(record)
        results[rule] = {**final, "paper_match": _paper_match(final, rule)}
        ctx.out_dir.mkdir(parents=True, exist_ok=True)
        np.savez(ctx.out_dir / f"bmi_{rule}_correlations.npz",
                 **{k: v for k, v in res.items() if isinstance(v, np.ndarray)})
    print(f"\nrule-id-bmi{' (quick: smoke numbers, not results)' if ctx.quick else ''}: mean held-out cosine of "
          "the observed flow-field change with each prediction (mean over seeds)")
    for rule, final in results.items():
        print(f"{rule.upper()}-trained; {final['swept']}: " + "  ".join(f"{o:.1f}" for o in final["overlaps"]))
        for key in bmi_lib.PREDICTIONS:
            print(f"  {key:<12} " + "  ".join(f"{v:+.3f}" for v in final[f"{key}_mean"]))
            if final["authors_seeds"][key]:
                mean = final["authors_seeds"][key]["mean"]
                print(f"  {'(authors)':<12} " + "  ".join(f"{v:+.3f}" for v in mean))
            paper = [(o, portes2022.paper_correlation(rule, key, o)) for o in final["overlaps"]]
            print(f"  {'paper':<12} " + "  ".join("  –   " if v is None else f"{v.value:+.3f}" for o, v in paper))
        if final["paper_match"]:
            m = final["paper_match"]
            print(f"  authors' seeds: {m['within_one_sd']} of {m['cells']} cells within one sd of their mean; "
                  f"largest per-seed difference {m['max_abs_per_seed']:.1e}")
        print(f"  {final['rule_prediction']} - {final['other_prediction']}, one value per seed "
              f"({len(seeds)} seeds): mean {final['mean_difference']:+.3f}, {final['seeds_positive']} positive, "
              f"sign-flip p = {final['sign_flip_p']:.2g} (smallest possible {final['smallest_p']:.2g})")
    _bmi_figure(ctx, results)
    return records


def _bmi_figure(ctx: ExperimentContext, results: dict[str, dict[str, Any]]) -> None:
    import matplotlib.pyplot as plt

    colors = {"corr_w_bmi0": "teal", "corr_w_bmi1": "darkblue", "corr_m": "tomato"}
    labels = {"corr_w_bmi0": "W_bmi0 (old decoder)", "corr_w_bmi1": "W_bmi1 (new decoder: RL prediction)",
              "corr_m": "M (SL prediction)"}
    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4), squeeze=False)
    for ax, (rule, final) in zip(axes[0], results.items(), strict=True):
        x = np.asarray(final["overlaps"])
        for key, color in colors.items():
            per_seed = np.asarray(final[f"{key}_per_seed"])
            for row in per_seed:  # the distribution over seeds
                ax.scatter(x + {"corr_w_bmi0": -0.012, "corr_w_bmi1": 0.0, "corr_m": 0.012}[key], row,
                           s=8, color=color, alpha=0.35)
            ax.plot(x, per_seed.mean(0), "-", color=color,
                    label=labels[key] if rule == "sl" or key != "corr_w_bmi0" else "W_bmi0 = M-hat (old decoder)")
            paper = [(o, portes2022.paper_correlation(rule, key, o)) for o in final["overlaps"]]
            paper = [(o, v.value) for o, v in paper if v is not None]
            if paper:
                ax.plot(*zip(*paper, strict=True), "x:", color=color, alpha=0.9)
        ax.set_title(f"trained with {'SL (RFLO with M)' if rule == 'sl' else 'RL (REINFORCE)'}; "
                     f"{len(final['seeds'])} seeds, p = {final['sign_flip_p']:.2g}", fontsize=9)
        ax.set_xlabel(final["swept"] + f" (other overlap {final['fixed_overlap']:g})")
        ax.set_ylabel("Corr(dF_obs, dF_pred)")
        ax.legend(fontsize=6, title="dots: seeds; x: authors' figure data", title_fontsize=6)
    ctx.figure(fig, "rule_id_bmi")


# ---------------------------------------------------------------------------------------------
# library rules
# ---------------------------------------------------------------------------------------------
#: train: the training and held-out-seed architecture; held_out: the architecture that chose the feature
#: scaling (``init`` was picked on it, so it is not a test); fresh: an architecture no design choice has
#: seen (added after the scaling was fixed), the headline's test
LIBRARY_ARCHS = {"train": {"hidden": (32,)}, "held_out": {"hidden": (48, 24)}, "fresh": {"hidden": (64, 32, 16)}}
#: the splits of a library run: (split, architecture key, first seed)
LIBRARY_SPLITS = (("train", "train", 0), ("test", "train", 100), ("held_out", "held_out", 200), ("fresh", "fresh", 300))
#: the common training protocol of every library run (a rule that fixes other settings is left out)
LIBRARY_TRAINING = {"batch_size": 64, "lr": 1e-3, "optimizer": "adam", "test_limit": 1000}

def _check_library_rules(rules: list[str]) -> None:
    """``rules``: registered rule names, at least two distinct ones (ValueError otherwise)."""
    from creditlab.rules import RULES

    unknown = [name for name in rules if name not in RULES]
    if unknown:
        raise ValueError(f"unknown rule {', '.join(map(repr, unknown))}; valid: {', '.join(RULES.names())}")
    if len(set(rules)) < 2:
        raise ValueError("identification needs at least 2 distinct rules to tell apart")


LIBRARY_OPTIONS = {
    "rules": ExperimentOption(None, "rules to identify (>= 2, each must train the MLPs) [default: every "
                                    "registered rule that can]", type=list, item=str, check=_check_library_rules),
    "train_seeds": ExperimentOption(None, "training seeds per rule [default: 8; quick: 2]", type=int, minimum=1),
    "test_seeds": ExperimentOption(None, "held-out seeds per rule [default: 4; quick: 1]", type=int, minimum=1),
    "arch_seeds": ExperimentOption(None, "held-out-architecture seeds per rule [default: 4; quick: 1]", type=int,
                                   minimum=1),
    "train_limit": ExperimentOption(None, "MNIST training images per run [default: 2048; quick: 256]", type=int,
                                    minimum=1),
    "epochs": ExperimentOption(None, "epochs per run [default: 2; quick: 1]", type=int, minimum=1),
    "every": ExperimentOption(None, "record the observables every N steps [default: 4; quick: 1]", type=int,
                              minimum=1),
    "timepoints": ExperimentOption(None, "records the classifier reads (>= 2) [default: 8; quick: 4]", type=int,
                                   minimum=2),
    "reuse": ExperimentOption(False, "reuse each run's observables.npz in --out when it was recorded for the "
                                     "same run (a corrupt or foreign file is refused)"),
}


def library_rules(model_builder: Callable[[dict[str, Any]], Any], config: Any = None
                  ) -> tuple[list[str], dict[str, str]]:
    """Rules of the registry whose own check accepts the model(s) (and whose optimizer requirement, if
    any, allows ``config``), and why the others are left out."""
    from creditlab.optim import check_requirement
    from creditlab.rules import RULES

    accepted, refused = [], {}
    for name in RULES.names():
        rule_class = RULES.get(name)
        try:
            for arch in LIBRARY_ARCHS.values():
                rule_class.check_model(model_builder(arch))
            if config is not None:
                check_requirement(rule_class.optimizer_requirement, config)
        except (IncompatibleModelError, CreditlabError) as error:
            refused[name] = str(error)
        else:
            accepted.append(name)
    return accepted, refused


def _chosen_rules(ctx: ExperimentContext, accepted: list[str], refused: dict[str, str]) -> list[str]:
    """``--opt rules=[...]``, each of which must be trainable here; at least two rules to tell apart."""
    rules = _list_option(ctx, "rules", accepted, lambda v: isinstance(v, str), "a list of rule names")
    for name in rules:
        if name in refused:
            raise CreditlabError(f"--opt rules: rule {name!r} cannot be identified here: {refused[name]}")
        if name not in accepted:
            raise CreditlabError(f"--opt rules: unknown rule {name!r}; valid: {', '.join(accepted)}")
    if len(set(rules)) < 2:
        raise CreditlabError(f"--opt rules: identification needs at least 2 distinct rules to tell apart, got "
                             f"{rules!r}; valid: {', '.join(accepted)}")
    return list(dict.fromkeys(rules))


def _classify(features: dict[str, dict[str, list[np.ndarray]]], labels: dict[str, list[int]], classes: int
              ) -> dict[str, dict[str, Any]]:
    """Per feature scaling: classifier trained on the training seeds; accuracy and confusion per split."""
    out: dict[str, dict[str, Any]] = {}
    for scaling, by_split in features.items():
        classifier = lib.LogisticClassifier().fit(np.stack(by_split["train"]), np.asarray(labels["train"]), classes)
        result: dict[str, Any] = {}
        for split in by_split:
            predicted = classifier.predict(np.stack(by_split[split]))
            truth = np.asarray(labels[split])
            result[f"{split}_accuracy"] = float((predicted == truth).mean())
            if split != "train":
                result[f"{split}_confusion"] = lib.confusion_matrix(truth, predicted, classes).tolist()
        out[scaling] = result
    return out


def library_summary(records: list[dict[str, Any]]) -> list[Table]:
    """The held-out accuracy table (per feature scaling) and the confusion matrices of the primary one."""
    tables: list[Table] = []
    for record in records:
        final, config = record["final"], record["config"]
        rules = final["rules"]
        by_scaling = final["by_scaling"]
        rows = [[scaling, _fmt(r["train_accuracy"]), _fmt(r["test_accuracy"]), _fmt(r["held_out_accuracy"]),
                 _fmt(r.get("fresh_accuracy")), _fmt(final["chance"])] for scaling, r in by_scaling.items()]
        archs = config["archs"]
        notes = [f"{len(rules)} rules ({', '.join(rules)}); MLP {archs['train']} for training and held-out seeds, "
                 f"{archs['held_out']} for the architecture that chose the feature scaling (so not a test), "
                 f"{archs.get('fresh', '–')} for the fresh architecture (no design choice saw it: the test); "
                 f"{config['train_limit']} MNIST images, "
                 f"{config['epochs']} epochs, {config['optimizer']} lr {config['lr']}, batch {config['batch_size']}.",
                 "Feature scaling 'none': statistics as recorded; 'init': each layer's statistics divided by its "
                 "scale at initialization (creditlab.analysis.rule_id.library.scale_normalised).",
                 "Beyond the paper: no published number to compare with (status: not available)."]
        if final.get("refused"):
            notes.append("Left out (cannot train the MLPs under this protocol): " + ", ".join(final["refused"]) + ".")
        tables.append(Table(["features", "train seeds", "held-out seeds", "scaling-choice architecture",
                             "fresh architecture", "chance"], rows,
                            notes, title="Which creditlab rule trained the network: held-out accuracy"))
        mean_accuracy: dict[tuple[str, str], list[float]] = {}
        for run in final["runs"]:
            if run["test_accuracy"] is not None:  # None: observables re-used (reuse=true), accuracy not re-measured
                mean_accuracy.setdefault((run["rule"], run["split"]), []).append(run["test_accuracy"])
        primary = final["primary_scaling"]
        titles = {"test": "held-out seeds", "held_out": "scaling-choice architecture", "fresh": "fresh architecture"}
        for split in [s for s in ("test", "held_out", "fresh") if f"{s}_confusion" in by_scaling[primary]]:
            counts = by_scaling[primary][f"{split}_confusion"]
            rows = [[rule, *map(str, row), _fmt(float(np.mean(mean_accuracy.get((rule, split), [math.nan]))))]
                    for rule, row in zip(rules, counts, strict=True)]
            tables.append(Table(["true rule \\ called", *rules, "MNIST test acc."], rows,
                                [f"Rows: the rule that trained the run; columns: the classifier's call "
                                 f"(features '{primary}'); last column: the runs' mean MNIST test accuracy "
                                 "(– where the runs' observables were re-used, reuse=true, and not re-trained)."],
                                title=f"Confusion, {titles[split]}"))
    return tables


def _observables(ctx: ExperimentContext, run_dir: Any, run_config: dict[str, Any], learner: Any, data: Any,
                 config: Any, probe: torch.Tensor, every: int) -> tuple[np.ndarray, float | None]:
    """The run's observables: trained now with the recorder as a trainer step hook, or (``reuse``) read
    from its ``observables.npz`` if that was recorded for this very run."""
    from creditlab.train import fit

    path = run_dir / lib.OBSERVABLES_NAME
    if ctx.options.get("reuse") and path.exists():
        loaded = lib.load_observables(path, run_config)
        return loaded["values"], None
    recorder = lib.ObservableRecorder(probe, every=every)
    summary = fit(learner, data, config, hooks=[recorder])
    return lib.load_observables(recorder.save(run_dir, run_config), run_config)["values"], summary["test_accuracy"]


@register_experiment("rule-id-library",
                     "Beyond the paper: which creditlab rule trained a small MLP, from weight/update/activation "
                     "statistics recorded during training (held-out seeds and architecture)",
                     summary=library_summary, options=LIBRARY_OPTIONS)
def run_library(ctx: ExperimentContext) -> list[dict[str, Any]]:
    """Train every compatible rule over seeds; classify trajectories; held-out accuracy and confusion."""
    from creditlab.data import load_dataset
    from creditlab.models import build_model
    from creditlab.rules import RULES
    from creditlab.train import TrainConfig, prepare

    torch.set_num_threads(1)
    n_train_seeds = _int_option(ctx, "train_seeds", 2, 8)
    n_test_seeds = _int_option(ctx, "test_seeds", 1, 4)
    n_arch_seeds = _int_option(ctx, "arch_seeds", 1, 4)
    train_limit = _int_option(ctx, "train_limit", 256, 2048)
    epochs = _int_option(ctx, "epochs", 1, 2)
    every = _int_option(ctx, "every", 1, 4)
    timepoints = _int_option(ctx, "timepoints", 4, 8, minimum=2)
    steps = epochs * math.ceil(train_limit / LIBRARY_TRAINING["batch_size"])
    if steps // every + 1 < timepoints:
        raise CreditlabError(f"--opt timepoints={timepoints}: a run records only {steps // every + 1} times "
                             f"({steps} steps, every {every}); lower timepoints or every, or train longer")
    probe_config = TrainConfig(epochs=epochs, seed=ctx.seed, train_limit=train_limit, progress=False,
                               **LIBRARY_TRAINING)
    accepted, refused = library_rules(lambda arch: build_model("mlp", (1, 28, 28), 10, **arch), probe_config)
    rules = _chosen_rules(ctx, accepted, refused)
    data = load_dataset("mnist", ctx.data_dir, "cpu", 0.0, 0, "standard")
    probe = data.train_x[-256:]  # outside every run's training subset
    counts = {"train": n_train_seeds, "test": n_test_seeds, "held_out": n_arch_seeds, "fresh": n_arch_seeds}
    plan = [(split, first + s) for split, _, first in LIBRARY_SPLITS for s in range(counts[split])]
    architecture = {split: arch for split, arch, _ in LIBRARY_SPLITS}
    features: dict[str, dict[str, list[np.ndarray]]] = {
        scaling: {split: [] for split, _, _ in LIBRARY_SPLITS} for scaling in lib.FEATURE_SCALINGS}
    labels: dict[str, list[int]] = {split: [] for split, _, _ in LIBRARY_SPLITS}
    runs = []
    started_all = time.perf_counter()
    for label, rule in enumerate(rules):
        takes_seed = "seed" in inspect.signature(RULES.get(rule).__init__).parameters
        for split, seed in plan:
            arch = LIBRARY_ARCHS[architecture[split]]
            config = TrainConfig(epochs=epochs, seed=ctx.seed + seed, train_limit=train_limit, progress=False,
                                 **LIBRARY_TRAINING)
            rule_options = {"seed": ctx.seed + seed} if takes_seed else {}
            run_config = {"rule": rule, "rule_options": rule_options, "hidden": list(arch["hidden"]),
                          "every": every, **{k: v for k, v in dataclasses.asdict(config).items()
                                             if k in ("epochs", "seed", "train_limit", *LIBRARY_TRAINING)}}
            learner = prepare(rule, "mlp", "mnist", config, rule_options, dict(arch))
            run_dir = ctx.out_dir / "library_runs" / f"{rule}-{split}-seed{seed}"
            started = time.perf_counter()
            values, test_accuracy = _observables(ctx, run_dir, run_config, learner, data, config, probe, every)
            for scaling in lib.FEATURE_SCALINGS:
                features[scaling][split].append(lib.trajectory_features(values, timepoints, scaling))
            labels[split].append(label)
            runs.append({"rule": rule, "split": split, "seed": seed, "hidden": list(arch["hidden"]),
                         "test_accuracy": test_accuracy, "observables": str(run_dir / lib.OBSERVABLES_NAME),
                         "records": len(values), "wall_time_s": round(time.perf_counter() - started, 2)})
    by_scaling = _classify(features, labels, len(rules))
    primary = "init"
    final: dict[str, Any] = {"rules": rules, "refused": refused, "chance": 1 / len(rules), "runs": runs,
                             "primary_scaling": primary, "by_scaling": by_scaling, **by_scaling[primary]}
    config_rec = {"archs": {k: list(v["hidden"]) for k, v in LIBRARY_ARCHS.items()}, "train_limit": train_limit,
                  "epochs": epochs, "every": every, "timepoints": timepoints, "seeds": plan, "seed": ctx.seed,
                  "quick": ctx.quick, "rules": rules, **LIBRARY_TRAINING}
    record = make_record("reproduce", "rule-id-library", config_rec, final,
                         wall_time_s=time.perf_counter() - started_all)
    ctx.record(record)
    print(f"\nrule-id-library{' (quick: smoke numbers, not results)' if ctx.quick else ''}: {len(rules)} rules "
          f"({', '.join(rules)}), chance {1 / len(rules):.3f}")
    if refused:
        print("left out (cannot train the MLPs under this protocol): " + ", ".join(refused))
    for scaling, result in by_scaling.items():
        print(f"accuracy, features '{scaling}': train seeds {result['train_accuracy']:.3f}, held-out seeds "
              f"{result['test_accuracy']:.3f}, scaling-choice architecture {result['held_out_accuracy']:.3f}, "
              f"fresh architecture {result['fresh_accuracy']:.3f}")
    for split in ("test", "held_out", "fresh"):
        print(f"confusion ({split}, features '{primary}'; rows: true rule, columns: called):")
        for name, row in zip(rules, final[f"{split}_confusion"], strict=True):
            print(f"  {name:<18} " + " ".join(f"{v:3d}" for v in row))
    _library_figure(ctx, final)
    return [record]


def _library_figure(ctx: ExperimentContext, final: dict[str, Any]) -> None:
    import matplotlib.pyplot as plt

    rules = final["rules"]
    titles = {"test": "held-out seeds", "held_out": "scaling-choice arch.", "fresh": "fresh architecture"}
    fig, axes = plt.subplots(1, 3, figsize=(18, 5))
    for ax, split in zip(axes, ("test", "held_out", "fresh"), strict=True):
        counts = np.asarray(final[f"{split}_confusion"])
        ax.imshow(counts, cmap="Blues")
        for i in range(len(rules)):
            for j in range(len(rules)):
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(rules)), rules, rotation=60, fontsize=8)
        ax.set_yticks(range(len(rules)), rules, fontsize=8)
        ax.set_title(f"{titles[split]}: "
                     f"accuracy {final[f'{split}_accuracy']:.2f} (chance {final['chance']:.2f}; features "
                     f"'{final['primary_scaling']}')", fontsize=9)
        ax.set_xlabel("called")
        ax.set_ylabel("true rule")
    ctx.figure(fig, "rule_id_library_confusion")


@register_headline("rule-identification", order=90)
def rule_id_headline(records: list[dict[str, Any]]) -> list[Headline]:
    """The feedforward decision's accuracy, the BMI correlations beside the authors' figure data, and the
    library identification's held-out accuracy."""
    full = [r for r in records if str(r.get("name", "")).startswith("rule-id-") and not r["config"].get("quick")]
    rows = []
    observed = [r for r in full if r["name"] == "rule-id-feedforward/observed_trials"]
    if observed:
        points = observed[-1]["final"]["points"]
        best = next((p for p in points if p["accuracy"] >= 0.95), None)
        if best is not None:
            rows.append(Headline(
                "Portes, Schmid & Murray 2022", "feedforward model: SL (mismatched M) told from RL by the statistic",
                f"accuracy {best['accuracy']:.3f} from {best['value']} observed trials per condition",
                "no released numbers for the feedforward model", "not available",
                f"{points[0]['replicates']} SL + {points[0]['replicates']} RL simulated experiments per point",
                "docs/papers/rule-identification.md"))
    names = {"corr_m": "M", "corr_w_bmi1": "new decoder", "corr_w_bmi0": "old decoder (M̂ = W_bmi0ᵀ)"}
    for rule, overlap, ours_key, other_key in (("sl", 0.4, "corr_m", "corr_w_bmi1"),
                                               ("rl", 0.2, "corr_w_bmi1", "corr_w_bmi0")):
        bmi = [r for r in full if r["name"] == f"rule-id-bmi/{rule}" and "authors_seeds" in r["final"]]
        if not bmi or overlap not in bmi[-1]["final"]["overlaps"]:
            continue
        final, i = bmi[-1]["final"], bmi[-1]["final"]["overlaps"].index(overlap)
        ours = final["authors_seeds"]
        if ours[ours_key] is None or ours[ours_key]["seeds"] != list(portes2022.SEEDS):
            continue
        theirs = [portes2022.paper_correlation(rule, key, overlap) for key in (ours_key, other_key)]
        like = _like_for_like(bmi[-1])
        match = _paper_match(final, rule) or {}
        why = ("the authors' settings, seeds, construction, network seed and scored trials; "
               f"{match.get('within_one_sd')} of {match.get('cells')} cells within one sd, largest per-seed "
               f"difference {match.get('max_abs_per_seed', math.nan):.1e}" if like else
               "the authors' sweep, seeds and scored trials, but their RL training length is not in the released "
               "files (ours: train_duration " f"{bmi[-1]['config']['setting']['train_duration']}) and that file's "
               "code version is not the released one, so not like for like")
        rows.append(Headline(
            "Portes, Schmid & Murray 2022",
            f"BMI RNN trained with {rule.upper()}: corr. of the flow-field change with the {names[ours_key]} vs "
            f"the {names[other_key]} prediction at {portes2022.SWEPT[rule]} = {overlap:g}",
            f"{ours[ours_key]['mean'][i]:+.3f} vs {ours[other_key]['mean'][i]:+.3f} (authors' 4 seeds); over "
            f"{len(final['seeds'])} seeds on held-out trials, {final['seeds_positive']} of {len(final['seeds'])} "
            f"favour the {names[ours_key]}, sign-flip p = {final['sign_flip_p']:.2g} (one unit per seed)",
            " vs ".join(f"{v.value:+.3f}" for v in theirs if v is not None),
            least_sure([v.status for v in theirs if v] + ([] if like else ["unverified"])),
            why, "docs/papers/rule-identification.md"))
    library = [r for r in full if r["name"] == "rule-id-library"]
    if library:
        final = library[-1]["final"]
        rows.append(Headline(
            "beyond Portes et al. (Nayebi et al. 2020 spirit)",
            f"which of {len(final['rules'])} creditlab rules trained a network, from activity and weight statistics",
            (f"fresh architecture {final['fresh_accuracy']:.3f} (no design choice saw it), held-out seeds "
             f"{final['test_accuracy']:.3f} (chance {final['chance']:.3f})" if "fresh_accuracy" in final else
             f"held-out seeds {final['test_accuracy']:.3f} (chance {final['chance']:.3f}); no fresh architecture "
             "in this record"), "–", "not available",
            f"{len(final.get('runs') or [])} small MLP runs on a MNIST subset",
            "docs/papers/rule-identification.md"))
    return rows
