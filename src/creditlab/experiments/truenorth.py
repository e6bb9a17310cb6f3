"""Esser et al. 2015 on MNIST: train TrueNorth cores on probabilities, sample, ensemble, count energy.

For each network (the 5-core one, and a 30-core one standing in for the paper's unverified
high-accuracy topology) it trains the expectation network with backprop (``bp``) on the full MNIST
training set through the one trainer. Every epoch the trainer evaluates the model's evaluation
variants on the test set: ``expectation`` and ``ensemble-N`` for the sizes in ``epoch_ensembles``
(default only ``ensemble-1``: every size every epoch would cost more than the training). After
training, the sweep (``sweep``, default 1, 2, 4, ..., 64 sampled copies) is evaluated once, through the
trainer's own ``evaluate_variants`` with the last epoch's generators (so ``ensemble-1`` equals the
last epoch's), with cores, events and energy per image (two energy models,
:mod:`creditlab.neuromorphic.energy`). One record per network in ``results.jsonl``.

Reduced protocol (CPU): the epochs in ``NETWORKS`` (the paper's are not known), Adam (lr 1e-2,
cosine) instead of the paper's SGD with momentum (SGD at lr 0.1 trained far slower in a 2-epoch
trial), batch 100 as in the paper, no data transformations (the paper mentions some, unspecified),
no dropout. A network already recorded in the output's ``results.jsonl`` with the same epochs and
model options is skipped (delete its record to redo it). ``--quick``: the 5-core network, 1 epoch
on 2000 images, 300 test images: a smoke run.
"""

from __future__ import annotations

import time
from typing import Any

from creditlab.data import load_dataset
from creditlab.errors import CreditlabError
from creditlab.experiments import ExperimentContext, ExperimentOption, register_experiment, register_headline
from creditlab.hooks import TrainerHook
from creditlab.models.truenorth import SWEEP_ENSEMBLE_SIZES, parse_ensemble_variant
from creditlab.neuromorphic.energy import (
    SYNAPTIC_EVENT_ENERGY,
    constants,
    paper_implied_core_ticks,
    paper_implied_cores_per_member,
    per_event_energy_uj,
)
from creditlab.neuromorphic.evaluation import ensemble_sweep
from creditlab.papers import esser2015
from creditlab.report.headline import Headline, least_sure
from creditlab.report.render import Table
from creditlab.results import make_record, read_records

TRAINING = {"optimizer": "adam", "lr": 1e-2, "batch_size": 100, "schedule": "cosine", "normalization": "unit",
            "augment": False}
#: the networks (model options), their planned epochs and wall-time budgets, and how many test
#: images the final sweep uses (127 sampled copies of 30 cores on all 10000 would dominate the run)
NETWORKS: dict[str, dict[str, Any]] = {
    "5core": {"model_options": {}, "epochs": 15, "time_budget_s": 480, "sweep_test_limit": None},
    "30core": {"model_options": {"stride": 4, "hidden_neurons": 224}, "epochs": 6, "time_budget_s": 420,
               "sweep_test_limit": 2000},
}

OPTIONS = {
    "networks": ExperimentOption(None, "which networks, e.g. [30core] [default: all; quick: [5core]]", type=list,
                                 choices=tuple(NETWORKS), single=True),
    "epochs": ExperimentOption(None, "epochs of every network run [default: each network's, 5core 15, 30core 6; "
                               "quick: 1]", type=int, minimum=1),
    "time_budget": ExperimentOption(None, "seconds per network: stop after the epoch that passes it "
                                    "[default: each network's, 480 / 420 s; 0: none]", type=float, minimum=0),
    "epoch_ensembles": ExperimentOption([1], "ensemble sizes the trainer evaluates EVERY epoch (beside "
                                        "expectation), e.g. [1,64]; [] for the expectation only [default: [1]]",
                                        minimum=1, single=True, non_empty=False),
    "sweep": ExperimentOption(list(SWEEP_ENSEMBLE_SIZES), "ensemble sizes evaluated once after training, with "
                              "cores, events and energy [default: [1,2,4,8,16,32,64]]", minimum=1, single=True),
    "sweep_test_limit": ExperimentOption(None, "test images of the final sweep [default: 5core all, 30core 2000; "
                                         "quick: 300]", type=int, minimum=1),
    "resume": ExperimentOption(False, "continue each network from its checkpoint in OUT/checkpoints/NETWORK "
                               "(same settings; a budget-stopped or killed run goes on) [default: false]"),
}


