"""Esser et al. 2015 on MNIST: train TrueNorth cores on probabilities, sample, ensemble, count energy.

For each network (the 5-core one, and a 30-core one standing in for the paper's unverified
high-accuracy topology) it trains the expectation network with backprop (``bp``) on the full MNIST
training set, then evaluates on the test set the ``expectation`` network and ensembles of 1, 2, 4,
..., 64 independently sampled copies: accuracy, cores, events and energy per image (two energy
models, :mod:`creditlab.neuromorphic.energy`). One record per network in ``results.jsonl``.

Reduced protocol (CPU): the epochs in ``NETWORKS`` (the paper's are not known), Adam (lr 1e-2)
instead of the paper's SGD with momentum (SGD at lr 0.1 trained far slower in a 2-epoch trial),
batch 100 as in the paper, no data transformations (the paper mentions some, unspecified), no
dropout. A network already recorded in the output's ``results.jsonl`` is skipped (rerun to continue;
delete its record to redo it). ``--quick``: the 5-core network, 1 epoch on 2000 images, 300 test images: a smoke run.
"""

from __future__ import annotations

import time
from typing import Any

from creditlab.data import load_dataset
from creditlab.experiments import ExperimentContext, register_experiment
from creditlab.neuromorphic.energy import constants, paper_implied_cores_per_member
from creditlab.neuromorphic.evaluation import ensemble_report
from creditlab.results import make_record, read_records

#: Esser et al. 2015 (status as in shared/research/wave2_additions.md)
PAPER = {
    "ensemble-1": {"test_accuracy": 0.927, "energy_uj": 0.268, "status": "verified",
                   "source": "Esser et al. 2015 abstract (PDF / IBM page energy)"},
    "ensemble-64": {"test_accuracy": 0.9942, "energy_uj": 108.0, "status": "verified",
                    "source": "Esser et al. 2015 abstract (PDF / IBM page energy)"},
    "topology": {"status": "unverified", "note": "the paper's networks' wiring and core counts were not recovered"},
}

ENSEMBLE_SIZES = (1, 2, 4, 8, 16, 32, 64)
TRAINING = {"optimizer": "adam", "lr": 1e-2, "batch_size": 100, "schedule": "cosine", "normalization": "unit",
            "augment": False}
NETWORKS: dict[str, dict[str, Any]] = {
    "5core": {"model_options": {}, "epochs": 15, "time_budget_s": 480},
    "30core": {"model_options": {"stride": 4, "hidden_neurons": 224}, "epochs": 6, "time_budget_s": 420,
               "test_limit": 2000},  # 127 sampled copies of 30 cores: ensembles on the first 2000 test images

}


def _row(name: str, result: dict[str, Any]) -> str:
    if "cores" not in result:
        return f"{name:<12} {100 * result['test_accuracy']:>7.2f}"
    events = result["events_per_image"]
    energy = (f"{result['cores']:>6} {result['chip_average_uj']:>10.3f} {result['paper_calibrated_uj']:>10.3f} "
              f"{events['synaptic_events']:>12.0f} {events['neuron_spikes']:>8.0f}")
    return f"{name:<12} {100 * result['test_accuracy']:>7.2f} {energy}"


def summarize(records: list[dict[str, Any]]) -> list[Any]:
    """One report table per network: accuracy, cores, energy and events per image of every variant."""
    from creditlab.bench.report import Table

    tables = []
    for record in sorted(records, key=lambda r: r["final"]["cores_per_copy"]):
        final = record["final"]
        rows = []
        for name, result in final["variants"].items():
            paper = PAPER.get(name, {})
            row = [name, f"{100 * result['test_accuracy']:.2f}",
                   f"{100 * paper['test_accuracy']:.2f}" if paper else "",
                   str(result.get("cores", "")),
                   f"{result['chip_average_uj']:.3f}" if "cores" in result else "",
                   f"{result['paper_calibrated_uj']:.3f}" if "cores" in result else "",
                   f"{paper['energy_uj']}" if paper else ""]
            events = result.get("events_per_image", {})
            row += ([f"{events['synaptic_events']:.0f}", f"{events['neuron_spikes']:.0f}"] if events else ["", ""])
            rows.append(row)
        notes = [f"{final['epochs_run']} epochs (bp, Adam, batch 100), {final['test_images']} test images; "
                 f"paper numbers: Esser et al. 2015 (verified; the paper's topology is unverified, its "
                 f"ensemble-64 energy implies {final['paper_implied_cores_per_member']:.1f} cores per member "
                 "under the calibrated model)."]
        tables.append(Table(["variant", "test acc %", "paper %", "cores", "uJ/image (chip-average)",
                             "uJ/image (paper-calibrated)", "paper uJ", "synaptic events/image", "spikes/image"],
                            rows, notes,
                            title=f"{final['network']} network ({final['cores_per_copy']} cores per copy)"))
    return tables


