"""Step time, throughput and memory of learning rules against backprop on the same model.

Method (as for the anchors in ``shared/research/anchor_perf.md`` §0):

* every rule gets its own copy of one initial model, the model's default optimizer (``config_for``),
  and trains on the same resident batches (8 batches cycled, real images when the dataset is
  available, else seeded random inputs);
* a *step* is exactly what the trainer does per batch: ``rule.step`` (update into ``.grad``), the
  optimizer step, and the model's post-step constraints;
* after untimed warm-up steps, rules run interleaved in one process: each round every rule does one
  step, in an order rotated from round to round; on CUDA ``torch.cuda.synchronize()`` runs right
  before and right after every step, so host overhead is included;
* reported: median, min, max, p10 and p90 ms per step, the median's ratio to BP's median from the
  same rounds, and samples/s = batch size / median step time.

Memory, measured per rule in a separate untimed step after timing:

* CUDA: ``torch.cuda.max_memory_allocated`` during one step (after ``reset_peak_memory_stats``),
  reported as the absolute peak and as the transient peak above what was allocated before the step;
* CPU: the torch profiler's per-operator tensor allocations (``profile_memory=True``) summed in time
  order over one step; the peak of that running sum is the transient peak above the level before the
  step, at operator granularity (an operator's internal temporaries that it frees itself are not seen,
  nor frees of tensors that existed before the step, so a rule that replaces a state tensor each step
  is overestimated by that tensor's size). There is no absolute CPU peak (the allocator keeps none).

Both start the measured step with no gradients held (``.grad = None``), so the peak counts the
gradients, activations and temporaries of one step above parameters, rule state and optimizer state.

Also for both: ``state_bytes``, the bytes of everything that persists between steps (parameters,
the rule's buffers, the optimizer state).
"""

from __future__ import annotations

import copy
import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import torch
import torch.nn as nn

from creditlab.data.specs import DATASETS
from creditlab.errors import CreditlabError, IncompatibleModelError
from creditlab.models import MODELS, apply_constraints, build_model
from creditlab.rules import RULES, Rule, build_rule

BASELINE_RULE = "bp"
Batch = tuple[torch.Tensor, torch.Tensor]
StepFn = Callable[[torch.Tensor, torch.Tensor], None]


@dataclass
class Contender:
    """One rule ready to step: the rule (its model is ``rule.model``) and its optimizer."""

    name: str
    rule: Rule
    optimizer: torch.optim.Optimizer

    def step(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        """One full training step: update into ``.grad``, optimizer step, model constraints."""
        self.rule.step(inputs, targets)
        self.optimizer.step()
        apply_constraints(self.rule.model)


@dataclass
class PerfResult:
    """Timings of a group of rules on one model: per-rule rows and the rules that could not run."""

    model: str
    device: str
    batch_size: int
    rounds: int
    warmup: int
    data_source: str
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)