class EnsembleEvents(TrainerHook):
    """Adds the events per image of the ``ensemble-N`` variants the trainer evaluated to each epoch's
    record (``variant_events``), from the model's tally."""

    def on_epoch_end(self, rule: Any, epoch: int) -> dict[str, Any]:  # noqa: D102
        events = rule.model.take_event_counts()
        return {"variant_events": events} if events else {}


def _sizes(value: Any, key: str) -> tuple[int, ...]:
    sizes = (value,) if isinstance(value, int) else tuple(value or ())
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in sizes):
        raise CreditlabError(f"--opt {key}: ensemble sizes are positive integers, e.g. [1,2,4]; got {value!r}")
    return sizes


def _networks(ctx: ExperimentContext) -> dict[str, dict[str, Any]]:
    """The networks to run with the options applied (epochs, budget, sweep images)."""
    chosen = ctx.options.get("networks") or (["5core"] if ctx.quick else list(NETWORKS))
    chosen = [chosen] if isinstance(chosen, str) else list(chosen)
    unknown = [n for n in chosen if n not in NETWORKS]
    if unknown:
        raise CreditlabError(f"--opt networks: unknown network(s) {', '.join(map(str, unknown))}; "
                             f"valid: {', '.join(NETWORKS)}")
    epochs, budget, limit = (ctx.options.get(k) for k in ("epochs", "time_budget", "sweep_test_limit"))
    for key, value in (("epochs", epochs), ("time_budget", budget), ("sweep_test_limit", limit)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or value < (0 if key == "time_budget" else 1)):
            raise CreditlabError(f"--opt {key} must be a positive number (time_budget: 0 for none), got {value!r}")
    networks = {}
    for name in chosen:
        spec = dict(NETWORKS[name])
        if epochs is not None:
            spec["epochs"] = int(epochs)
        if budget is not None:
            spec["time_budget_s"] = float(budget) or None
        if limit is not None:
            spec["sweep_test_limit"] = int(limit)
        if ctx.quick:
            spec.update(epochs=1 if epochs is None else spec["epochs"], time_budget_s=None,
                        sweep_test_limit=300 if limit is None else spec["sweep_test_limit"])
        networks[name] = spec
    return networks


def _per_event_uj(result: dict[str, Any]) -> float:
    """The per-event energy of a variant, recomputed from its recorded events (older records lack it)."""
    return result.get("per_event_uj", per_event_energy_uj(result["events_per_image"]))


def _row(name: str, result: dict[str, Any]) -> str:
    if "cores" not in result:
        return f"{name:<12} {100 * result['test_accuracy']:>7.2f}"
    events = result["events_per_image"]
    energy = (f"{result['cores']:>6} {result['chip_average_uj']:>10.3f} {result['paper_calibrated_uj']:>10.3f} "
              f"{_per_event_uj(result):>10.3f} "
              f"{events['synaptic_events']:>12.0f} {events['neuron_spikes']:>8.0f}")
    return f"{name:<12} {100 * result['test_accuracy']:>7.2f} {energy}"


def _paper_cells(name: str) -> tuple[str, str]:
    if not name.startswith("ensemble-"):
        return "", ""
    accuracy, energy = esser2015.paper_row(parse_ensemble_variant(name))
    return (f"{accuracy.value:g}" if accuracy else ""), (f"{energy.value:g}" if energy else "")


