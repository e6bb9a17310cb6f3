"""Step time of GAIT-prop, TP and DTP as a ratio to BP on the same invertible MLP, named by what each
ratio compares, and the cost of the parts of an exact step (regularizer, inverse refresh).

Model: ``invertible-mlp`` on MNIST-shaped input (784), ``depth`` hidden layers of each ``widths`` value
(784 = the 2020 paper's square net; other widths get a dense first layer), batch ``batch`` (60, the
2020 code's), real MNIST (first 8 batches, inputs in [0, 1]) when available. A step is what the trainer
does: ``rule.step`` (update into ``.grad``), Adam, ``apply_constraints`` (the inverse refresh).
Variants per width and dtype, interleaved in one process (``creditlab.bench.perf.time_interleaved``):
bp; bp+reg (BP plus the same orthogonality regularizer gradient, λ = 0.1 off-diagonal); gaitprop
(λ = 0.1, the paper's); gaitprop-inv (the same with the explicit inverse); gaitprop-noreg (λ = 0); tp
(λ = 1000). (DTP trains an ordinary MLP since issue #25; records made before hold a ``dtp`` row of the
former invertible-net variant.) Three ratios are named in every record (``final["ratios"]``):

- ``gaitprop_with_regularizer_over_bp``: gaitprop over plain bp (the regularizer's cost included);
- ``gaitprop_over_bp_with_regularizer``: gaitprop over bp+reg (like for like: both pay the regularizer);
- ``credit_assignment_over_bp``: gaitprop-noreg over bp (the target propagation alone).

Parts: the regularizer gradient of every square layer with W W^T by the blocked symmetric product
(:func:`creditlab.models.invertible.symmetric_gram`, what the rules use) and by the full product, timed
interleaved; the inverse refresh (LU factors and the explicit inverse). The authors' code runs
GAIT-prop at 5.39x its BP step with the regularizer and 1.15x without (CPU 2 threads, 784 x 4, batch 60,
float64; their BP has no regularizer), not measured side by side here.

    creditlab reproduce gaitprop-step-time --threads 1 --opt widths=[256,784] --opt dtypes=[float64,float32]
    python benchmarks/gaitprop_step_time.py ...   # the same, records appended to --out
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from creditlab.bench.perf import Contender, make_batches, measure_step_memory, summarize_times, time_interleaved
from creditlab.experiments import ExperimentContext, ExperimentOption, register_experiment, register_headline
from creditlab.models import apply_constraints, build_model
from creditlab.models.invertible import orthogonality_penalty_gradient, symmetric_gram
from creditlab.report.headline import Headline
from creditlab.report.render import Table
from creditlab.results import make_record
from creditlab.rules import build_rule

NAME = "gaitprop-step-time"
#: the authors' GAIT-prop step over their BP step (median, CPU 2 threads, 784 x 4, batch 60, float64)
AUTHORS_RATIO = {"gaitprop": 5.39, "gaitprop-noreg": 1.15}
#: the regularizer of the 2020 README (λ, form), the one gaitprop and bp+reg pay
REGULARIZER = (0.1, "off-diagonal")
#: label -> (rule, rule options, inverse_method of the model, λ of a regularizer added to the rule's update)
VARIANTS = {
    "bp": ("bp", {}, "solve", 0.0),
    "bp+reg": ("bp", {}, "solve", REGULARIZER[0]),
    "gaitprop": ("gaitprop", {"orthogonality": REGULARIZER[0]}, "solve", 0.0),
    "gaitprop-inv": ("gaitprop", {"orthogonality": REGULARIZER[0]}, "inverse", 0.0),
    "gaitprop-noreg": ("gaitprop", {"orthogonality": 0.0}, "solve", 0.0),
    "tp": ("tp", {"orthogonality": 1000.0}, "solve", 0.0),
}
#: ratio name -> (numerator variant, denominator variant)
RATIOS = {"gaitprop_with_regularizer_over_bp": ("gaitprop", "bp"),
          "gaitprop_over_bp_with_regularizer": ("gaitprop", "bp+reg"),
          "credit_assignment_over_bp": ("gaitprop-noreg", "bp")}


@dataclass
class RegularizedContender(Contender):
    """A rule whose update gets the orthogonality regularizer's gradient added before the optimizer."""

    strength: float = 0.0
    form: str = REGULARIZER[1]

    def step(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        """rule.step, + λ dR/dW on every square layer, Adam, constraints."""
        self.rule.step(inputs, targets)
        params = dict(self.rule.model.named_parameters())
        for name, gradient in self.rule.model.orthogonality_gradients(self.strength, self.form).items():
            params[name].grad.add_(gradient)
        self.optimizer.step()
        apply_constraints(self.rule.model)


def contenders(width: int, depth: int, dtype: str, seed: int = 0) -> dict[str, Contender]:
    """One Contender per variant, each on its own copy of one seeded model, Adam(1e-4)."""
    base = build_model("invertible-mlp", (1, 28, 28), 10, width=width, depth=depth, dtype=dtype, seed=seed)
    out: dict[str, Contender] = {}
    for label, (rule_name, options, inverse_method, strength) in VARIANTS.items():
        model = copy.deepcopy(base)
        model.inverse_method = inverse_method
        rule = build_rule(rule_name, model, **options)
        optimizer = torch.optim.Adam(rule.model.parameters(), lr=1e-4, fused=True)
        out[label] = (RegularizedContender(label, rule, optimizer, strength) if strength
                      else Contender(label, rule, optimizer))
    return out


def refresh_time(width: int, depth: int, dtype: str, repeats: int, inverse_method: str = "solve") -> float:
    """Median seconds of one refresh of every inverse of a ``depth``-hidden-layer net of ``width``."""
    model = build_model("invertible-mlp", (1, 28, 28), 10, width=width, depth=depth, dtype=dtype, seed=0,
                        inverse_method=inverse_method)
    for index in range(1, model.depth):
        model.inverse_weight(index)  # mark every inverse as in use
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.refresh_inverses()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _full_gram_gradient(weight: torch.Tensor) -> torch.Tensor:
    """The off-diagonal regularizer's dR/dW with W W^T as one full product (the reference timing)."""
    gram = weight @ weight.T
    gram.diagonal().zero_()
    return 4.0 * gram @ weight


def regularizer_times(width: int, depth: int, dtype: str, repeats: int) -> dict[str, float]:
    """Median ms of the regularizer gradient of every square layer (λ = 0.1): symmetric and full W W^T,
    interleaved; and the largest difference of the two W W^T (relative to its largest entry)."""
    model = build_model("invertible-mlp", (1, 28, 28), 10, width=width, depth=depth, dtype=dtype, seed=0)
    weights = [layer.weight.detach() for i, layer in enumerate(model.layers) if model.is_square(i)]
    ways: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "symmetric": lambda w: orthogonality_penalty_gradient(w, REGULARIZER[1]), "full": _full_gram_gradient}
    times: dict[str, list[float]] = {k: [] for k in ways}
    for round_ in range(repeats + 1):
        for key in list(ways)[round_ % 2:] + list(ways)[:round_ % 2]:
            start = time.perf_counter()
            for weight in weights:
                _ = REGULARIZER[0] * ways[key](weight)
            if round_:  # the first round warms up
                times[key].append(time.perf_counter() - start)
    # W W^T itself (the regularizer's gradient is round-off where W is orthogonal, as at initialization)
    worst = max(float((symmetric_gram(w) - w @ w.T).abs().max() / (w @ w.T).abs().max()) for w in weights)
    return {"regularizer_ms": 1000 * statistics.median(times["symmetric"]),
            "regularizer_full_gram_ms": 1000 * statistics.median(times["full"]),
            "gram_max_rel_diff": worst}


