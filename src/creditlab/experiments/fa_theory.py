"""Song, Xu & Lafferty (NeurIPS 2021): convergence and alignment of FA in two-layer networks.

Three reproductions (settings: ``shared/research/gevb_fa.md`` section 4, checked against the authors'
``align_neurips_simulations`` code):

* ``fa-theory-alignment``: cos(b, beta) at convergence vs width p, one line per weight decay lambda.
* ``fa-theory-loss``: training loss vs step at p = 3200 (exponential decay = straight line on log axes).
* ``fa-theory-mnist``: 784-1000-10 ReLU with FA in the first layer, lambda in {0, 0.1, 0.3} on the
  readout, next to backprop from the same initial network; accuracy and alignments per epoch.

The authors' numbers below were re-aggregated from their released CSVs
(``dataframes/df_*_autograd_l2_v6.csv``: 50 runs per cell; ``df_mnist_performance_2l_v6_job*.csv``:
10 jobs, test accuracy after each epoch).
"""

from __future__ import annotations

import math
import time
import zlib
from pathlib import Path
from typing import Any

import torch

from creditlab.analysis.fa_theory import (
    AUTHOR_SETTINGS,
    SweepSetting,
    init_stacked_nets,
    run_width,
    runs_per_batch,
    stacked_accuracy,
    stacked_sgd_step,
    summarize,
    train_in_batches,
)
from creditlab.errors import CreditlabError
from creditlab.experiments import ExperimentContext, ExperimentOption, register_experiment, register_headline
from creditlab.papers import PaperValue
from creditlab.papers.song2021 import ALIGNMENT as AUTHOR_ALIGNMENT
from creditlab.papers.song2021 import MNIST_ACCURACY as AUTHOR_MNIST_ACCURACY
from creditlab.report.headline import Headline
from creditlab.report.render import Table
from creditlab.results import append_record, make_record, read_records

PANEL_ACTIVATIONS = ("relu", "linear", "tanh")   # the paper's three alignment panels


#: version of the random streams of the alignment and loss sweeps, stored in each record's config as
#: ``stream``. 1 (records without the key): keyed on ``len(activation)``, so relu and tanh (4 letters)
#: drew identical inputs, teachers and initial weights at the same seed and width. 2: keyed on the
#: activation's name (:func:`activation_key`).
STREAM_VERSION = 2


def activation_key(activation: str) -> int:
    """A stable integer for an activation's name (CRC-32 of its UTF-8), a part of its random streams."""
    return zlib.crc32(activation.encode("utf-8"))


def stream_version(record: dict[str, Any]) -> int:
    """The random-stream version a sweep record was drawn with (1 for records written before the key)."""
    return int((record.get("config") or {}).get("stream", 1))


def _generator(seed: int, *parts: int) -> torch.Generator:
    key = seed
    for part in parts:
        key = (key * 1_000_003 + part) % (2 ** 62)
    return torch.Generator().manual_seed(key)


_DATA_NAMES = {"nn": "targets from a random teacher network of the same width and activation",
               "lr": "random linear targets y = X theta"}


def _authors_comparison(activation: str, lam: float, width: int, ours: dict[str, float]) -> dict[str, Any]:
    """The authors' cell (mean, sd, n) and whether our mean is within two of their sd; {} where they have none."""
    theirs = AUTHOR_ALIGNMENT[activation].get(lam, {}).get(width)
    if theirs is None:
        return {}
    return {"authors": {"mean": theirs.value, "sd": theirs.sd, "n": theirs.runs},
            "within_2sd_of_authors": abs(ours["mean"] - theirs.value) <= 2 * theirs.sd}


