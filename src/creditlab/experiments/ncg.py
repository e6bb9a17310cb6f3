"""Goupy, Tirilly & Bilasco (NeurIPS 2024): supervised STDP with Neuronal Competition Groups on
STDP-CSNN features (Table 1) and the competition-regulation ablation.

Protocol (the authors', ``spiking.md`` §1.7): stratified K-fold (K = 10, no shuffling) of the official
training set, each fold's held-out part the validation split; the official test set; classifier
trained online for up to 100 epochs with early stopping on validation accuracy (patience 10, the
trainer's ``early_stopping``); the score is the test accuracy at the stopping epoch (the authors'
definition; the best epoch's is recorded beside it), mean ± sd over folds. Reduced protocols (fewer
folds, an extractor/classifier training subset, fewer epochs, a test subset) are stated in every
record's ``protocol``. Records: ``<out>/results.jsonl``; ``show(out)`` prints the table.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch

from creditlab.data import Dataset, load_dataset
from creditlab.errors import OptionError
from creditlab.experiments import ExperimentContext, ExperimentOption, register_experiment, register_headline
from creditlab.models import build_model
from creditlab.papers import goupy2024 as paper_goupy
from creditlab.report.headline import Headline, least_sure, newest_runs
from creditlab.report.render import Table
from creditlab.results import make_record
from creditlab.rules import build_rule
from creditlab.spiking.cache import cache_key, load_or_extract, tensor_digest
from creditlab.spiking.cost import classifier_cost, extractor_cost, pipeline_cost
from creditlab.spiking.extractor import STDPCSNN, paper_config


def _cfg(rule: str, n: int, thr: float, w0: float, norm: bool, gap: float, ap: float, am: float,
         cr: tuple[float, float] | None, nt: int, regulation: str = "cr2") -> dict[str, Any]:
    model = {"neurons_per_class": n, "non_target_per_class": nt, "threshold": thr, "w_init_mean": w0,
             "weight_norm": norm, "regulation": regulation if cr else "none"}
    rule_options = {"t_gap": gap, "a_plus": ap, "a_minus": am, "annealing": 0.98}
    if cr:
        rule_options.update(threshold_lr=cr[0], threshold_annealing=cr[1])
    return {"rule": rule, "model": model, "rule_options": rule_options}


#: the tuned configurations (config/STDP-CSNN/<DS>/<cfg>.json; spiking.md §1.8)
CONFIGS = {
    "mnist": {"s2stdp+ncg": _cfg("s2stdp", 5, 200, 0.3, True, 0.03, 0.05, -0.1, (10, 0.5), 1),
              "s2stdp": _cfg("s2stdp", 1, 250, 0.3, True, 0.04, 0.005, -0.05, None, 0),
              "sstdp+ncg": _cfg("sstdp", 5, 200, 0.5, False, 0.08, 0.1, -0.001, (1, 0.5), 0),
              "sstdp": _cfg("sstdp", 1, 200, 0.5, False, 0.09, 0.01, 0.0, None, 0)},
    "fashion-mnist": {"s2stdp+ncg": _cfg("s2stdp", 5, 300, 0.3, True, 0.005, 0.1, -0.05, (5, 0.7), 1),
                      "s2stdp": _cfg("s2stdp", 1, 300, 0.3, True, 0.01, 0.01, -0.05, None, 0),
                      "sstdp+ncg": _cfg("sstdp", 5, 150, 0.5, False, 0.05, 0.05, 0.0, (1, 0.7), 0),
                      "sstdp": _cfg("sstdp", 1, 200, 0.5, False, 0.04, 0.05, -0.005, None, 0)},
    "cifar10": {"s2stdp+ncg": _cfg("s2stdp", 5, 400, 0.3, True, 0.005, 0.1, -0.05, (5, 0.5), 1),
                "s2stdp": _cfg("s2stdp", 1, 400, 0.3, True, 0.001, 0.001, -0.05, None, 0),
                "sstdp+ncg": _cfg("sstdp", 5, 350, 0.5, False, 0.005, 0.1, -0.01, (1, 0.5), 0),
                "sstdp": _cfg("sstdp", 1, 350, 0.5, False, 0.0005, 0.05, -0.001, None, 0)},
}


#: the ablation rows (Sec. 5.3) as the authors configured each (config/STDP-CSNN/<DS>/<file>.json of
#: ggoupy/SpikeNN @ b3d1865): row -> dataset -> (source file, configuration). Where the authors have no
#: file for a row (MNIST without CR and without L), the row is derived from S2-STDP+NCG and says so.
AUTHORS_DIRS = {"mnist": "MNIST", "fashion-mnist": "F-MNIST", "cifar10": "CIFAR10"}
ABLATION_ROWS = {"no-cr": "M-5 (no CR, no L)", "cr2": "M-5+CR-2 (no L)"}
ABLATION_CONFIGS: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {
    "M-5 (no CR, no L)": {
        "fashion-mnist": ("s2stdp+ncg-no-cr-no-nt.json", _cfg("s2stdp", 5, 300, 0.3, True, 0.005, 0.1, -0.05, None, 0)),
        "cifar10": ("s2stdp+ncg-no-cr-no-nt.json", _cfg("s2stdp", 5, 400, 0.3, True, 0.005, 0.1, -0.05, None, 0)),
        "mnist": ("none (derived: s2stdp+ncg.json without CR and L)",
                  _cfg("s2stdp", 5, 200, 0.3, True, 0.03, 0.05, -0.1, None, 0)),
    },
    "M-5+CR-2 (no L)": {
        "fashion-mnist": ("s2stdp+ncg-no-nt.json", _cfg("s2stdp", 5, 400, 0.3, True, 0.01, 0.01, -0.1, (1, 0.5), 0)),
        "cifar10": ("s2stdp+ncg-no-nt.json", _cfg("s2stdp", 5, 500, 0.3, True, 0.005, 0.1, -0.1, (1, 0.7), 0)),
        "mnist": ("s2stdp+ncg-no-nt.json", _cfg("s2stdp", 5, 250, 0.3, True, 0.02, 0.01, -0.05, (1, 0.7), 0)),
    },
}


def ablation(dataset: str, rows: tuple[str, ...] = tuple(ABLATION_ROWS)) -> dict[str, dict[str, Any]]:
    """Sec. 5.3 rows, each with the authors' own configuration for it (``ABLATION_CONFIGS``), its source
    file under ``authors_config``; ``rows``: keys of ``ABLATION_ROWS``."""
    chosen = {}
    for key in rows:
        source, setting = ABLATION_CONFIGS[ABLATION_ROWS[key]][dataset]
        chosen[ABLATION_ROWS[key]] = {**setting, "authors_config": f"config/STDP-CSNN/{AUTHORS_DIRS[dataset]}/{source}"}
    return chosen


@dataclass(frozen=True)
class Protocol:
    """What a run covers (the full one is the authors')."""

    folds: int = 10
    folds_run: int = 10
    epochs: int = 100
    patience: int = 10
    extractor_epochs: int = 100
    extractor_train: int | None = None  # None: the whole training set
    extractor_filters: int | None = None  # None: the paper's 128
    train_limit: int | None = None  # training examples used (folds split these)
    test_limit: int | None = None
    methods: tuple[str, ...] = ("s2stdp", "s2stdp+ncg", "sstdp", "sstdp+ncg")
    with_ablation: bool = True
    ablation_rows: tuple[str, ...] = tuple(ABLATION_ROWS)
    batch_size: int = 256


FULL = Protocol()
QUICK = Protocol(folds=2, folds_run=1, epochs=2, extractor_epochs=1, extractor_train=60, extractor_filters=16,
                 train_limit=80, test_limit=20, methods=("s2stdp", "s2stdp+ncg"), with_ablation=True)


def stratified_folds(labels: torch.Tensor, folds: int) -> list[torch.Tensor]:
    """Validation indices of each fold: per class, contiguous chunks in stored order
    (scikit-learn's StratifiedKFold(shuffle=False) assignment)."""
    chunks: list[list[torch.Tensor]] = [[] for _ in range(folds)]
    for c in labels.unique().tolist():
        idx = torch.nonzero(labels == c).flatten()
        for k, part in enumerate(torch.tensor_split(idx, folds)):
            chunks[k].append(part)
    return [torch.cat(parts).sort().values for parts in chunks]


#: test images the extractor's NeuroBench cost is counted on (its conv layer is re-run for them)
COST_IMAGES = 1000


def features(ctx: ExperimentContext, dataset: str, protocol: Protocol, with_cost: bool = True
             ) -> tuple[Dataset, dict[str, Any]]:
    """STDP-CSNN features of the training (limited) and test sets, extracted once and cached; with
    ``with_cost``, the extractor's NeuroBench cost on the first ``COST_IMAGES`` test images."""
    data = load_dataset(dataset, ctx.data_dir, "cpu", 0.0, ctx.seed, "unit")
    train_x, train_y = data.train_x[:protocol.train_limit], data.train_y[:protocol.train_limit]
    test_x, test_y = data.test_x[:protocol.test_limit], data.test_y[:protocol.test_limit]
    filters = {"filters": protocol.extractor_filters} if protocol.extractor_filters else {}
    config = paper_config(dataset, epochs=protocol.extractor_epochs, **filters)
    extractor = STDPCSNN(tuple(train_x.shape[1:]), config, torch.Generator().manual_seed(ctx.seed))
    cache_dir = ctx.out_dir / "cache"
    fit_images = data.train_x[:protocol.extractor_train]
    ext_key = cache_key(tensor_digest(extractor.weight), dataset, "extractor", len(fit_images),
                        f"{tensor_digest(fit_images)}{asdict(config)}")
    started = time.perf_counter()
    state = load_or_extract(cache_dir, ext_key, lambda: _fit_state(extractor, fit_images, ctx.seed))
    extractor.load_state_dict(_unpack(extractor, state))
    fit_s = time.perf_counter() - started
    _say(f"extractor ready ({fit_s:.0f} s); extracting features")
    feats = {}
    started = time.perf_counter()
    for split, x in (("train", train_x), ("test", test_x)):
        key = cache_key(extractor.fingerprint(), dataset, split, len(x), tensor_digest(x))
        feats[split] = load_or_extract(cache_dir, key, lambda x=x: extractor.to(ctx.device).encode(x.to(ctx.device)))
    cost_images = test_x[:COST_IMAGES]  # the extractor's cost does not depend on the classifier: once
    ext_cost = ({**extractor_cost(extractor.to(ctx.device), cost_images.to(ctx.device)), "images": len(cost_images)}
                if with_cost else None)
    info = {"extractor": asdict(config), "extractor_fingerprint": extractor.fingerprint(),
            "extractor_cost_per_inference": ext_cost,
            "extract_s": round(time.perf_counter() - started, 1), "extractor_fit_s": round(fit_s, 1),
            "feature_shape": list(feats["train"].shape[1:]),
            "feature_spike_fraction": float((feats["test"] < 1).float().mean())}
    spec = replace(data.spec, image_shape=tuple(feats["train"].shape[1:]))
    empty = feats["train"][:0]
    return Dataset(spec, feats["train"], train_y, empty, train_y[:0], feats["test"], test_y), info


def _fit_state(extractor: STDPCSNN, images: torch.Tensor, seed: int) -> torch.Tensor:
    """Train the extractor; its state flattened into one tensor (what the cache stores)."""
    extractor.fit(images, torch.Generator().manual_seed(seed))
    return torch.cat([t.flatten().float() for t in extractor.state_dict().values()])


def _unpack(extractor: STDPCSNN, flat: torch.Tensor) -> dict[str, torch.Tensor]:
    state = extractor.state_dict()
    parts = flat.split([t.numel() for t in state.values()])
    return {k: p.view_as(t).to(t.dtype) for (k, t), p in zip(state.items(), parts, strict=True)}


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def train_fold(ctx: ExperimentContext, feats: Dataset, fold_val: torch.Tensor, setting: dict[str, Any],
               protocol: Protocol, seed: int) -> dict[str, Any]:
    """One classifier on one fold; returns the run summary with the stop epoch's test accuracy."""
    from creditlab.train import TrainConfig, fit

    n = len(feats.train_x)
    keep = torch.ones(n, dtype=torch.bool)
    keep[fold_val] = False
    data = Dataset(feats.spec, feats.train_x[keep], feats.train_y[keep], feats.train_x[fold_val],
                   feats.train_y[fold_val], feats.test_x, feats.test_y)
    data = data.to(ctx.device)
    model = build_model("spiking-fc", feats.input_shape, feats.num_classes, seed=seed, **setting["model"])
    model = model.to(ctx.device)
    rule = build_rule(setting["rule"], model, **setting["rule_options"]).to(ctx.device)
    config = TrainConfig(epochs=protocol.epochs, batch_size=protocol.batch_size, lr=1.0, optimizer="sgd",
                         seed=seed, device=ctx.device, progress=False, early_stopping=protocol.patience)
    summary = fit(rule, data, config)  # the rule's phase hooks anneal / regulate per epoch
    stop = summary["history"][-1]  # where early stopping stopped (or the last epoch)
    with torch.no_grad():  # per-inference cost of the kept (best-epoch) classifier on the test features
        test_x = feats.test_x.flatten(1).to(model.weight.device)
        cost = classifier_cost(test_x, model.weight.detach(), model.spikes(test_x).times)
    return {"cost": cost, "stop_epoch": stop["epoch"], "test_accuracy": stop["test_accuracy"],
            "val_accuracy": stop["val_accuracy"], "best_epoch": summary.get("best_epoch"),
            "best_test_accuracy": summary["test_accuracy"], "history": summary["history"],
            "wall_time_s": summary["wall_time_s"]}


def run_protocol(ctx: ExperimentContext, dataset: str, protocol: Protocol, experiment: str | None = None
                 ) -> list[dict[str, Any]]:
    """Every method (and the ablation) of ``dataset`` under ``protocol``; one record per method."""
    torch.manual_seed(ctx.seed)
    feats, info = features(ctx, dataset, protocol)
    folds = stratified_folds(feats.train_y, protocol.folds)[:protocol.folds_run]
    settings = {m: CONFIGS[dataset][m] for m in protocol.methods}
    if protocol.with_ablation:
        settings.update(ablation(dataset, protocol.ablation_rows))
    records = []
    for method, setting in settings.items():
        runs = [train_fold(ctx, feats, val, setting, protocol, seed=k) for k, val in enumerate(folds)]
        accs = [100 * r["test_accuracy"] for r in runs]
        paper = paper_goupy.TEST_ACCURACY.get((dataset, method))
        best = [100 * r["best_test_accuracy"] for r in runs]
        final = {"test_accuracy_pct_mean": statistics.fmean(accs),
                 "test_accuracy_pct_sd": statistics.stdev(accs) if len(accs) > 1 else None,
                 "test_accuracy_pct_folds": accs, "stop_epochs": [r["stop_epoch"] for r in runs],
                 "best_epoch_test_accuracy_pct_folds": best, "best_epochs": [r["best_epoch"] for r in runs],
                 "paper_pct": paper.value if paper else None, "paper_sd": paper.sd if paper else None,
                 "paper_status": paper.status if paper else "not available",
                 "target_updates_last_epoch": runs[0]["history"][-1].get("target_updates"),
                 "cost_per_inference": _pipeline(info["extractor_cost_per_inference"], runs[0]["cost"]), **info}
        record = make_record("reproduce", f"{experiment or 'ncg-' + dataset}/{method}",
                             {**setting, "dataset": dataset, "protocol": asdict(protocol), "seed": ctx.seed,
                              "quick": ctx.quick},
                             final, epochs=runs[0]["history"], wall_time_s=sum(r["wall_time_s"] for r in runs),
                             device=ctx.device)
        ctx.record(record)
        records.append(record)
    _plot_updates(ctx, dataset, records)
    show_records(records, quick=ctx.quick)
    return records


def _pipeline(extractor: dict[str, Any], classifier: dict[str, Any]) -> dict[str, Any]:
    """NeuroBench's totals over the extractor's conv layer and the classifier (``cost.pipeline_cost``),
    with the classifier's event-driven ACs and output spikes at the top level."""
    return {**pipeline_cost({"extractor": extractor, "classifier": classifier}),
            "classifier_event_acs": classifier["event_acs"], "output_spikes": classifier["spikes"]}


def _plot_updates(ctx: ExperimentContext, dataset: str, records: list[dict[str, Any]]) -> None:
    """Per-neuron target-update counts of class 0's group over epochs, with and without CR."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = [r for r in records if r["name"].endswith(("M-5 (no CR, no L)", "M-5+CR-2 (no L)", "/s2stdp+ncg"))]
    if len(chosen) < 2:  # a partial rerun keeps the committed comparison figure
        return
    fig, axes = plt.subplots(1, len(chosen), figsize=(4 * len(chosen), 3), squeeze=False)
    for ax, record in zip(axes[0], chosen, strict=False):
        m = record["config"]["model"]["neurons_per_class"]
        counts = [e["target_updates"][:m] for e in record["epochs"]]
        for j in range(m):
            ax.plot(range(1, len(counts) + 1), [c[j] for c in counts], marker="o", label=f"n{j + 1}")
        ax.set_title(record["name"].split("/", 1)[1], fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("target updates (class 0)")
        ax.legend(fontsize=7)
    ctx.figure(fig, f"ncg_{dataset}_updates")


def _accuracy_rows(records: list[dict[str, Any]]) -> list[list[str]]:
    """One row per method: ours (mean ± sd over folds run) beside Table 1 (with its status)."""
    rows = []
    for r in records:
        f = r["final"]
        sd = f"{f['test_accuracy_pct_sd']:.2f}" if f["test_accuracy_pct_sd"] is not None else "n/a"
        paper = "not available"
        if f["paper_pct"] is not None:
            paper = f"{f['paper_pct']:.2f}" + (f" ± {f['paper_sd']}" if f["paper_sd"] is not None else "")
            paper += "" if f["paper_status"] == "verified" else f" ({f['paper_status']})"
        protocol = r["config"].get("protocol") or {}
        within = "–"
        if f["paper_pct"] is not None and f["paper_sd"] is not None:  # the bar: one sd plus 0.5 points
            gap = f["test_accuracy_pct_mean"] - f["paper_pct"]
            bar = f["paper_sd"] + 0.5
            within = f"{gap:+.2f} ({'within' if abs(gap) <= bar else 'outside'} ±{bar:.2f})"
        rows.append([str(r["name"]).split("/", 1)[-1], f"{f['test_accuracy_pct_mean']:.2f} ± {sd}",
                     str(len(f["test_accuracy_pct_folds"])), paper, within,
                     f"{protocol.get('folds_run')}/{protocol.get('folds')} folds, ≤ {protocol.get('epochs')} epochs, "
                     f"{protocol.get('train_limit') or 'all'} train images, extractor "
                     f"{protocol.get('extractor_epochs')} ep on {protocol.get('extractor_train') or 'all'}"])
    return rows


def show_records(records: list[dict[str, Any]], quick: bool = False) -> None:
    """Print the accuracy table of ``records`` (ours beside the paper's)."""
    print(f"\n{'method':<28} {'ours % (mean ± sd)':>22} {'folds':>5}  paper %"
          f"{'  (quick: smoke numbers, not results)' if quick else ''}")
    for row in _accuracy_rows(records):
        print(f"{row[0]:<28} {row[1]:>22} {row[2]:>5}  {row[3]}  {row[4]}")


def summary(records: list[dict[str, Any]]) -> list[Table]:
    """The report's table: test accuracy per method beside Table 1, with the protocol each ran at."""
    newest: dict[str, dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: str(r.get("timestamp", ""))):
        newest[str(record["name"])] = record
    return [Table(["method", "test acc. % (mean ± sd over folds)", "folds run", "Table 1 %",
                   "ours − Table 1 (bar: sd + 0.5)", "protocol"],
                  _accuracy_rows(list(newest.values())),
                  ["Test accuracy at the early-stopping epoch (the authors' score); the records also hold the "
                   "best epoch's. M-5 rows: the competition-regulation ablation (no paper number).",
                   f"Table 1: {paper_goupy.SOURCE}."])]


@register_headline("ncg", order=60)
def ncg_headline(records: list[dict[str, Any]]) -> list[Headline]:
    """Per dataset: S2-STDP and SSTDP with and without NCG beside Table 1."""
    rows = []
    for dataset, name in (("fashion-mnist", "ncg-fmnist"), ("cifar10", "ncg-cifar10"), ("mnist", "ncg-mnist")):
        newest = newest_runs(records, name + "/")
        methods = [m for m in ("s2stdp", "s2stdp+ncg", "sstdp", "sstdp+ncg") if m in newest]
        if not methods:
            continue
        theirs = [paper_goupy.TEST_ACCURACY.get((dataset, m)) for m in methods]
        protocol = newest[methods[0]]["config"].get("protocol") or {}
        rows.append(Headline(
            "Goupy, Tirilly & Bilasco 2024", f"{dataset}: NCG improves supervised STDP (test acc. %, 10-fold)",
            ", ".join(f"{m} {newest[m]['final']['test_accuracy_pct_mean']:.2f}" for m in methods),
            ", ".join(f"{m} {v.value:g}" for m, v in zip(methods, theirs, strict=True) if v is not None),
            least_sure([v.status for v in theirs if v is not None]),
            f"{protocol.get('folds_run')} of {protocol.get('folds')} folds, ≤ {protocol.get('epochs')} of 100 epochs, "
            f"{protocol.get('train_limit') or 'all'} train images; extractor {protocol.get('extractor_epochs')} "
            f"epochs on {protocol.get('extractor_train') or 'all'} images", "docs/papers/ncg.md"))
    for dataset, name in (("fashion-mnist", "ncg-fmnist"), ("cifar10", "ncg-cifar10"), ("mnist", "ncg-mnist")):
        newest = newest_runs(records, name + "/")
        keys = ("s2stdp", "M-5 (no CR, no L)", "M-5+CR-2 (no L)")
        if not all(k in newest for k in keys):
            continue
        # the same folds for every row: the first k, k the fewest any row ran (fold i is the same split
        # and seed in every record)
        shared = min(len(newest[k]["final"]["test_accuracy_pct_folds"]) for k in keys)
        acc = {k: statistics.fmean(newest[k]["final"]["test_accuracy_pct_folds"][:shared]) for k in keys}
        epochs = sorted({(newest[k]["config"].get("protocol") or {}).get("epochs") for k in keys}, key=str)
        counts = newest["M-5 (no CR, no L)"]["final"].get("target_updates_last_epoch") or []
        m = newest["M-5 (no CR, no L)"]["config"]["model"]["neurons_per_class"]
        share = max(counts[:m]) / max(1, sum(counts[:m])) if counts else float("nan")
        protocol = newest["M-5+CR-2 (no L)"]["config"].get("protocol") or {}
        rows.append(Headline(
            "Goupy, Tirilly & Bilasco 2024", f"{dataset} ablation: NCG with CR-2 beats M = 1 and M = 5 without CR; "
            "without CR one neuron takes most updates",
            f"M=1 {acc['s2stdp']:.2f}, M=5 no CR {acc['M-5 (no CR, no L)']:.2f}, "
            f"M=5 CR-2 {acc['M-5+CR-2 (no L)']:.2f}; "
            f"no CR: top neuron {100 * share:.0f}% of class 0's target updates", "no numbers in the paper's text",
            "not available",
            f"{shared} of {protocol.get('folds')} folds (the same for every row), ≤ "
            f"{' / '.join(map(str, epochs))} of 100 epochs; " + _ablation_configs(newest, keys, dataset),
            "docs/papers/ncg.md"))
    timing = _newest_side_by_side(records, like_for_like=True)
    other = _newest_side_by_side(records, like_for_like=False)
    if timing is not None or other is not None:
        shown = timing or other
        f, c = shown["final"], shown["config"]
        ours = (f"train {f['ratio_train_to_spikenn']:.2f}x, inference {f['ratio_inference_to_spikenn']:.2f}x "
                f"({f['train_samples_per_s']:.0f} / {f['inference_samples_per_s']:.0f} samples/s)")
        setting = _timing_setting(shown)
        if timing is not None and other is not None:
            o = other["final"]
            ours += (f"; other setting ({_timing_setting(other)}): train {o['ratio_train_to_spikenn']:.2f}x, "
                     f"inference {o['ratio_inference_to_spikenn']:.2f}x")
        rows.append(Headline(
            "Goupy, Tirilly & Bilasco 2024", "throughput of S2-STDP+NCG (4608 -> 50), ours over the authors' "
            f"SpikeNN, side by side{'' if timing is not None else ' (not like for like)'}",
            ours,
            f"SpikeNN {f['spikenn_train_samples_per_s']:.0f} / {f['spikenn_inference_samples_per_s']:.0f} samples/s",
            "measured", f"{setting}; {c.get('kernels')} kernels, median of {c.get('rounds')} interleaved rounds, "
            f"{c.get('samples')} samples", "docs/papers/ncg.md"))
    return rows


def _ablation_configs(newest: dict[str, dict[str, Any]], keys: tuple[str, ...], dataset: str) -> str:
    """Whether each ablation row ran the authors' own configuration for it (``ABLATION_CONFIGS``)."""
    missing = []
    for key in keys[1:]:
        _source, authors = ABLATION_CONFIGS[key][dataset]
        config = newest[key]["config"]
        if config.get("model") != authors["model"] or config.get("rule_options") != authors["rule_options"]:
            missing.append(key)
    if not missing:
        return "each row with the authors' own configuration for it (SpikeNN config/STDP-CSNN)"
    return f"{', '.join(missing)}: not the authors' configuration for the row"


def _timing_setting(record: dict[str, Any]) -> str:
    """How a throughput record was measured: threads (ours / SpikeNN's), inputs, configuration."""
    c = record["config"]
    inputs = c.get("inputs", "synthetic")
    inputs = "real Fashion-MNIST STDP-CSNN features" if inputs == "fashion-mnist" else "synthetic TTFS inputs"
    return (f"{c.get('threads')} thread(s) ours vs SpikeNN's 1, {inputs}, the authors' "
            f"{c.get('config', 'mnist')} configuration")


def _newest_side_by_side(records: list[dict[str, Any]], like_for_like: bool = True) -> dict[str, Any] | None:
    """The newest throughput record measured beside SpikeNN (``benchmarks/ncg_throughput.py --spikenn``),
    like for like (1 thread each, real Fashion-MNIST features, its configuration) or not."""
    timed = [r for r in records if r.get("kind") == "perf" and str(r.get("name", "")).startswith("ncg-throughput/")
             and "ratio_train_to_spikenn" in (r.get("final") or {}) and (r.get("config") or {}).get("kernels")
             and bool((r.get("config") or {}).get("like_for_like")) == like_for_like]
    return max(timed, key=lambda r: str(r.get("timestamp", ""))) if timed else None


#: ``creditlab reproduce ncg-* --opt KEY=VALUE``: any field of :class:`Protocol` (unset: the full or quick one)
OPTIONS = {
    "folds": ExperimentOption(None, "K of the stratified K-fold split (the paper: 10)", type=int, minimum=2),
    "folds_run": ExperimentOption(None, "how many of the K folds to run (the paper: all)", type=int, minimum=1),
    "epochs": ExperimentOption(None, "classifier epochs at most (the paper: 100)", type=int, minimum=1),
    "patience": ExperimentOption(None, "early-stopping patience on validation accuracy (the paper: 10)", type=int,
                                 minimum=1),
    "extractor_epochs": ExperimentOption(None, "STDP-CSNN training epochs (the paper: 100)", type=int, minimum=1),
    "extractor_train": ExperimentOption(None, "training images the extractor is fitted on (the paper: all)",
                                        type=int, minimum=1),
    "extractor_filters": ExperimentOption(None, "conv filters of the extractor (the paper: 128)", type=int,
                                          minimum=1),
    "train_limit": ExperimentOption(None, "training images used (folds split these; the paper: all)", type=int,
                                    minimum=1),
    "test_limit": ExperimentOption(None, "test images used (the paper: all)", type=int, minimum=1),
    "methods": ExperimentOption(None, "methods run, e.g. [s2stdp,s2stdp+ncg]", type=list,
                                choices=tuple(CONFIGS["mnist"]), single=True, non_empty=False),
    "with_ablation": ExperimentOption(None, "also run the competition-regulation ablation (true/false)", type=bool),
    "ablation_rows": ExperimentOption(None, "which ablation rows run with with_ablation, e.g. [cr2] (default: both)",
                                      type=list, choices=tuple(ABLATION_ROWS), single=True),
    "batch_size": ExperimentOption(None, "samples between optimizer steps (online either way)", type=int, minimum=1),
}


def protocol_from(quick: bool, options: dict[str, Any]) -> Protocol:
    """The quick or full protocol with the options that were set; ValueError for a bad value."""
    given = {k: v for k, v in options.items() if v is not None}
    if "methods" in given:
        methods = [given["methods"]] if isinstance(given["methods"], str) else list(given["methods"])
        unknown = [m for m in methods if m not in CONFIGS["mnist"]]
        if unknown or not (methods or given.get("with_ablation", True)):
            raise OptionError(f"--opt methods: unknown {unknown or 'empty list (without the ablation)'}; "
                              f"valid: {', '.join(CONFIGS['mnist'])}")
        given["methods"] = tuple(methods)
    if "ablation_rows" in given:
        rows = [given["ablation_rows"]] if isinstance(given["ablation_rows"], str) else list(given["ablation_rows"])
        unknown = [r for r in rows if r not in ABLATION_ROWS]
        if unknown or not rows:
            raise OptionError(f"--opt ablation_rows: unknown {unknown or 'empty list'}; "
                              f"valid: {', '.join(ABLATION_ROWS)}")
        given["ablation_rows"] = tuple(rows)
    protocol = replace(QUICK if quick else FULL, **given)
    if not 1 <= protocol.folds_run <= protocol.folds or protocol.folds < 2:
        raise OptionError(f"--opt folds must be >= 2 and folds_run in [1, folds]; got folds={protocol.folds}, "
                         f"folds_run={protocol.folds_run}")
    return protocol


def _experiment(dataset: str, name: str) -> Any:
    def run(ctx: ExperimentContext) -> list[dict[str, Any]]:
        return run_protocol(ctx, dataset, protocol_from(ctx.quick, ctx.options or {}), name)

    return run


for _dataset, _name in (("mnist", "ncg-mnist"), ("fashion-mnist", "ncg-fmnist"), ("cifar10", "ncg-cifar10")):
    register_experiment(_name, f"Goupy et al. 2024: S2-STDP/SSTDP +NCG on STDP-CSNN features ({_dataset}), "
                        "10-fold, with the CR ablation", summary=summary, options=OPTIONS)(_experiment(_dataset, _name))