def flop_counts(width: int, depth: int, batch: int, in_features: int = 784) -> dict[str, float]:
    """Multiply-add flops (2 per MAC) per training step of each part, from the shapes alone.

    bp: forward + input gradient + weight gradient, 3 products of (B x N_in) by (N_in x N_out) per layer;
    the local-target rules do the same three (forward, inverse application, local weight gradient).
    regularizer: W W^T (2 N^3; the blocked symmetric product (k + 1) / 2k of it) and (W W^T - D) W
    (2 N^3), per square layer. Inverse refresh per inverted layer (all square layers but the first): LU
    2/3 N^3 (getrf) or the explicit inverse 2 N^3 (getrf + getri).
    """
    from creditlab.models.invertible import GRAM_BLOCK_ROWS

    shapes = [(in_features, width)] + [(width, width)] * depth  # (N_in, N_out): hidden layers + output
    square = sum(1 for n_in, n_out in shapes if n_in == n_out)
    blocks = -(-width // GRAM_BLOCK_ROWS)
    inverted = depth  # layers 2..L
    return {"bp": sum(6 * batch * n_in * n_out for n_in, n_out in shapes),
            "regularizer": square * (2 * (blocks + 1) / (2 * blocks) + 2) * width ** 3,
            "regularizer_full_gram": square * 4 * width ** 3,
            "lu_refresh": inverted * 2 / 3 * width ** 3,
            "inv_refresh": inverted * 2 * width ** 3}


def measure(width: int, depth: int, dtype: str, batches: list, rounds: int, warmup: int, part_repeats: int,
            batch: int) -> dict[str, Any]:
    """The record's ``final``: a row per variant, the named ratios, the parts and the flop counts."""
    group = contenders(width, depth, dtype)
    times = time_interleaved({k: c.step for k, c in group.items()}, batches, rounds, warmup, "cpu")
    rows = summarize_times(times, batch)
    for label, contender in group.items():
        rows[label].update(measure_step_memory(contender, batches[0], "cpu"))
    paper_setting = width == 784 and dtype == "float64"
    variants = {label: {**row, "authors_ratio": AUTHORS_RATIO.get(label) if paper_setting else None}
                for label, row in rows.items()}
    ratios = {name: rows[top]["median_ms"] / rows[bottom]["median_ms"] for name, (top, bottom) in RATIOS.items()}
    parts = {"bp_ms": rows["bp"]["median_ms"], **regularizer_times(width, depth, dtype, part_repeats),
             "lu_refresh_ms": 1000 * refresh_time(width, depth, dtype, part_repeats, "solve"),
             "inv_refresh_ms": 1000 * refresh_time(width, depth, dtype, part_repeats, "inverse")}
    flops = flop_counts(width, depth, batch)
    parts["floor_ratio_measured"] = (parts["bp_ms"] + parts["regularizer_ms"] + parts["lu_refresh_ms"]) / parts["bp_ms"]
    parts["floor_ratio_flops"] = (flops["bp"] + flops["regularizer"] + flops["lu_refresh"]) / flops["bp"]
    parts["floor_ratio_flops_noreg"] = (flops["bp"] + flops["lu_refresh"]) / flops["bp"]
    return {**variants, "ratios": ratios, "parts": parts, "flops": flops}


def print_measurement(width: int, dtype: str, final: dict[str, Any]) -> None:
    """The console table of one (width, dtype)."""
    print(f"\n{dtype}, width {width}:  {'variant':<15} {'median ms':>10} {'ratio to bp':>11} {'authors':>8} "
          f"{'step peak MiB':>13}")
    for label in VARIANTS:
        row = final[label]
        authors = row.get("authors_ratio")
        print(f"{'':<22}{label:<15} {row['median_ms']:>10.1f} {row['ratio_to_bp']:>11.2f} "
              f"{authors if authors is not None else '':>8} {row['step_peak_bytes'] / 2**20:>13.1f}")
    for name, value in final["ratios"].items():
        print(f"{'':<22}{name}: {value:.2f}x")
    parts, flops = final["parts"], final["flops"]
    print(f"{'':<22}parts: bp step {parts['bp_ms']:.1f} ms ({flops['bp'] / 1e9:.2f} GFLOP), regularizer "
          f"{parts['regularizer_ms']:.1f} ms ({flops['regularizer'] / 1e9:.2f}; full W W^T "
          f"{parts['regularizer_full_gram_ms']:.1f} ms, {flops['regularizer_full_gram'] / 1e9:.2f}), LU refresh "
          f"{parts['lu_refresh_ms']:.1f} ms, inverse refresh {parts['inv_refresh_ms']:.1f} ms")


def _as_list(value: Any) -> list[str]:
    return [str(v) for v in (value if isinstance(value, list | tuple) else str(value).split(","))
            if str(v) != ""]


@register_experiment(NAME, "GAIT-prop, TP, DTP step time over BP on the invertible MLP (with and without the "
                           "orthogonality regularizer, named ratios) and the parts of an exact step",
                     options={"widths": ExperimentOption([256, 784], "hidden widths", item=int, minimum=1, single=True),
                              "dtypes": ExperimentOption(["float64", "float32"], "model dtypes",
                                                         choices=("float64", "float32"), single=True),
                              "depth": ExperimentOption(4, "hidden layers", minimum=1),
                              "batch": ExperimentOption(60, "batch size (the 2020 code's 60)", minimum=1),
                              "rounds": ExperimentOption(10, "interleaved timed rounds", minimum=1),
                              "warmup": ExperimentOption(2, "untimed steps per variant first", minimum=0),
                              "part_repeats": ExperimentOption(3, "repeats of each part's timing", minimum=1),
                              "refresh_widths": ExperimentOption([256, 512, 1024, 2048],
                                                                 "widths of the inverse-refresh rows ([]: none)",
                                                                 item=int, minimum=1, non_empty=False)},
                     summary=lambda records: summary_tables(records))
def run(ctx: ExperimentContext) -> list[dict[str, Any]]:
    """Time every variant per (dtype, width); one record each, then one per refresh width."""
    o = ctx.options
    widths, dtypes = [int(w) for w in _as_list(o.get("widths", [256, 784]))], _as_list(o.get("dtypes", ["float64"]))
    depth, batch = int(o.get("depth", 4)), int(o.get("batch", 60))
    rounds, warmup, repeats = int(o.get("rounds", 10)), int(o.get("warmup", 2)), int(o.get("part_repeats", 3))
    if ctx.quick:
        widths, dtypes, rounds, warmup, repeats = [64], ["float64"], 2, 1, 1
    batches, source = make_batches("invertible-mlp", batch, "cpu")
    config_base = {"depth": depth, "batch": batch, "rounds": rounds, "warmup": warmup,
                   "threads": torch.get_num_threads(), "data": source, "quick": ctx.quick}
    print(f"invertible-mlp, depth {depth}, batch {batch}, {torch.get_num_threads()} thread(s), {source}")
    records = []
    for dtype in dtypes:
        for width in widths:
            final = measure(width, depth, dtype, batches, rounds, warmup, repeats, batch)
            print_measurement(width, dtype, final)
            config = {**config_base, "width": width, "dtype": dtype, "variants": VARIANTS,
                      "regularizer": list(REGULARIZER)}
            records.append(make_record("reproduce", NAME, config, final, device=ctx.device))
            ctx.record(records[-1])
    for dtype in dtypes:
        for width in ([] if ctx.quick else [int(w) for w in _as_list(o.get("refresh_widths", []))]):
            lu = refresh_time(width, depth, dtype, repeats, "solve")
            inverse = refresh_time(width, depth, dtype, repeats, "inverse")
            print(f"  {dtype} width {width:>5}: LU {1000 * lu:9.1f} ms, inverse {1000 * inverse:9.1f} ms per refresh")
            records.append(make_record("reproduce", f"{NAME}/inverse-refresh", {**config_base, "width": width,
                                                                                 "dtype": dtype},
                                       {"refresh_ms": 1000 * lu, "lu_refresh_ms": 1000 * lu,
                                        "inverse_refresh_ms": 1000 * inverse}, device=ctx.device))
            ctx.record(records[-1])
    return records


def _newest_step_times(records: list[dict[str, Any]]) -> dict[tuple[int, str], dict[str, Any]]:
    """(width, dtype) -> the newest step-time record that names the three ratios."""
    newest: dict[tuple[int, str], dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: str(r.get("timestamp", ""))):
        if (record.get("name") == NAME and "ratios" in (record.get("final") or {})
                and not (record.get("config") or {}).get("quick")):
            config = record["config"]
            newest[(int(config["width"]), str(config["dtype"]))] = record
    return newest


def summary_tables(records: list[dict[str, Any]]) -> list[Table]:
    """Per (width, dtype): the three named ratios, every variant's ratio to BP, and the regularizer's parts."""
    newest = _newest_step_times(records)
    if not newest:
        return []
    others = ("gaitprop-inv", "tp", "dtp")  # dtp: the former invertible-net variant, in older records only
    rows, parts = [], []
    for (width, dtype), record in sorted(newest.items(), key=lambda item: (-item[0][0], item[0][1])):
        f, c = record["final"], record["config"]
        rows.append([f"{width}, {dtype}", f"{f['bp']['median_ms']:.1f} ms",
                     *[f"{f['ratios'][name]:.2f}×" for name in RATIOS],
                     *[f"{f[label]['ratio_to_bp']:.2f}×" if label in f else "–" for label in others],
                     f"{c.get('threads')} thread(s), {record.get('commit', '?')}"])
        p = f["parts"]
        parts.append([f"{width}, {dtype}", f"{p['bp_ms']:.1f}", f"{p['regularizer_ms']:.1f}",
                      f"{p['regularizer_full_gram_ms']:.1f}", f"{p.get('gram_max_rel_diff', float('nan')):.1e}",
                      f"{p['lu_refresh_ms']:.1f}", f"{p['inv_refresh_ms']:.1f}", f"{p['floor_ratio_flops']:.2f}",
                      f"{p['floor_ratio_flops_noreg']:.2f}"])
    columns = ["width, dtype", "bp step", "gaitprop (λ 0.1) / bp", "gaitprop / bp+reg (both λ 0.1)",
               "credit assignment alone: gaitprop-noreg / bp", *[f"{label} / bp" for label in others],
               "threads, commit"]
    notes = ["Median step time over BP's on the same seeded net, all variants interleaved in one process (CPU). "
             "bp+reg is BP plus the same orthogonality regularizer gradient (λ = 0.1, off-diagonal form) that "
             "gaitprop adds; tp uses λ = 1000. The authors' code: GAIT-prop 5.39× its BP with the regularizer, "
             "1.15× without (784, float64, 2 threads; their BP has no regularizer; not measured side by side)."]
    return [Table(columns, rows, notes, title="gaitprop-step-time: step time over BP, named ratios"),
            Table(["width, dtype", "bp step ms", "regularizer ms (symmetric W Wᵀ)", "regularizer ms (full W Wᵀ)",
                   "W Wᵀ max rel. diff", "LU refresh ms", "inverse refresh ms", "floor by flops", "floor, no reg."],
                  parts, ["Parts of one step, medians. The regularizer of every square layer with W Wᵀ by the "
                          "blocked symmetric product (what the rules use) and by one full product, interleaved; "
                          "floor: (BP + regularizer + LU refresh) / BP by flop counts."],
                  title="gaitprop-step-time: parts of an exact step")]


@register_headline("gaitprop-step-time", order=51)
def step_time_headline(records: list[dict[str, Any]]) -> list[Headline]:
    """GAIT-prop's step time over BP at the paper's 784 x 4, float64: the three named ratios."""
    record = _newest_step_times(records).get((784, "float64"))
    if record is None:
        return []
    ratios, config = record["final"]["ratios"], record["config"]
    return [Headline(
        "Ahmad et al. 2020", "GAIT-prop step time over BP (4×784 invertible MLP, batch 60, float64)",
        f"with its regularizer over plain BP {ratios['gaitprop_with_regularizer_over_bp']:.2f}×; over BP with the "
        f"same regularizer {ratios['gaitprop_over_bp_with_regularizer']:.2f}×; credit assignment alone "
        f"{ratios['credit_assignment_over_bp']:.2f}×",
        "authors' code: 5.39× with the regularizer, 1.15× without, over their plain BP", "secondary",
        f"CPU, {config.get('threads')} thread(s), median of {config.get('rounds')} interleaved rounds",
        "docs/rules/gaitprop.md")]