def alignment_sweep(ctx: ExperimentContext, activation: str, widths: tuple[int, ...],
                    runs: int | dict[int, int], base_steps: int | None = None,
                    name: str = "fa-theory-alignment") -> dict[str, Any]:
    """Width sweep of cos(b, beta) for one activation with the authors' lambdas and step size.

    runs: per-width number of seeds (an int for all widths). base_steps overrides the 5000-step base of
    the step budget (quick mode only). Writes one record and the figure ``alignment_<activation>``.
    """
    setting = AUTHOR_SETTINGS[activation]
    if base_steps is not None:
        setting = SweepSetting(**{**setting.__dict__, "base_steps": base_steps})
    runs_at = {p: (runs if isinstance(runs, int) else runs[p]) for p in widths}
    start = time.perf_counter()
    cells = []
    for width in widths:
        cell = run_width(setting, width, runs_at[width], _generator(ctx.seed, width, activation_key(activation)),
                         device=ctx.device)
        for i, lam in enumerate(cell.lambdas):
            ours = summarize(cell.alignment[i])
            entry = {"activation": activation, "lambda": lam, "width": width, "ours": ours,
                     "alignment_values": cell.alignment[i].tolist(),
                     "mean_steps": float(cell.steps[i].double().mean()),
                     "max_steps": int(cell.steps[i].max()),
                     "mean_final_loss": float(cell.final_loss[i].double().mean()),
                     "runs_hit_step_cap": int(cell.hit_max_steps[i].sum()),
                     "cell_wall_time_s": cell.wall_time_s, **_authors_comparison(activation, lam, width, ours)}
            cells.append(entry)
            theirs = entry.get("authors")
            print(f"[{name}] {activation} p={width} lambda={lam:g}: ours {ours['mean']:.3f} +- "
                  f"{ours['sd']:.3f} (n={ours['n']})"
                  + (f"  authors {theirs['mean']:.3f} +- {theirs['sd']:.3f}" if theirs else ""), flush=True)
    compared = [c["within_2sd_of_authors"] for c in cells if "within_2sd_of_authors" in c]
    config = {"activation": activation, "data": setting.data, "step_size": setting.step_size,
              "lambdas": list(setting.lambdas), "n": setting.n, "d": setting.d, "widths": list(widths),
              "runs": runs_at, "base_steps": setting.base_steps, "check_every": setting.check_every,
              "plateau_tol": setting.plateau_tol, "seed": ctx.seed, "quick": ctx.quick, "stream": STREAM_VERSION}
    final = {"cells": cells, "cells_compared": len(compared), "cells_within_2sd": int(sum(compared))}
    record = make_record("reproduce", name, config, final, wall_time_s=time.perf_counter() - start,
                         device=ctx.device)
    ctx.record(record)
    draw_alignment_figure(ctx, activation, cells)
    return record


def draw_alignment_figure(ctx: ExperimentContext, activation: str,
                          fallback_cells: list[dict[str, Any]] | None = None) -> Path | None:
    """Redraw ``alignment_<activation>.png`` from every recorded cell (seeds pooled) in ``ctx.out_dir``."""
    cells = recorded_cells(ctx.out_dir / "results.jsonl", activation, ctx.quick) or fallback_cells
    if not cells:
        return None
    return ctx.figure(_alignment_figure(activation, cells), f"alignment_{activation}" + ("_quick" if ctx.quick else ""))


def recorded_cells(path: Any, activation: str, quick: bool = False) -> list[dict[str, Any]]:
    """:func:`pooled_cells` of the alignment records in a results file."""
    return pooled_cells(read_records(path), activation, quick)


def _stream_partners(activation: str) -> list[str]:
    """Activations whose version-1 streams were those of ``activation`` (same name length)."""
    return [other for other in AUTHOR_SETTINGS if other != activation and len(other) == len(activation)]


def _alignment_records(records: list[dict[str, Any]], activation: str, quick: bool) -> list[dict[str, Any]]:
    return [r for r in records if r.get("name") == "fa-theory-alignment"
            and (r.get("config") or {}).get("activation") == activation
            and bool((r.get("config") or {}).get("quick")) == quick]