def _budget(record: dict[str, Any]) -> str:
    final = record["final"]
    planned = record["config"].get("epochs")
    return (f"{final['network']} ({final['cores_per_copy']} cores), {final['epochs_run']} of {planned} planned "
            f"epochs (bp, Adam, batch 100), ensembles on {final['test_images']} test images")


_ENERGY_NOTE = (
    "Energy: none of the three models is the paper's accounting, which could not be read (ticks per image and "
    f"power assumed; its 0.268 µJ is {paper_implied_core_ticks(1, 5):.1f} chip-average core-ticks of a 5-core "
    "network, its 108 µJ more than the whole chip's 63 µJ tick), so ours-vs-paper µJ ratios are no evidence of a "
    "saving. chip-average: cores × 63 mW / 4096 × 1 ms; paper-calibrated: cores × 0.268 µJ / 5 (it matches the "
    f"paper's 108 µJ at 64 copies only for a member of {paper_implied_cores_per_member():.1f} cores); per event: "
    f"synaptic events × {SYNAPTIC_EVENT_ENERGY.value * 1e12:g} pJ ({SYNAPTIC_EVENT_ENERGY.status}), spikes "
    "uncharged (no per-spike figure could be read), active energy only.")


def summarize(records: list[dict[str, Any]]) -> list[Table]:
    """One report table per record: accuracy, cores, energy and events per image of every variant."""
    tables = []
    records = [r for r in records if not r["final"].get("quick")] or records
    for record in sorted(records, key=lambda r: (r["final"]["cores_per_copy"], r["final"]["epochs_run"])):
        final = record["final"]
        rows = []
        for name, result in final["variants"].items():
            paper_accuracy, paper_energy = _paper_cells(name)
            row = [name, f"{100 * result['test_accuracy']:.2f}", paper_accuracy, str(result.get("cores", "")),
                   f"{result['chip_average_uj']:.3f}" if "cores" in result else "",
                   f"{result['paper_calibrated_uj']:.3f}" if "cores" in result else "",
                   f"{_per_event_uj(result):.3f}" if "cores" in result else "", paper_energy]
            events = result.get("events_per_image", {})
            row += ([f"{events['synaptic_events']:.0f}", f"{events['neuron_spikes']:.0f}"] if events else ["", ""])
            rows.append(row)
        per_epoch = [e for e in record.get("epochs", []) if "variants" in e]
        curve = ", ".join(f"{e['epoch']}: {100 * e['variants']['expectation']['test_accuracy']:.2f}"
                          + (f"/{100 * e['variants']['ensemble-1']['test_accuracy']:.2f}"
                             if "ensemble-1" in e["variants"] else "") for e in per_epoch)
        expectation_images = final.get("expectation_test_images", final["test_images"])
        scope = (f"; expectation on {expectation_images} test images"
                 if expectation_images != final["test_images"] else "")
        notes = [f"{_budget(record)}{scope}. Paper: Esser et al. 2015 (status verified: PDF and IBM's "
                 "page; the abstract page's energies are 0.408 / 121 µJ); the paper's topology is not available. "
                 f"Deterministic 5-core floor (RANC, secondary): {esser2015.RANC_5CORE_ACCURACY.value:g} %.",
                 _ENERGY_NOTE]
        if curve:
            notes.append(f"test accuracy % per epoch, expectation/ensemble-1 (trainer's evaluation variants): {curve}")
        tables.append(Table(["variant", "test acc %", "paper %", "cores", "uJ/image (chip-average, 1 tick)",
                             "uJ/image (paper-calibrated)", "uJ/image (per event)", "paper uJ",
                             "synaptic events/image", "spikes/image"],
                            rows, notes,
                            title=f"{final['network']} network ({final['cores_per_copy']} cores per copy, "
                                  f"{final['epochs_run']} epochs)"))
    return tables


