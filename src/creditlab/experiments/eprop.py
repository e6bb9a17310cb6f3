"""e-prop (Bellec et al. 2020): the evidence-accumulation protocol of the authors' tutorial, and the
memory / step-time scaling of e-prop against BPTT with the sequence length.

``eprop-evidence`` follows ``tutorial_evidence_accumulation_with_alif.py`` (IGITUGraz/eligibility_propagation):
50 LIF + 50 ALIF neurons, Adam (lr 0.005), batch 64, a fresh batch of the cue task every iteration;
every 10 iterations the error on one fresh validation batch is checked, and when it is below 7 % the
error on 8 more batches decides whether training stops; then the error on 4 fresh test batches. Every
rule sees the same batches (the same seeded streams). ``task=paper`` is the paper's 2250-step task;
``task=short`` (the default on a CPU) the same task compressed to 235 steps (:mod:`creditlab.data.generated`).

``eprop-scaling``: peak tensor memory of one step (``creditlab.bench.perf``'s CPU method) of online e-prop,
autodiff e-prop and BPTT at T = 250, 1000, 4000, and the step time of each over BPTT's at T = 1000,
interleaved in one process (median of ``rounds``, order rotated).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

from creditlab.data.generated import EVIDENCE, EVIDENCE_SHORT, EvidenceTask
from creditlab.experiments import ExperimentContext, ExperimentOption, register_experiment
from creditlab.models import build_model
from creditlab.papers.bellec2020 import EVIDENCE_ITERATIONS, EVIDENCE_STOP_ERROR
from creditlab.report.render import Table, fmt
from creditlab.results import make_record
from creditlab.rules import build_rule
from creditlab.seeding import seeded_generator
from creditlab.tasks import SEQUENCE_CLASSIFICATION

#: contender label -> (rule, rule options)
CONTENDERS: dict[str, tuple[str, dict[str, Any]]] = {
    "eprop-random": ("eprop", {"feedback": "random"}),
    "eprop-symmetric": ("eprop", {"feedback": "symmetric"}),
    "eprop-adaptive": ("eprop", {"feedback": "adaptive"}),
    "bptt": ("bptt", {}),
}
TASKS = {"paper": EVIDENCE, "short": EVIDENCE_SHORT}
QUICK_TASK = EvidenceTask(n_cues=3, t_cue=5, t_interval=8, delay=10, recall=10)

def _newest(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    newest: dict[str, dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: str(r.get("timestamp", ""))):
        if not (record.get("config") or {}).get("quick"):
            newest[str(record.get("name", "?")).split("/", 1)[-1]] = record
    return newest


def evidence_tables(records: list[dict[str, Any]]) -> list[Table]:
    """Per task and contender (newest non-quick record): iterations to the stopping criterion, test error."""
    rows = []
    for label, record in _newest(records).items():
        final, config = record["final"], record["config"]
        stop = f"{final['iterations']}" if final["stopped"] else f"not reached in {final['iterations']}"
        rows.append([label, str(config.get("steps")), stop, f"{100 * final['test_error']:.1f}",
                     "yes" if final.get("reached_target") else "no", fmt(final.get("median_step_ms"), 3),
                     f"{config.get('batch_size')} × Adam {config.get('lr')}"
                     + (f", {config.get('implementation')}" if label.split("/")[-1].startswith("eprop") else "")])
    notes = [f"Stopping criterion: validation error < {100 * EVIDENCE_STOP_ERROR.value:g} % on one batch, confirmed "
             f"on 8 more (authors' tutorial); target: within {EVIDENCE_ITERATIONS.value:g} iterations "
             f"({EVIDENCE_ITERATIONS.status}: {EVIDENCE_ITERATIONS.source}). Test error: 4 fresh batches."]
    return [Table(["task/contender", "steps T", "iterations to < 7 %", "test error (%)", "target met",
                   "ms/step", "setting"], rows, notes, "e-prop evidence accumulation")]


EVIDENCE_OPTIONS = {
    "task": ExperimentOption("short", "paper: the 2250-step task; short: the same task in 235 steps",
                             choices=tuple(TASKS)),
    "rules": ExperimentOption(["eprop-random", "eprop-symmetric", "bptt"], "contenders", choices=tuple(CONTENDERS)),
    "max_iterations": ExperimentOption(500, "training iterations at most (the issue's target: within 500)",
                                       minimum=1),
    "batch_size": ExperimentOption(64, "examples per iteration (authors: 64)", minimum=1),
    "lr": ExperimentOption(0.005, "Adam learning rate (authors: 0.005)", above=0),
    "stop_error": ExperimentOption(0.07, "stop when the validation error is below this (authors: 0.07)",
                                   above=0, maximum=1),
    "validate_every": ExperimentOption(10, "iterations between validation checks (authors: 10)", minimum=1),
    "implementation": ExperimentOption("autodiff", "e-prop's implementation (same update; autodiff is the "
                                       "authors' default and faster on a CPU)", choices=("online", "autodiff")),
}


def _error(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        correct = SEQUENCE_CLASSIFICATION.metric_sums(model(x), y)["correct"]
    return 1.0 - float(correct) / len(x)


def train_until_criterion(label: str, task: EvidenceTask, settings: dict[str, Any], seed: int,
                          device: str = "cpu") -> dict[str, Any]:
    """One contender through the authors' loop (module docstring); its iterations, errors and times."""
    rule_name, rule_options = CONTENDERS[label]
    if rule_name == "eprop":
        rule_options = {**rule_options, "implementation": settings["implementation"], "seed": seed}
    torch.manual_seed(seed)
    model = build_model("lsnn", (task.steps, 40), 2).to(device)
    rule = build_rule(rule_name, model, **rule_options).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings["lr"])
    train_stream = seeded_generator(seed, "eprop-evidence", "train")
    val_stream = seeded_generator(seed, "eprop-evidence", "val")

    def batch(stream: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = task.generate(settings["batch_size"], stream)
        return x.to(device), y.to(device)

    val_errors, losses, step_s = [], [], []
    iterations, stopped = settings["max_iterations"], False
    for k in range(settings["max_iterations"] + 1):
        if k % settings["validate_every"] == 0:
            val_errors.append([k, _error(model, *batch(val_stream))])
            if k > 0 and val_errors[-1][1] < settings["stop_error"]:
                confirm = statistics.fmean(_error(model, *batch(val_stream)) for _ in range(8))
                if confirm < settings["stop_error"]:
                    iterations, stopped = k, True
                    break
        if k == settings["max_iterations"]:
            break
        x, y = batch(train_stream)
        started = time.perf_counter()
        out = rule.step(x, y)
        optimizer.step()
        step_s.append(time.perf_counter() - started)
        losses.append(float(out.loss))
    test_stream = seeded_generator(seed, "eprop-evidence", "test")
    test_error = statistics.fmean(_error(model, *batch(test_stream)) for _ in range(4))
    return {"iterations": iterations, "stopped": stopped, "test_error": test_error, "val_errors": val_errors,
            "train_losses": losses, "median_step_ms": 1000 * statistics.median(step_s) if step_s else None,
            "train_time_s": sum(step_s)}


@register_experiment("eprop-evidence", "Bellec et al. 2020: evidence accumulation, e-prop (random, symmetric) "
                     "beside BPTT, the authors' stopping protocol", summary=evidence_tables,
                     options=EVIDENCE_OPTIONS)
def run_evidence(ctx: ExperimentContext) -> list[dict[str, Any]]:
    """Each contender until the authors' stopping criterion (or ``max_iterations``); one record each."""
    settings = dict(ctx.options)
    task = TASKS[settings["task"]]
    if ctx.quick:
        task, settings = QUICK_TASK, {**settings, "max_iterations": 3, "batch_size": 8, "validate_every": 2}
    records = []
    for label in settings["rules"]:
        started = time.perf_counter()
        result = train_until_criterion(label, task, settings, ctx.seed, ctx.device)
        config = {**settings, "rule": label, "steps": task.steps, "seed": ctx.seed, "quick": ctx.quick,
                  "threads": torch.get_num_threads(), "task_timing": task.__dict__,
                  "paper_stop_error": EVIDENCE_STOP_ERROR.value, "paper_iterations": EVIDENCE_ITERATIONS.value}
        final = {k: result[k] for k in ("iterations", "stopped", "test_error", "median_step_ms", "train_time_s")}
        final["reached_target"] = bool(result["stopped"] and result["iterations"] <= EVIDENCE_ITERATIONS.value)
        record = make_record("reproduce", f"eprop-evidence/{settings['task']}/{label}", config, final,
                             epochs=[{"iteration": k, "val_error": e} for k, e in result["val_errors"]],
                             wall_time_s=time.perf_counter() - started, device=ctx.device)
        ctx.record(record)
        records.append(record)
        print(f"{label}: {'stopped' if result['stopped'] else 'did not stop'} at iteration {result['iterations']}, "
              f"test error {100 * result['test_error']:.1f} %, {final['median_step_ms']:.0f} ms/step")
    return records


SCALING_OPTIONS = {
    "steps": ExperimentOption([250, 1000, 4000], "sequence lengths T for the memory table", minimum=1),
    "batch_size": ExperimentOption(16, "examples per step", minimum=1),
    "time_steps": ExperimentOption(1000, "sequence length of the step-time ratio", minimum=1),
    "time_batch_size": ExperimentOption(64, "examples per step of the step-time ratio", minimum=1),
    "rounds": ExperimentOption(3, "interleaved timing rounds", minimum=1),
}
SCALING_CONTENDERS: dict[str, tuple[str, dict[str, Any]]] = {
    "bptt": ("bptt", {}),
    "eprop-online": ("eprop", {"feedback": "random", "implementation": "online"}),
    "eprop-autodiff": ("eprop", {"feedback": "random", "implementation": "autodiff"}),
}


def _scaling_task(steps: int) -> EvidenceTask:
    """The cue task stretched or squeezed to ``steps`` (7 cues of 10 ms every 20 ms, recall 10 % of T)."""
    recall = max(1, steps // 10)
    n_cues, interval = (7, 20) if steps >= 7 * 20 + recall + 1 else (1, 1)
    return EvidenceTask(n_cues=n_cues, t_cue=min(10, interval), t_interval=interval,
                        delay=steps - n_cues * interval - recall, recall=recall)


def scaling_tables(records: list[dict[str, Any]]) -> list[Table]:
    """Peak step memory per contender and T; step time over BPTT's."""
    newest = _newest(records)
    memory = {(r["config"]["rule"], r["config"]["steps"]): r for k, r in newest.items() if k.startswith("memory/")}
    steps = sorted({t for _, t in memory})
    labels = list(dict.fromkeys(rule for rule, _ in memory))
    rows = [[label, *(fmt(memory[label, t]["final"]["step_peak_mib"], 3) if (label, t) in memory else "–"
                      for t in steps)] for label in labels]
    batch = next(iter(memory.values()))["config"]["batch_size"] if memory else "?"
    tables = [Table(["contender", *(f"T = {t} (MiB)" for t in steps)], rows,
                    [f"Peak of tensor allocations during one step (rule.step), batch {batch}, LSNN 50 LIF + 50 ALIF, "
                     "40 inputs, CPU (torch profiler)."], "Peak step memory vs sequence length")]
    timing = [r for k, r in newest.items() if k.startswith("time/")]
    if timing:
        rows = [[r["config"]["rule"], fmt(r["final"]["median_step_ms"], 4), f"{r['final']['ratio_to_bptt']:.2f}"]
                for r in timing]
        config = timing[0]["config"]
        tables.append(Table(["contender", "median ms/step", "over BPTT"], rows,
                            [f"T = {config['steps']}, batch {config['batch_size']}, {config['rounds']} interleaved "
                             f"rounds in one process, {config['threads']} thread(s)."],
                            f"Step time at T = {config['steps']}"))
    return tables


@register_experiment("eprop-scaling", "e-prop vs BPTT: peak step memory at T = 250, 1000, 4000 and the step-time "
                     "ratio at T = 1000 (LSNN 100 neurons)", summary=scaling_tables,
                     options=SCALING_OPTIONS)
def run_scaling(ctx: ExperimentContext) -> list[dict[str, Any]]:
    """Memory of one step per (contender, T), then interleaved step times at ``time_steps``."""
    from creditlab.bench.perf import _cpu_step_peak

    options = dict(ctx.options)
    if ctx.quick:
        options = {**options, "steps": [20, 80], "batch_size": 2, "time_steps": 40, "time_batch_size": 2,
                   "rounds": 1}
    records = []
    for steps in options["steps"]:
        task = _scaling_task(steps)
        x, y = task.generate(options["batch_size"], seeded_generator(ctx.seed, "eprop-scaling", steps))
        for label, (rule_name, rule_options) in SCALING_CONTENDERS.items():
            torch.manual_seed(ctx.seed)
            rule = build_rule(rule_name, build_model("lsnn", (steps, 40), 2), **rule_options)
            started = time.perf_counter()
            peak = _cpu_step_peak(lambda rule=rule: rule.step(x, y))  # noqa: B023
            config = {"rule": label, "steps": steps, "batch_size": options["batch_size"], "quick": ctx.quick,
                      "threads": torch.get_num_threads(), "measure": "memory"}
            final = {"step_peak_bytes": peak, "step_peak_mib": peak / 2**20,
                     "memory_method": "peak of the running sum of tensor allocations during one step "
                                      "(torch profiler, CPU)"}
            record = make_record("reproduce", f"eprop-scaling/memory/{label}/T{steps}", config, final,
                                 wall_time_s=time.perf_counter() - started, device=ctx.device)
            ctx.record(record)
            records.append(record)
            print(f"memory T={steps} {label}: {peak / 2**20:.1f} MiB")
    steps, batch_size = options["time_steps"], options["time_batch_size"]
    task = _scaling_task(steps)
    x, y = task.generate(batch_size, seeded_generator(ctx.seed, "eprop-scaling", "time"))
    rules = {}
    for label, (rule_name, rule_options) in SCALING_CONTENDERS.items():
        torch.manual_seed(ctx.seed)
        rules[label] = build_rule(rule_name, build_model("lsnn", (steps, 40), 2), **rule_options)
        rules[label].step(x, y)  # warm-up
    times: dict[str, list[float]] = {label: [] for label in rules}
    order = list(rules)
    for round_index in range(options["rounds"]):
        for label in order[round_index % len(order):] + order[:round_index % len(order)]:
            started = time.perf_counter()
            rules[label].step(x, y)
            times[label].append(time.perf_counter() - started)
    baseline = statistics.median(times["bptt"])
    for label, values in times.items():
        median = statistics.median(values)
        config = {"rule": label, "steps": steps, "batch_size": batch_size, "rounds": options["rounds"],
                  "quick": ctx.quick, "threads": torch.get_num_threads(), "measure": "time"}
        final = {"median_step_ms": 1000 * median, "ratio_to_bptt": median / baseline,
                 "min_step_ms": 1000 * min(values), "max_step_ms": 1000 * max(values)}
        record = make_record("reproduce", f"eprop-scaling/time/{label}/T{steps}", config, final, device=ctx.device)
        ctx.record(record)
        records.append(record)
        print(f"time T={steps} {label}: {1000 * median:.0f} ms/step, {median / baseline:.2f}x BPTT")
    return records