def sync(device: torch.device | str) -> None:
    """Wait for queued GPU work (no-op on CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def build_contenders(model_name: str, rules: Sequence[str], device: str, seed: int = 0,
                     model_options: dict[str, Any] | None = None
                     ) -> tuple[dict[str, Contender], dict[str, str]]:
    """A Contender per rule, each on its own deep copy of one seeded initial model.

    Returns (contenders, unavailable) where ``unavailable`` maps a rule that refuses the model to the
    reason it gave. The optimizer is the model's default one (``train.config_for``), as the rule's
    optimizer requirement (if any) adjusts it.
    """
    from creditlab.train import config_for, make_optimizer

    entry = MODELS.get(model_name)
    spec = DATASETS.get(entry.default_dataset)
    torch.manual_seed(seed)
    base = build_model(model_name, spec.image_shape, spec.num_classes, **(model_options or {})).to(device)
    contenders: dict[str, Contender] = {}
    unavailable: dict[str, str] = {}
    for name in rules:
        RULES.get(name)  # unknown names fail here, listing the valid ones
        try:
            rule = build_rule(name, copy.deepcopy(base)).to(device)
        except IncompatibleModelError as error:
            unavailable[name] = str(error)
            continue
        config = config_for(model_name, (RULES.get(name).optimizer_requirement,), device=device)
        optimizer = make_optimizer(config, [p for p in rule.model.parameters() if p.requires_grad])
        contenders[name] = Contender(name, rule, optimizer)
    return contenders, unavailable


def make_batches(model_name: str, batch_size: int, device: str, n_batches: int = 8, seed: int = 0,
                 data_dir: str | os.PathLike | None = None) -> tuple[list[Batch], str]:
    """``n_batches`` resident batches (inputs (B, C, H, W), targets (B,)) for a model's natural dataset.

    Real images (the first ``n_batches * batch_size`` training examples, in the model's default
    normalization) when the dataset is available; else seeded standard-normal inputs with uniform
    labels (step time does not depend on pixel values). Returns (batches, description of the source).
    """
    entry = MODELS.get(model_name)
    spec = DATASETS.get(entry.default_dataset)
    count = n_batches * batch_size
    normalization = str(entry.defaults.get("normalization", "standard"))
    try:
        inputs, targets = _first_training_images(entry.default_dataset, normalization,
                                                 str(data_dir) if data_dir is not None else None, count)
        source = f"{entry.default_dataset} (first {len(inputs)} training images)"
    except (CreditlabError, OSError):
        inputs, targets = torch.empty(0), torch.empty(0, dtype=torch.long)
        source = ""
    if len(inputs) < count:
        generator = torch.Generator().manual_seed(seed)
        inputs = torch.randn((count, *spec.image_shape), generator=generator)
        targets = torch.randint(0, spec.num_classes, (count,), generator=generator)
        source = f"random {tuple(spec.image_shape)} inputs ({entry.default_dataset} not available)"
    inputs, targets = inputs.to(device), targets.to(device)
    batches = [(inputs[i:i + batch_size], targets[i:i + batch_size]) for i in range(0, count, batch_size)]
    return batches, source


@lru_cache(maxsize=8)
def _first_training_images(dataset: str, normalization: str, data_dir: str | None, count: int
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``count`` training images and labels on the CPU (cached per process; never downloaded)."""
    from creditlab.data import load_dataset

    data = load_dataset(dataset, data_dir, "cpu", normalization=normalization, allow_download=False)
    return data.train_x[:count].clone(), data.train_y[:count].clone()


def time_interleaved(steps: dict[str, StepFn], batches: Sequence[Batch], rounds: int, warmup: int,
                     device: torch.device | str) -> dict[str, list[float]]:
    """Seconds per step of every step function, measured in interleaved rounds.

    Each function first gets ``warmup`` untimed steps; then in each of ``rounds`` rounds every function
    does one step on the same batch, in an order rotated by one per round. On CUDA the device is
    synchronized right before and right after every timed step.
    """
    if rounds < 1 or warmup < 0:
        raise ValueError(f"rounds must be >= 1 and warmup >= 0, got {rounds} and {warmup}")
    if not batches:
        raise ValueError("time_interleaved needs at least one batch")
    names = list(steps)
    for name in names:
        for i in range(warmup):
            steps[name](*batches[i % len(batches)])
    sync(device)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        inputs, targets = batches[r % len(batches)]
        for name in names[shift:] + names[:shift]:
            sync(device)
            start = time.perf_counter()
            steps[name](inputs, targets)
            sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def state_bytes(contender: Contender) -> int:
    """Bytes that persist between steps: model parameters and buffers, rule buffers, optimizer state."""
    tensors: dict[int, torch.Tensor] = {}
    for t in [*contender.rule.model.parameters(), *contender.rule.model.buffers(), *contender.rule.buffers(),
              *contender.rule.parameters()]:
        tensors[id(t)] = t
    for state in contender.optimizer.state.values():
        for value in state.values():
            if isinstance(value, torch.Tensor):
                tensors[id(value)] = value
    return sum(t.numel() * t.element_size() for t in tensors.values())