def _trained(record: dict[str, Any]) -> tuple[int, str]:
    return record["final"]["epochs_run"], str(record.get("timestamp", ""))


def _longest_per_network(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per network, its longest-trained full (not quick) record, the newest among equals."""
    best: dict[str, dict[str, Any]] = {}
    for record in records:
        if not str(record.get("name", "")).startswith("truenorth-mnist/") or record["final"].get("quick"):
            continue
        network = record["final"]["network"]
        if network not in best or _trained(record) >= _trained(best[network]):
            best[network] = record
    return sorted(best.values(), key=lambda r: r["final"]["cores_per_copy"])


@register_headline("truenorth", order=80)
def truenorth_headline(records: list[dict[str, Any]]) -> list[Headline]:
    """Per network: ensemble-1 and ensemble-64 accuracy beside the paper's; then one energy row: ours
    under the stated models beside the paper's figures, whose accounting could not be read."""
    rows = []
    theirs = f"1: {esser2015.TEST_ACCURACY[1].value:g} %; 64: {esser2015.TEST_ACCURACY[64].value:g} %"
    status = least_sure([v.status for v in esser2015.TEST_ACCURACY.values()])
    chosen = [r for r in _longest_per_network(records)
              if "ensemble-1" in r["final"]["variants"] and "ensemble-64" in r["final"]["variants"]]
    for record in chosen:
        variants = record["final"]["variants"]
        ours = "; ".join(f"{n}: {100 * variants[f'ensemble-{n}']['test_accuracy']:.2f} %" for n in (1, 64))
        rows.append(Headline(
            "Esser et al. 2015 (TrueNorth)",
            f"MNIST test accuracy of sampled ensembles of 1 / 64, {record['final']['network']} network",
            ours, theirs, status, _budget(record) + "; paper's topology not available", "docs/papers/truenorth.md"))
    if chosen:
        ours = "; ".join(
            f"{r['final']['network']}: " + ", ".join(
                f"{n}: {r['final']['variants'][f'ensemble-{n}']['chip_average_uj']:.3g} (chip, 1 tick) / "
                f"{_per_event_uj(r['final']['variants'][f'ensemble-{n}']):.3g} (per event)" for n in (1, 64))
            for r in chosen)
        rows.append(Headline(
            "Esser et al. 2015 (TrueNorth)",
            "µJ/image of ensembles of 1 / 64 under stated models (chip-average 63 mW / 4096 cores × 1 tick; "
            f"{SYNAPTIC_EVENT_ENERGY.value * 1e12:g} pJ per synaptic event): not the paper's accounting",
            ours, f"1: {esser2015.ENERGY_UJ[1].value:g} µJ, 64: {esser2015.ENERGY_UJ[64].value:g} µJ; "
            "ticks per image and power assumed not available, so not comparable", "not available",
            "events counted in the accuracy runs above; per-event: active energy, spikes uncharged",
            "docs/papers/truenorth.md"))
    return rows


@register_experiment("truenorth-mnist", "Esser et al. 2015: TrueNorth cores trained on probabilities, "
                     "sampled ensembles of 1-64, accuracy and energy per image on MNIST", summary=summarize,
                     options=OPTIONS)
def run(ctx: ExperimentContext) -> list[dict[str, Any]]:
    """Train each network (quick: the 5-core one on a subset) and sweep its ensembles."""
    from creditlab.train import train_from_names

    networks = _networks(ctx)
    epoch_ensembles = _sizes(ctx.options.get("epoch_ensembles", [1]), "epoch_ensembles")
    sweep = _sizes(ctx.options.get("sweep", list(SWEEP_ENSEMBLE_SIZES)), "sweep")
    data = load_dataset("mnist", ctx.data_dir, ctx.device, 0.0, ctx.seed, "unit")
    done = [r for r in read_records(ctx.out_dir / "results.jsonl") if not r["final"].get("quick")]
    records = []
    for label, spec in networks.items():
        model_options = {**spec["model_options"], "ensemble_sizes": list(epoch_ensembles)}
        if not ctx.quick and any(r["name"] == f"truenorth-mnist/{label}" and r["config"].get("epochs") == spec["epochs"]
                                 and r["config"].get("seed") == ctx.seed and spec["model_options"] == {
                                     k: v for k, v in r["config"].get("model_options", {}).items()
                                     if k != "ensemble_sizes"} for r in done):
            print(f"truenorth-mnist/{label}: {spec['epochs']} epochs already recorded in "
                  f"{ctx.out_dir / 'results.jsonl'}, skipped")
            continue
        overrides = {**TRAINING, "epochs": spec["epochs"], "seed": ctx.seed, "device": ctx.device,
                     "out_dir": str(ctx.out_dir / "checkpoints" / label), "progress": False,
                     "time_budget_s": spec["time_budget_s"], "resume": bool(ctx.options.get("resume"))}
        if ctx.quick:
            overrides.update(train_limit=2000, test_limit=300)
        started = time.perf_counter()
        captured: dict[str, Any] = {}

        def hooks(rule: Any, _data: Any, captured: dict[str, Any] = captured) -> list[TrainerHook]:
            captured["rule"] = rule
            return [EnsembleEvents()]

        summary = train_from_names("bp", "truenorth", "mnist", ctx.data_dir, model_options=model_options,
                                   callback_factory=hooks, loaded=data, **overrides)
        train_time = time.perf_counter() - started
        rule = captured["rule"]
        model = rule.model
        limit = spec["sweep_test_limit"]
        test_x, test_y = data.test_x[:limit], data.test_y[:limit]
        variants = ensemble_sweep(rule, test_x, test_y, sweep, ctx.seed, summary["epochs"])
        trained_test_images = len(data.test_x[:overrides.get("test_limit")])
        if len(test_x) < trained_test_images:  # the expectation on every test image, as the trainer scored it
            variants["expectation"] = summary["history"][-1]["variants"]["expectation"]
        final = {"network": label, "cores_per_copy": model.cores, "epochs_run": summary["epochs"],
                 "train_time_s": round(train_time, 1),
                 "eval_time_s": round(time.perf_counter() - started - train_time, 1),
                 "test_images": len(test_x), "expectation_test_images": trained_test_images,
                 "epoch_ensembles": list(epoch_ensembles), "variants": variants,
                 "energy_constants": constants(), "paper_implied_cores_per_member": paper_implied_cores_per_member(),
                 "paper_implied_core_ticks": {"ensemble-1 (5 cores)": paper_implied_core_ticks(1, 5),
                                              "ensemble-64 (whole chip, 4096 cores)":
                                                  paper_implied_core_ticks(64, 4096)},
                 "quick": ctx.quick}
        record = make_record("reproduce", f"truenorth-mnist/{label}", summary["config"], final,
                             epochs=summary["history"], wall_time_s=time.perf_counter() - started, device=ctx.device)
        ctx.record(record)
        records.append(record)
        print(f"\ntruenorth-mnist {label} ({model.cores} cores per copy, {summary['epochs']} epochs"
              f"{'; quick: smoke numbers, not results' if ctx.quick else ''})")
        print(f"{'variant':<12} {'acc %':>7} {'cores':>6} {'uJ (chip)':>10} {'uJ (cal.)':>10} {'uJ (event)':>10} "
              f"{'syn. events':>12} {'spikes':>8}")
        for name, result in variants.items():
            print(_row(name, result))
    print(f"paper: ensemble-1 {esser2015.TEST_ACCURACY[1].value}% at {esser2015.ENERGY_UJ[1].value} uJ; "
          f"ensemble-64 {esser2015.TEST_ACCURACY[64].value}% at {esser2015.ENERGY_UJ[64].value} uJ "
          f"(accounting not available; the calibrated model matches 108 uJ only for a member of "
          f"{paper_implied_cores_per_member():.1f} cores)")
    return records