def pooled_cells(records: list[dict[str, Any]], activation: str, quick: bool = False) -> list[dict[str, Any]]:
    """Every (width, lambda) cell of ``activation`` in the alignment records, with the runs of every seed
    pooled.

    Cells are run one width at a time and a few runs at a time (the wide ones take hours), so a cell's
    runs may sit in several records. Runs with different seeds, or of different stream versions
    (:data:`STREAM_VERSION`), are independent draws and are pooled (``seeds`` lists them: ``"7"`` for
    version 1, ``"7/s2"`` for version 2); of several records with the same seed and version (which may
    repeat the same runs) the one with the most runs counts, then the latest. The pooled mean is
    compared with the authors'. ``shared_stream_runs`` counts the cell's version-1 runs whose seed and
    width also have a version-1 record of a :func:`_stream_partners` activation: those runs drew the same
    random numbers as the partner panel's.
    """
    partner_draws = {(int(r["config"].get("seed", 0)), cell["width"])
                     for other in _stream_partners(activation)
                     for r in _alignment_records(records, other, quick) if stream_version(r) == 1
                     for cell in r.get("final", {}).get("cells", [])}
    per_draw: dict[tuple[int, float], dict[tuple[int, int], dict[str, Any]]] = {}
    for record in _alignment_records(records, activation, quick):
        draw = (stream_version(record), int(record["config"].get("seed", 0)))
        for cell in record.get("final", {}).get("cells", []):
            draws = per_draw.setdefault((cell["width"], cell["lambda"]), {})
            if draw not in draws or cell["ours"]["n"] >= draws[draw]["ours"]["n"]:
                draws[draw] = cell
    pooled = []
    for (width, lam), draws in sorted(per_draw.items()):
        order = sorted(draws, key=lambda d: (d[1], d[0]))
        values = [v for draw in order for v in draws[draw]["alignment_values"]]
        ours = summarize(torch.tensor(values, dtype=torch.float64))
        shared = sum(draws[d]["ours"]["n"] for d in order if d[0] == 1 and (d[1], width) in partner_draws)
        pooled.append({"activation": activation, "lambda": lam, "width": width, "ours": ours,
                       "alignment_values": values,
                       "seeds": {(str(seed) if version == 1 else f"{seed}/s{version}"):
                                 draws[(version, seed)]["ours"]["n"] for version, seed in order},
                       "shared_stream_runs": shared,
                       **_authors_comparison(activation, lam, width, ours)})
    return pooled


def alignment_summary(records: list[dict[str, Any]]) -> list[Table]:
    """One table per activation: pooled cells (rows lambda, columns width) beside the authors' 50-run cells."""
    quick = all(r.get("config", {}).get("quick") for r in records)
    tables = []
    for activation in AUTHOR_SETTINGS:
        cells = {(c["width"], c["lambda"]): c for c in pooled_cells(records, activation, quick)}
        if not cells:
            continue
        authors = AUTHOR_ALIGNMENT[activation]
        widths = sorted({w for by_width in authors.values() for w in by_width} | {w for w, _ in cells})
        rows, marked = [], False
        for lam in sorted({lam for _, lam in cells} | set(authors)):
            row, compared, within, z_scores = [f"{lam:g}"], 0, 0, []
            for width in widths:
                cell, theirs = cells.get((width, lam)), authors.get(lam, {}).get(width)
                ours = "–"
                if cell is not None:
                    o = cell["ours"]
                    ours = f"{o['mean']:.3f}" + (f"±{o['sd']:.3f}" if o["n"] > 1 else "") + f" ({o['n']})"
                    if cell["shared_stream_runs"]:
                        ours += f" ‡{cell['shared_stream_runs']}"
                        marked = True
                    if "within_2sd_of_authors" in cell:
                        compared += 1
                        within += cell["within_2sd_of_authors"]
                        ours += "" if cell["within_2sd_of_authors"] else " ✗"
                    if theirs is not None and o["n"] >= 10:
                        z_scores.append(abs(o["mean"] - theirs.value)
                                        / math.sqrt(o["sd"] ** 2 / o["n"] + theirs.sd ** 2 / theirs.runs))
                row.append(ours + (f" / {theirs.value:.3f}±{theirs.sd:.3f}" if theirs else ""))
            rows.append([*row, f"{within}/{compared}", f"{max(z_scores):.1f}" if z_scores else "–"])
        note = ("cos(β, b) at the end of training; each cell ours mean±sd (runs, all seeds "
                "pooled) / the authors' mean±sd over 50 runs; ✗: our mean is more than two of their sd away. "
                "max |z|: the largest difference of the two means in standard errors, "
                "(ours - theirs) / sqrt(sd_o²/n_o + sd_a²/n_a), over this row's cells with at least 10 runs.")
        notes = [note]
        if marked:
            notes.append(f"‡k: k of the cell's runs share their random stream with the "
                         f"{' and '.join(_stream_partners(activation))} panel's runs at the same seed and width "
                         "(records before stream version 2 keyed the streams on the length of the activation's "
                         "name): identical inputs, teachers, initial weights and feedback where both records have "
                         "the same number of runs, else the inputs of the first runs. Within this panel they are "
                         "independent draws and are pooled; the panels are not independent in these cells.")
        tables.append(Table(["λ", *[f"p = {w}" for w in widths], "within 2 sd", "max |z|"], rows, notes,
                            title=f"{activation}: {_DATA_NAMES[AUTHOR_SETTINGS[activation].data]}"))
    return tables