def _cpu_step_peak(step: Callable[[], None]) -> int:
    """Peak of the running sum of tensor allocations (bytes) during ``step()``, from the torch profiler."""
    with torch.autograd.profiler.profile(profile_memory=True, use_kineto=False) as prof:
        step()
    events = sorted(prof.function_events, key=lambda e: e.time_range.start)
    level = peak = 0
    for event in events:
        level += event.self_cpu_memory_usage
        peak = max(peak, level)
    return int(peak)


def measure_step_memory(contender: Contender, batch: Batch, device: torch.device | str) -> dict[str, Any]:
    """Memory of one full step of ``contender`` on ``batch`` (see the module docstring for the method)."""
    device = torch.device(device)
    inputs, targets = batch
    for param in contender.rule.model.parameters():
        param.grad = None  # start from no gradients held, on both devices (the step allocates them)
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        contender.step(inputs, targets)
        sync(device)
        peak = torch.cuda.max_memory_allocated(device)
        return {"peak_allocated_bytes": int(peak), "step_peak_bytes": int(peak - before),
                "state_bytes": state_bytes(contender),
                "memory_method": "torch.cuda.max_memory_allocated during one step"}
    return {"step_peak_bytes": _cpu_step_peak(lambda: contender.step(inputs, targets)),
            "state_bytes": state_bytes(contender),
            "memory_method": "CPU: peak of tensor allocations during one step above the level before it "
                             "(torch profiler, per operator)"}


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize_times(times: dict[str, list[float]], batch_size: int, baseline: str = BASELINE_RULE
                    ) -> dict[str, dict[str, Any]]:
    """Per rule: median/min/max/p10/p90 ms, ratio of medians to ``baseline`` (None without it), samples/s."""
    rows: dict[str, dict[str, Any]] = {}
    base_median = statistics.median(times[baseline]) if baseline in times else None
    for name, seconds in times.items():
        median = statistics.median(seconds)
        rows[name] = {
            "median_ms": 1000 * median, "min_ms": 1000 * min(seconds), "max_ms": 1000 * max(seconds),
            "p10_ms": 1000 * _percentile(seconds, 0.1), "p90_ms": 1000 * _percentile(seconds, 0.9),
            "ratio_to_bp": median / base_median if base_median else None,
            "samples_per_s": batch_size / median if median > 0 else math.inf,
            "timed_steps": len(seconds),
        }
    return rows


def measure_rules(model: str, rules: Sequence[str], device: str = "cpu", batch_size: int = 128,
                  rounds: int = 50, warmup: int = 5, seed: int = 0, data_dir: str | os.PathLike | None = None,
                  model_options: dict[str, Any] | None = None, memory: bool = True) -> PerfResult:
    """Time every rule in ``rules`` (BP added when absent) on ``model``, interleaved; then memory per rule."""
    rules = list(dict.fromkeys([BASELINE_RULE, *rules]))
    contenders, unavailable = build_contenders(model, rules, device, seed, model_options)
    if not contenders:
        raise IncompatibleModelError(f"none of the rules {rules} can train model {model!r}")
    batches, source = make_batches(model, batch_size, device, seed=seed, data_dir=data_dir)
    times = time_interleaved({n: c.step for n, c in contenders.items()}, batches, rounds, warmup, device)
    rows = summarize_times(times, batch_size)
    if memory:
        for name, contender in contenders.items():
            rows[name].update(measure_step_memory(contender, batches[0], device))
    return PerfResult(model, device, batch_size, rounds, warmup, source, rows, unavailable)


def rules_for_model(model: str, rules: Sequence[str] | None = None) -> list[str]:
    """The registered rules (or ``rules``) that accept ``model``, BP first."""
    from creditlab.bench.compat import can_train

    names = list(rules) if rules is not None else RULES.names()
    accepted = [r for r in names if can_train(r, model)]
    return sorted(accepted, key=lambda r: (r != BASELINE_RULE, r))


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = ["BASELINE_RULE", "Contender", "PerfResult", "build_contenders", "make_batches", "measure_rules",
           "measure_step_memory", "rules_for_model", "state_bytes", "summarize_times", "sync",
           "time_interleaved"]