@register_experiment("truenorth-mnist", "Esser et al. 2015: TrueNorth cores trained on probabilities, "
                     "sampled ensembles of 1-64, accuracy and energy per image on MNIST", summary=summarize)
def run(ctx: ExperimentContext) -> list[dict[str, Any]]:
    """Train each network in NETWORKS (quick: the 5-core one on a subset) and evaluate its ensembles."""
    from creditlab.train import train_from_names

    data = load_dataset("mnist", ctx.data_dir, ctx.device, 0.0, ctx.seed, "unit")
    networks = {"5core": {**NETWORKS["5core"], "epochs": 1}} if ctx.quick else NETWORKS
    done = {r["name"] for r in read_records(ctx.out_dir / "results.jsonl") if not r["final"].get("quick")}
    records = []
    for label, spec in networks.items():
        if not ctx.quick and f"truenorth-mnist/{label}" in done:
            print(f"truenorth-mnist/{label}: already recorded in {ctx.out_dir / 'results.jsonl'}, skipped")
            continue
        overrides = {**TRAINING, "epochs": spec["epochs"], "seed": ctx.seed, "device": ctx.device,
                     "out_dir": str(ctx.out_dir / "checkpoints" / label), "progress": False,
                     "time_budget_s": spec["time_budget_s"]}
        if "test_limit" in spec:
            overrides["test_limit"] = spec["test_limit"]
        if ctx.quick:
            overrides.update(train_limit=2000, test_limit=300)
        started = time.perf_counter()
        captured: dict[str, Any] = {}

        def keep(rule: Any, _data: Any, captured: dict[str, Any] = captured) -> list[Any]:
            captured["model"] = rule.model
            return []

        summary = train_from_names("bp", "truenorth", "mnist", ctx.data_dir, model_options=spec["model_options"],
                                   callback_factory=keep, loaded=data, **overrides)
        train_time = time.perf_counter() - started
        model = captured["model"]
        test_x, test_y = data.test_x[:overrides.get("test_limit")], data.test_y[:overrides.get("test_limit")]
        variants = ensemble_report(model, test_x, test_y, ENSEMBLE_SIZES, ctx.seed, summary["epochs"])
        final = {"network": label, "cores_per_copy": model.cores, "epochs_run": summary["epochs"],
                 "train_time_s": round(train_time, 1),
                 "eval_time_s": round(time.perf_counter() - started - train_time, 1),
                 "test_images": len(test_x), "variants": variants, "paper": PAPER,
                 "energy_constants": constants(), "paper_implied_cores_per_member": paper_implied_cores_per_member(),
                 "quick": ctx.quick}
        record = make_record("reproduce", f"truenorth-mnist/{label}", summary["config"], final,
                             epochs=summary["history"], wall_time_s=time.perf_counter() - started, device=ctx.device)
        ctx.record(record)
        records.append(record)
        print(f"\ntruenorth-mnist {label} ({model.cores} cores per copy, {summary['epochs']} epochs"
              f"{'; quick: smoke numbers, not results' if ctx.quick else ''})")
        print(f"{'variant':<12} {'acc %':>7} {'cores':>6} {'uJ (chip)':>10} {'uJ (cal.)':>10} {'syn. events':>12} "
              f"{'spikes':>8}")
        for name, result in variants.items():
            print(_row(name, result))
    print(f"paper: ensemble-1 {100 * PAPER['ensemble-1']['test_accuracy']}% at {PAPER['ensemble-1']['energy_uj']} uJ; "
          f"ensemble-64 {100 * PAPER['ensemble-64']['test_accuracy']}% at {PAPER['ensemble-64']['energy_uj']} uJ "
          f"(implies {paper_implied_cores_per_member():.1f} cores per member under the calibrated model)")
    return records