def _alignment_figure(activation: str, cells: list[dict[str, Any]]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    lambdas = sorted({c["lambda"] for c in cells})
    colors = plt.cm.viridis([i / max(1, len(lambdas) - 1) for i in range(len(lambdas))])
    for lam, color in zip(lambdas, colors, strict=True):
        rows = sorted((c for c in cells if c["lambda"] == lam), key=lambda c: c["width"])
        ws = [c["width"] for c in rows]
        ax.errorbar(ws, [c["ours"]["mean"] for c in rows], yerr=[c["ours"]["sd"] if c["ours"]["n"] > 1 else 0
                                                               for c in rows],
                    marker="o", capsize=3, color=color, label=f"λ={lam:g} (ours)")
        theirs = AUTHOR_ALIGNMENT[activation].get(lam, {})
        if theirs:
            tw = sorted(theirs)
            ax.errorbar(tw, [theirs[w].value for w in tw], yerr=[theirs[w].sd for w in tw], color=color,
                        linestyle="--", alpha=0.45, capsize=2, label=f"λ={lam:g} (authors)")
    ax.set_xscale("log")
    ax.set_xlabel("hidden width p")
    ax.set_ylabel("alignment cos(β, b)")
    ax.set_title(f"FA alignment vs width ({activation})")
    ax.legend(fontsize=7, ncol=2)
    return fig


def loss_curves(ctx: ExperimentContext, activation: str, width: int, runs: int, steps: int
                ) -> dict[str, Any]:
    """Training loss of FA at one width for every lambda (fixed step count, no plateau rule)."""
    setting = AUTHOR_SETTINGS[activation]
    lambdas = tuple(float(v) for v in setting.lambdas)
    gen = _generator(ctx.seed, width, 7, activation_key(activation))
    total = len(lambdas) * runs
    lam = torch.tensor(lambdas).repeat_interleave(runs)
    chunk = runs_per_batch(setting, width, total, ctx.device)
    start = time.perf_counter()
    parts = train_in_batches(setting, width, lam, gen, chunk, ctx.device, min_steps=steps, use_plateau=False,
                             record_loss=True)
    history = torch.cat([part.loss_history for part in parts]).view(len(lambdas), runs, -1).double()
    alignment = torch.cat([part.alignment for part in parts])
    log_loss = history.clamp_min(1e-300).log10()
    checkpoints = sorted({0, steps // 10, steps // 4, steps // 2, steps - 1})
    per_lambda = []
    for i, lam_value in enumerate(lambdas):
        mean_log = log_loss[i].mean(0)
        # a straight line on log loss = exponential decay; the first tenth is the fast phase (for lambda
        # = 0 the second half sits near float32 resolution), the second half the late phase
        per_lambda.append({"lambda": lam_value,
                           "mean_loss_at": {str(t): float(history[i, :, t].mean()) for t in checkpoints},
                           "sd_loss_at": {str(t): float(history[i, :, t].std()) if runs > 1 else 0.0
                                          for t in checkpoints},
                           "log10_loss_slope_first_tenth_per_1000_steps":
                               _slope_per_1000_steps(mean_log, 0, max(2, steps // 10)),
                           "log10_loss_slope_second_half_per_1000_steps":
                               _slope_per_1000_steps(mean_log, steps // 2, steps),
                           "final_alignment": summarize(alignment.view(len(lambdas), runs)[i])})
        print(f"[fa-theory-loss] {activation} lambda={lam_value:g}: loss {per_lambda[-1]['mean_loss_at']}",
              flush=True)
    config = {"activation": activation, "data": setting.data, "step_size": setting.step_size,
              "lambdas": list(lambdas), "n": setting.n, "d": setting.d, "width": width, "runs": runs,
              "steps": steps, "seed": ctx.seed, "quick": ctx.quick, "stream": STREAM_VERSION}
    stride = max(1, steps // 500)
    curves = {f"{lam_value:g}": log_loss[i].mean(0)[::stride].tolist() for i, lam_value in enumerate(lambdas)}
    record = make_record("reproduce", "fa-theory-loss", config,
                         {"per_lambda": per_lambda, "mean_log10_loss_curves": curves, "curve_stride": stride},
                         wall_time_s=time.perf_counter() - start, device=ctx.device)
    ctx.record(record)
    ctx.figure(_loss_figure(activation, lambdas, history, width), f"loss_{activation}"
               + ("_quick" if ctx.quick else ""))
    return record


def _slope_per_1000_steps(values: torch.Tensor, lo: int, hi: int) -> float:
    """Least-squares slope of ``values`` (one per step) over steps [lo, hi), per 1000 steps."""
    span = torch.arange(lo, hi, dtype=torch.float64)
    fit = torch.linalg.lstsq(torch.stack([span, torch.ones_like(span)], 1), values[lo:hi].unsqueeze(1))
    return 1000 * float(fit.solution[0])


def _loss_figure(activation: str, lambdas: tuple[float, ...], history: torch.Tensor, width: int) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    steps = torch.arange(history.shape[-1])
    colors = plt.cm.viridis([i / max(1, len(lambdas) - 1) for i in range(len(lambdas))])
    for i, (lam, color) in enumerate(zip(lambdas, colors, strict=True)):
        mean = history[i].mean(0)
        sd = history[i].std(0) if history.shape[1] > 1 else torch.zeros_like(mean)
        ax.plot(steps, mean, color=color, label=f"λ={lam:g}")
        ax.fill_between(steps, (mean - sd).clamp_min(1e-12), mean + sd, color=color, alpha=0.2)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training MSE")
    ax.set_title(f"FA training loss, {activation}, p={width}")
    ax.legend()
    return fig


def _activations(value: Any, option: str = "activation") -> list[str]:
    """The ``activation`` option as a list of names (one name or a list); CreditlabError if unknown."""
    names = [value] if isinstance(value, str) else list(value)
    unknown = [name for name in names if name not in AUTHOR_SETTINGS]
    if unknown or not names:
        raise CreditlabError(f"--opt {option}={value!r}: unknown activation; valid: {', '.join(AUTHOR_SETTINGS)}")
    return names


def _widths(value: Any) -> tuple[int, ...]:
    """The ``widths`` option (one width or a list) as positive ints; CreditlabError otherwise."""
    widths = (value,) if isinstance(value, int) else tuple(value)
    if not widths or not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths):
        raise CreditlabError(f"--opt widths={value!r}: expected a positive width or a list, e.g. [800,1600]")
    return widths


def _positive(value: Any, option: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise CreditlabError(f"--opt {option}={value!r}: expected a positive integer")
    return value


def _activation_option(help_line: str) -> ExperimentOption:
    """``activation``: one of the authors' activations, or a non-empty list of them."""
    return ExperimentOption(None, help_line, type=list, item=str, choices=tuple(AUTHOR_SETTINGS), single=True)


ACTIVATION_HELP = ("activation(s) to run, one of " + ", ".join(AUTHOR_SETTINGS)
                   + " or a list [default: the paper's panels relu, linear, tanh; quick: relu]")


@register_experiment(
    "fa-theory-alignment", "Song, Xu & Lafferty 2021: cos(beta, b) vs width, per lambda",
    summary=alignment_summary,
    options={"activation": _activation_option(ACTIVATION_HELP),
             "widths": ExperimentOption(None, "widths p, e.g. [800,1600] [default: the authors' 200..12800; "
                                              "quick: [200]]", type=list, item=int, minimum=1, single=True),
             "runs": ExperimentOption(None, "runs per (width, lambda) [default: 50; quick: 2]", type=int, minimum=1)})
def run_alignment(ctx: ExperimentContext) -> list[dict[str, Any]]:
    """Full: ReLU, linear and tanh panels, p = 200..12800, 50 runs per (p, lambda) (the authors' protocol;
    on one CPU core the linear panel took 36 minutes, while the ReLU panel is about 12 core-hours and
    tanh more: a GPU job, ``--device cuda``).
    Quick: ReLU, p = 200, 2 runs, a 500-step base budget (smoke check only).

    Chosen cells, added run by run (a different ``--seed`` gives independent runs; every record is
    pooled into one table and figure)::

        creditlab reproduce fa-theory-alignment --opt activation=relu --opt widths=[800,1600] \
            --opt runs=50 --seed 7 --threads 1 --out results/fa_theory
    """
    options = ctx.options
    default = ["relu"] if ctx.quick else list(PANEL_ACTIVATIONS)
    activations = _activations(options.get("activation") or default)
    records = []
    for activation in activations:
        setting = AUTHOR_SETTINGS[activation]
        widths = _widths(options["widths"]) if options.get("widths") is not None else (
            (200,) if ctx.quick else setting.widths)
        runs = _positive(options["runs"], "runs") if options.get("runs") is not None else (
            2 if ctx.quick else setting.runs)
        records.append(alignment_sweep(ctx, activation, widths, runs, base_steps=500 if ctx.quick else None))
    return records


def loss_summary(records: list[dict[str, Any]]) -> list[Table]:
    """One table per loss record (activation, width, runs): the mean training loss (± sd over runs) at
    the recorded steps, the slope of log10 loss over the second half, and the final alignment, per λ."""
    tables = []
    records = [r for r in records if (r.get("final") or {}).get("per_lambda") and "activation" in r.get("config", {})]
    for record in sorted(records, key=lambda r: (r["config"]["activation"], r["config"]["width"])):
        config, per_lambda = record["config"], record["final"]["per_lambda"]
        runs = int(config.get("runs", 1))
        steps = list(per_lambda[0]["mean_loss_at"]) if per_lambda else []
        rows = []
        for cell in per_lambda:
            losses = [f"{cell['mean_loss_at'][s]:.2e}" + (f" ± {cell['sd_loss_at'][s]:.1e}" if runs > 1 else "")
                      for s in steps]
            alignment = cell["final_alignment"]
            rows.append([f"{cell['lambda']:g}", *losses, f"{cell['log10_loss_slope_second_half_per_1000_steps']:.2f}",
                         f"{alignment['mean']:.3f}"])
        title = (f"{config['activation']}, p = {config['width']}, {runs} run{'s' if runs > 1 else ''}, "
                 f"{config.get('steps')} steps")
        tables.append(Table(["λ", *[f"loss at step {s}" for s in steps], "log10 loss slope / 1000 steps",
                             "final cos(β, b)"], rows, title=title))
    if tables:
        tables[-1].notes.append("Mean training MSE over runs (± sd where there are several runs); the slope is a "
                                "least-squares fit over the second half of training. The curves: "
                                "`results/fa_theory/loss_ACTIVATION.png`.")
    return tables


@register_experiment(
    "fa-theory-loss", "Song, Xu & Lafferty 2021: FA training loss vs step at p = 3200", summary=loss_summary,
    options={"activation": _activation_option(ACTIVATION_HELP),
             "widths": ExperimentOption(None, "widths p [default: [3200]; quick: [400]]", type=list, item=int,
                                        minimum=1, single=True),
             "runs": ExperimentOption(None, "runs per lambda [default: 50; quick: 3]", type=int, minimum=1),
             "steps": ExperimentOption(None, "steps per run [default: 5000; quick: 1000]", type=int, minimum=1)})
def run_loss(ctx: ExperimentContext) -> list[dict[str, Any]]:
    """Full: p = 3200, 50 runs per lambda, 5000 steps, ReLU, linear and tanh. Quick: ReLU, p = 400, 3 runs,
    1000 steps. E.g. ``creditlab reproduce fa-theory-loss --opt activation=tanh --opt widths=[3200]``."""
    options = ctx.options
    activations = _activations(options.get("activation") or (["relu"] if ctx.quick else list(PANEL_ACTIVATIONS)))
    widths = _widths(options["widths"]) if options.get("widths") is not None else ((400,) if ctx.quick else (3200,))
    runs = _positive(options["runs"], "runs") if options.get("runs") is not None else (3 if ctx.quick else 50)
    steps = _positive(options["steps"], "steps") if options.get("steps") is not None else (
        1000 if ctx.quick else 5000)
    return [loss_curves(ctx, activation, width, runs, steps) for activation in activations for width in widths]


@register_experiment(
    "fa-theory-figures", "Song, Xu & Lafferty 2021: redraw the alignment figures from the records in --out",
    options={"activation": _activation_option("activation(s) to redraw [default: every one recorded]")})
def run_figures(ctx: ExperimentContext) -> list[dict[str, Any]]:
    """Redraw ``alignment_<activation>.png`` in ``--out`` from every recorded cell there (no training;
    no records). E.g. ``creditlab reproduce fa-theory-figures --out results/fa_theory``."""
    chosen = ctx.options.get("activation")
    for activation in _activations(chosen) if chosen else list(AUTHOR_SETTINGS):
        if (path := draw_alignment_figure(ctx, activation)) is not None:
            print(f"wrote {path}")
    return []


def mnist_experiment(ctx: ExperimentContext, epochs: int, width: int = 1000, lr: float = 1e-2,
                     batch_size: int = 600, lambdas: tuple[float, ...] = (0.0, 0.1, 0.3),
                     train_subset: int | None = None) -> dict[str, Any]:
    """FA nets (one per lambda) and a BP net, all from one N(0, 1) initial network, trained together.

    Data: MNIST, all 60k training images, standardised with (0.1307, 0.3081), flattened; mean
    cross-entropy (log-softmax + NLL) as in the authors' ``mnist.py``. Metrics after every epoch: test
    accuracy, and on the epoch's last batch cos(B, beta) and mean_i cos(e_i B, e_i beta). The BP net's
    cos(B, beta) is a control (B plays no part in its training).
    """
    from creditlab.data import batch_indices, load_dataset

    data = load_dataset("mnist", data_dir=ctx.data_dir, device=ctx.device, val_fraction=0.0,
                        normalization="standard")
    train_x, train_y = data.train_x.flatten(1), data.train_y
    if train_subset is not None:
        train_x, train_y = train_x[:train_subset], train_y[:train_subset]
    test_x, test_y = data.test_x.flatten(1), data.test_y
    labels = [f"FA λ={lam:g}" for lam in lambdas] + ["BP λ=0"]
    nets = init_stacked_nets(train_x.shape[1], width, 10, (*lambdas, 0.0), (True,) * len(lambdas) + (False,),
                             _generator(ctx.seed, 784, width), device=ctx.device)
    shuffle = _generator(ctx.seed, 600, 1)
    history: list[dict[str, Any]] = []
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        losses = []
        batches = list(batch_indices(train_x.shape[0], batch_size, shuffle, ctx.device))
        for number, index in enumerate(batches):  # alignment metrics on the epoch's last batch only
            metrics = stacked_sgd_step(nets, train_x[index], train_y[index], lr,
                                       measure=number == len(batches) - 1)
            losses.append(metrics["loss"])
        accuracy, test_loss = stacked_accuracy(nets, test_x, test_y)
        row = {"epoch": epoch, "elapsed_s": round(time.perf_counter() - start, 1)}
        for m, label in enumerate(labels):
            row[label] = {"test_accuracy": float(accuracy[m]), "test_loss": float(test_loss[m]),
                          "train_loss": float(torch.stack(losses)[:, m].mean()),
                          "weight_alignment": float(metrics["weight_alignment"][m]),
                          "vec_alignment": float(metrics["vec_alignment"][m])}
        history.append(row)
        append_record(ctx.out_dir / "fa-theory-mnist-progress.jsonl", row)  # kept if the run is cut short
        print(f"[fa-theory-mnist] epoch {epoch}: " + ", ".join(
            f"{label} acc {row[label]['test_accuracy']:.4f} wal {row[label]['weight_alignment']:.3f} "
            f"val {row[label]['vec_alignment']:.3f}" for label in labels), flush=True)
    final = {label: history[-1][label] for label in labels}
    final["epochs_completed"] = epochs
    final["authors_test_accuracy_at_this_epoch"] = {
        f"FA λ={lam:g}": _mean_sd(AUTHOR_MNIST_ACCURACY.get(lam, {}).get(epochs)) for lam in lambdas}
    final["authors_test_accuracy_300_epochs"] = {
        f"FA λ={lam:g}": _mean_sd(AUTHOR_MNIST_ACCURACY.get(lam, {}).get(300)) for lam in lambdas}
    config = {"width": width, "lr": lr, "batch_size": batch_size, "epochs": epochs, "lambdas": list(lambdas),
              "normalization": "standard (0.1307, 0.3081)", "loss": "cross-entropy (log-softmax + NLL)",
              "init": "N(0,1) W, beta, B; no biases; 1/sqrt(p) readout", "train_subset": train_subset,
              "bp_baseline": "same initial W, beta; lambda 0", "seed": ctx.seed, "quick": ctx.quick}
    record = make_record("reproduce", "fa-theory-mnist", config, final, epochs=history,
                         wall_time_s=time.perf_counter() - start, device=ctx.device)
    ctx.record(record)
    ctx.figure(_mnist_figure(history, labels, lambdas), "mnist" + ("_quick" if ctx.quick else ""))
    return record


def _mean_sd(value: PaperValue | None) -> tuple[float | None, float | None] | None:
    """(mean, sd) of an authors' number, as the records store it."""
    return None if value is None else (value.value, value.sd)


def _mnist_figure(history: list[dict[str, Any]], labels: list[str], lambdas: tuple[float, ...]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    epochs = [row["epoch"] for row in history]
    colors = plt.cm.viridis([i / max(1, len(labels) - 1) for i in range(len(labels))])
    for label, color in zip(labels, colors, strict=True):
        for ax, key in zip(axes, ("test_accuracy", "weight_alignment", "vec_alignment"), strict=True):
            ax.plot(epochs, [row[label][key] for row in history], color=color, label=label,
                    linestyle=":" if label.startswith("BP") else "-")
    for lam, color in zip(lambdas, colors, strict=False):
        points = {e: v for e, v in AUTHOR_MNIST_ACCURACY.get(lam, {}).items() if e <= max(epochs)}
        if points:
            axes[0].errorbar(list(points), [v.value for v in points.values()],
                             yerr=[v.sd for v in points.values()],
                             color=color, marker="x", linestyle="none", label=f"authors λ={lam:g}")
    for ax, title in zip(axes, ("test accuracy", "weight alignment cos(B, β)",
                                "error-signal alignment mean cos(eB, eβ)"), strict=True):
        ax.set_xlabel("epoch")
        ax.set_title(title)
    axes[0].legend(fontsize=7)
    return fig


@register_experiment(
    "fa-theory-mnist", "Song, Xu & Lafferty 2021: MNIST 784-1000-10 FA with readout decay",
    options={"epochs": ExperimentOption(None, "epochs [default: 300; quick: 1]", type=int, minimum=1),
             "train_subset": ExperimentOption(None, "train on the first N images [default: all 60k; quick: 3000]",
                                              type=int, minimum=1)})
def run_mnist(ctx: ExperimentContext) -> list[dict[str, Any]]:
    """Full: 300 epochs, SGD lr 1e-2, batch 600 (the authors' schedule; hours on 2 CPU cores). Quick: 1 epoch
    on 3k training images."""
    options = ctx.options
    epochs = _positive(options["epochs"], "epochs") if options.get("epochs") is not None else (1 if ctx.quick else 300)
    subset = options.get("train_subset")
    subset = _positive(subset, "train_subset") if subset is not None else (3000 if ctx.quick else None)
    return [mnist_experiment(ctx, epochs=epochs, train_subset=subset)]


@register_headline("fa-theory", order=20)
def fa_theory_headline(records: list[dict[str, Any]]) -> list[Headline]:
    """One row per alignment panel (cells within two of the authors' sd, runs behind them) and the MNIST run."""
    rows = []
    for activation in AUTHOR_SETTINGS:
        cells = [c for c in pooled_cells(records, activation) if "within_2sd_of_authors" in c]
        if not cells:
            continue
        within = sum(c["within_2sd_of_authors"] for c in cells)
        full = sum(c["ours"]["n"] >= 50 for c in cells)
        runs = sorted(c["ours"]["n"] for c in cells)
        rows.append(Headline(
            "Song, Xu & Lafferty 2021", f"alignment cos(β, b) vs width and λ, {activation} panel",
            f"{within} of {len(cells)} cells within 2 sd of the authors' means", "50-run means per cell",
            "verified", f"{full} of {len(cells)} cells at ≥ 50 runs (fewest {runs[0]})", "docs/papers/fa-theory.md"))
    mnist = [r for r in records if r.get("name") == "fa-theory-mnist" and not (r.get("config") or {}).get("quick")
             and "authors_test_accuracy_300_epochs" in (r.get("final") or {})]
    if mnist:
        final, config = mnist[-1]["final"], mnist[-1]["config"]
        labels = [label for label in final.get("authors_test_accuracy_300_epochs", {}) if label in final]
        authors = final["authors_test_accuracy_300_epochs"]
        rows.append(Headline(
            "Song, Xu & Lafferty 2021", "MNIST 784-1000-10 test accuracy (%), FA with readout decay λ",
            ", ".join(f"{label} {100 * final[label]['test_accuracy']:.2f}" for label in labels),
            ", ".join(f"{label} {100 * authors[label][0]:.2f}" for label in labels), "verified",
            f"{final.get('epochs_completed')} of 300 epochs, seed {config.get('seed')} (authors: 10 runs)",
            "docs/papers/fa-theory.md"))
    return rows
