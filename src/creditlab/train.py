"""The one trainer every rule and the CLI use.

``fit`` runs epochs of: rule writes ``.grad`` -> optional distributed reducer -> optimizer step ->
model constraints -> step hooks. Each epoch it evaluates (the task's metrics, and every evaluation
variant of the model from its own seeded generator), logs one JSON line, and atomically writes a
checkpoint (model, rule state, optimizer, scheduler, reducer, hook states, RNG, history, the best
epoch under early stopping) that ``resume=True`` continues from. Batches come from a permutation
seeded by (seed, epoch), so an interrupted and resumed run is bit-identical to an uninterrupted one
on CPU. A non-finite loss or parameter stops training with a DivergenceError that names the last
good checkpoint; a bad state is never written.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn as nn

from creditlab.checkpoint import CHECKPOINT_NAME, clone_state, load_checkpoint, save_checkpoint
from creditlab.data import Dataset, batch_indices, load_dataset, random_crop_flip
from creditlab.data.specs import DATASETS
from creditlab.errors import CreditlabError, DivergenceError, first_line
from creditlab.hooks import FitContext, StepInfo, TrainerHook, hooks_with, overrides
from creditlab.models import MODELS, apply_constraints, build_model
from creditlab.optim import (
    OPTIMIZERS,
    SCHEDULES,
    OptimizerRequirement,
    apply_requirements,
    check_requirement,
    make_optimizer,
    make_scheduler,
)
from creditlab.results import device_description, git_commit
from creditlab.rules import RULES, Rule, build_rule
from creditlab.seeding import batch_stream_seed, seeded_generator
from creditlab.tasks import Task

METRICS_NAME = "metrics.jsonl"


@dataclass
class TrainConfig:
    """Everything that decides a training run (besides rule, model and dataset)."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.0
    weight_decay: float = 0.0
    schedule: str = "none"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    seed: int = 0
    device: str = "cpu"
    out_dir: str | None = None
    resume: bool = False
    val_fraction: float = 0.0
    augment: bool = False
    normalization: str = "standard"
    eval_batch_size: int = 1000
    train_limit: int | None = None  # use only the first N training examples (quick runs, tests)
    test_limit: int | None = None
    progress: bool = True
    stop_at_train_accuracy: float | None = None  # e.g. 1.0: stop once an epoch fits the training set
    time_budget_s: float | None = None  # stop after the epoch in which this invocation's wall time passes it
    early_stopping: int | None = None  # patience in epochs on the validation split's primary metric

    def validate(self) -> None:
        """Raise ValueError for settings that cannot work, before any data is loaded."""
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; valid: {', '.join(SCHEDULES)}")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError("epochs and batch size must be >= 1 and lr > 0")
        if self.early_stopping is not None and (isinstance(self.early_stopping, bool)
                                                or not isinstance(self.early_stopping, int)
                                                or self.early_stopping < 1):
            raise ValueError(f"--early-stopping is a patience in epochs, an integer >= 1; got {self.early_stopping!r}")

    def validate_early_stopping_split(self) -> None:
        """Raise ValueError when early stopping is asked for without a validation split to stop on."""
        if self.early_stopping is not None and not self.val_fraction > 0:
            raise ValueError("--early-stopping needs a validation split to stop on: set --val-fraction "
                             "(e.g. 0.1); it never looks at the test set")


class Callback(Protocol):
    """The older hook protocol (still accepted): called at the end of every epoch, the returned dict
    is merged into that epoch's record. New code subclasses :class:`creditlab.hooks.TrainerHook`."""

    def on_epoch_end(self, rule: Rule, epoch: int) -> dict[str, Any]: ...  # noqa: D102


class GradientReducer(Protocol):
    """Makes ``.grad`` identical across ranks after the rule wrote it (see ``creditlab.distributed``)."""

    def synchronize(self, model: nn.Module) -> None: ...  # noqa: D102
    def stats(self) -> dict[str, Any]: ...  # noqa: D102
    def state_dict(self) -> dict[str, Any]: ...  # noqa: D102
    def load_state_dict(self, state: dict[str, Any]) -> None: ...  # noqa: D102


@dataclass
class _Progress:
    """Rich progress bar on stderr (or nothing)."""

    enabled: bool
    bar: Any = None
    task: Any = None

    def start(self, total: int, description: str) -> None:
        if not self.enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[stats]}"), TimeElapsedColumn(),
                            console=Console(stderr=True), transient=True)
        self.bar.start()
        self.task = self.bar.add_task(description, total=total, stats="")

    def update(self, advance: int, stats: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=advance, stats=stats)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def _add_sums(total: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> None:
    for key, value in batch.items():
        if key in total:
            total[key].add_(value)
        else:
            total[key] = value.clone()


def _finish(task: Task, sums: dict[str, torch.Tensor], loss_sum: torch.Tensor, count: int) -> dict[str, float]:
    return task.finish({**{k: v.item() for k, v in sums.items()}, "loss": loss_sum.item()}, count)


@torch.no_grad()
def evaluate(rule: Rule, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int = 1000,
             forward: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, float]:
    """The rule's task metrics on a split, in eval mode: classification ``accuracy`` (a fraction) and
    ``loss``; regression ``mse`` and ``loss``. ``{}`` for an empty split.

    inputs: (N, *input_shape); targets: what ``rule.task`` scores. ``forward`` maps an input batch to
    outputs (default ``rule.forward_logits``; evaluation variants pass theirs).
    """
    if len(inputs) == 0:
        return {}
    task = rule.task
    targets = task.check_targets(targets, len(inputs))
    forward = forward or rule.forward_logits
    model = rule.model
    was_training = model.training
    model.eval()
    total_loss = torch.zeros((), device=inputs.device)
    sums: dict[str, torch.Tensor] = {}
    for start in range(0, len(inputs), batch_size):
        x, y = inputs[start:start + batch_size], targets[start:start + batch_size]
        outputs = forward(x)
        total_loss += rule.loss_fn(outputs, y) * len(y)
        _add_sums(sums, task.metric_sums(outputs, y))
    model.train(was_training)
    return _finish(task, sums, total_loss, len(inputs))


def evaluation_variants(model: nn.Module) -> dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]]:
    """The model's named evaluation variants (``model.evaluation_variants()``), or ``{}``."""
    method = getattr(model, "evaluation_variants", None)
    if not callable(method):
        return {}
    variants = method()
    if not isinstance(variants, dict) or not all(isinstance(k, str) and callable(v) for k, v in variants.items()):
        raise CreditlabError(f"{type(model).__name__}.evaluation_variants() must return {{name: fn(inputs, "
                             f"generator) -> outputs}}, got {variants!r}")
    return variants


def evaluate_variants(rule: Rule, splits: dict[str, tuple[torch.Tensor, torch.Tensor]], seed: int, epoch: int,
                      batch_size: int = 1000) -> dict[str, dict[str, float]]:
    """Every evaluation variant of ``rule.model`` on every non-empty split: ``{name: {"test_accuracy": ..}}``.

    Variant ``name`` in ``epoch`` draws from ``seeded_generator(seed, "eval", name, epoch)`` (a fresh one
    per split, so each split sees the same draws whatever the others are); the global RNG states are
    restored afterwards, so evaluating never moves the training trajectory.
    """
    variants = evaluation_variants(rule.model)
    if not variants:
        return {}
    device = next(rule.model.parameters()).device
    cuda_devices = [device] if device.type == "cuda" else []
    results: dict[str, dict[str, float]] = {}
    with torch.random.fork_rng(devices=cuda_devices):
        for name, variant in variants.items():
            entry: dict[str, float] = {}
            for split, (inputs, targets) in splits.items():
                generator = seeded_generator(seed, "eval", name, epoch, device=device)
                metrics = evaluate(rule, inputs, targets, batch_size,
                                   forward=lambda batch, v=variant, g=generator: v(batch, g))
                entry.update({f"{split}_{key}": value for key, value in metrics.items()})
            results[name] = entry
    return results


def _world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _all_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _epoch_generator(seed: int, epoch: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(batch_stream_seed(seed, epoch, stream))


#: settings that may change when a run is resumed; every other one decides the trajectory
RESUMABLE_CHANGES = frozenset({"epochs", "device", "out_dir", "resume", "progress", "eval_batch_size",
                               "test_limit", "time_budget_s", "stop_at_train_accuracy"})


def _check_same_run(state: dict[str, Any], path: Path, run_info: dict[str, Any], config: TrainConfig) -> None:
    """Refuse a checkpoint of another run (rule, model, dataset, or a setting outside RESUMABLE_CHANGES)."""
    for key in ("rule", "model", "dataset"):
        if key in run_info and state["run_info"].get(key) != run_info[key]:
            raise CreditlabError(f"--resume: checkpoint {path} is for {key} "
                                 f"{state['run_info'].get(key)!r}, not {run_info[key]!r}")
    defaults = dataclasses.asdict(TrainConfig())
    saved, current = state["config"], dataclasses.asdict(config)
    differ = [f"{key} {saved.get(key, defaults[key])!r} (now {value!r})" for key, value in current.items()
              if key not in RESUMABLE_CHANGES and saved.get(key, defaults[key]) != value]
    if differ:
        raise CreditlabError(f"--resume: checkpoint {path} is of another run configuration: it has "
                             f"{'; '.join(differ)}. Use the same settings, or another --out for a new run")


def _load_state(target: nn.Module | Any, state: Any, what: str, path: Path) -> None:
    try:
        target.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        first = first_line(exc)
        raise CreditlabError(f"--resume: the {what} state in checkpoint {path} does not fit this run "
                             f"({first}); was it written for other model or rule options?") from None


def _restore_hooks(hooks: Sequence[Any], stateful: Sequence[bool], saved: list[Any], path: Path) -> None:
    for index, hook in enumerate(hooks):
        if not stateful[index]:
            continue
        if index >= len(saved) or saved[index] is None:
            raise CreditlabError(f"--resume: checkpoint {path} holds no state for hook {index} "
                                 f"({type(hook).__name__}); resume with the hooks the run was started with")
        try:
            hook.load_state_dict(saved[index])
        except (CreditlabError, KeyError, ValueError, TypeError, RuntimeError) as exc:
            first = first_line(exc)
            raise CreditlabError(f"--resume: the state of hook {index} ({type(hook).__name__}) in checkpoint "
                                 f"{path} does not fit this run ({first})") from None


def _is_better(value: float, best: float, higher_is_better: bool) -> bool:
    return value > best if higher_is_better else value < best


def fit(rule: Rule, dataset: Dataset, config: TrainConfig, callbacks: Sequence[Callback] = (),
        reducer: GradientReducer | None = None, run_info: dict[str, Any] | None = None,
        hooks: Sequence[TrainerHook] = ()) -> dict[str, Any]:
    """Train ``rule.model`` on ``dataset`` and return the run summary.

    The summary holds ``epochs`` (completed), ``test_<metric>``, ``val_<metric>`` (None without a
    validation split) and ``train_<metric>`` for the task's primary metric (classification:
    ``accuracy``; regression: ``mse``), ``train_loss``, ``wall_time_s``, ``device``, ``commit``,
    ``history`` (one metrics dict per epoch), ``variants`` (if the model has evaluation variants),
    ``best_epoch`` and ``stopped_early`` (with early stopping: the metrics are the best epoch's, whose
    weights the model holds on return) and whatever ``run_info`` adds (rule, model, dataset).
    ``hooks`` (and the older ``callbacks``) are :class:`creditlab.hooks.TrainerHook` s.
    """
    config.validate()
    check_requirement(rule.optimizer_requirement, config)
    check_requirement(getattr(reducer, "optimizer_requirement", None), config)
    task = rule.task
    if dataset.task.name != task.name:
        raise CreditlabError(f"dataset {dataset.name!r} is a {dataset.task.name} task, but rule {rule.name!r} "
                             f"was built for {task.name}: pass task= to the rule")
    if config.early_stopping is not None and len(dataset.val_x) == 0:
        raise CreditlabError("--early-stopping needs a validation split to stop on, and the dataset has "
                             "none: set --val-fraction (e.g. 0.1)")
    all_hooks = [*callbacks, *hooks]
    stateful_hooks = [overrides(hook, "state_dict") for hook in all_hooks]  # saved and restored alike
    device = torch.device(config.device)
    model = rule.model
    rank, world_size = _world()
    is_main = rank == 0
    optimizer = make_optimizer(config, [p for p in model.parameters() if p.requires_grad])
    train_x = dataset.train_x[:config.train_limit]
    train_y = task.check_targets(dataset.train_y[:config.train_limit], len(train_x))
    test_x = dataset.test_x[:config.test_limit]
    test_y = task.check_targets(dataset.test_y[:config.test_limit], len(test_x))
    val_x, val_y = dataset.val_x, task.check_targets(dataset.val_y, len(dataset.val_x))
    n_train = len(train_x)
    if n_train == 0:
        raise CreditlabError(f"no training examples to train on (dataset {dataset.name!r}, train_limit "
                             f"{config.train_limit})")
    steps_per_epoch = math.ceil(n_train / config.batch_size)
    scheduler = make_scheduler(config, optimizer, steps_per_epoch)
    step_every_batch = config.schedule == "cosine"
    out_dir = Path(config.out_dir) if config.out_dir else None
    checkpoint_path = out_dir / CHECKPOINT_NAME if out_dir else None
    history: list[dict[str, Any]] = []
    start_epoch = 0
    elapsed_before = 0.0
    run_info = dict(run_info or {})
    best: dict[str, Any] | None = None  # early stopping: epoch, metric, model and rule state
    stopped_early = False
    evaluation_variants(model)  # a malformed declaration fails before training

    if config.resume and checkpoint_path is not None and checkpoint_path.is_file():
        state = load_checkpoint(checkpoint_path, device)
        _check_same_run(state, checkpoint_path, run_info, config)
        _load_state(model, state["model"], "model", checkpoint_path)
        _load_state(rule, state["rule"], "rule", checkpoint_path)
        _load_state(optimizer, state["optimizer"], "optimizer", checkpoint_path)
        _load_state(scheduler, state["scheduler"], "schedule", checkpoint_path)
        if reducer is not None and state.get("reducer") is not None:
            reducer.load_state_dict(state["reducer"])
        _restore_hooks(all_hooks, stateful_hooks, state.get("hooks") or [], checkpoint_path)
        torch.set_rng_state(state["torch_rng"].cpu())  # map_location moved it to the device
        history = state["history"]
        start_epoch = state["epoch"] + 1
        elapsed_before = state.get("wall_time_s", 0.0)
        best = state.get("best")
        stopped_early = bool(state.get("stopped_early", False))
        if is_main:
            print(f"resuming from {checkpoint_path} after epoch {start_epoch}", file=sys.stderr)
    elif out_dir is not None and is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / METRICS_NAME).unlink(missing_ok=True)

    check_every = 1 if device.type == "cpu" else 25
    progress = _Progress(config.progress and is_main)
    context = FitContext(config=config, dataset=dataset, steps_per_epoch=steps_per_epoch, device=device)
    rule.on_fit_start(context)
    for hook in hooks_with(all_hooks, "on_fit_start"):
        hook.on_fit_start(rule, context)
    epoch_start_hooks = hooks_with(all_hooks, "on_epoch_start")
    step_hooks = hooks_with(all_hooks, "on_step_end")  # unused step hooks cost nothing per step
    epoch_end_hooks = hooks_with(all_hooks, "on_epoch_end")
    primary = task.primary_metric
    started = time.perf_counter()
    model.train()

    for epoch in range(start_epoch, config.epochs if not stopped_early else start_epoch):
        epoch_start = time.perf_counter()
        rule.on_epoch_start(epoch + 1)
        for hook in epoch_start_hooks:
            hook.on_epoch_start(rule, epoch + 1)
        batch_gen = _epoch_generator(config.seed, epoch, 0)
        augment_gen = _epoch_generator(config.seed, epoch, 1)
        loss_sum = torch.zeros((), device=device)
        sums: dict[str, torch.Tensor] = {}
        seen = 0
        progress.start(steps_per_epoch, f"epoch {epoch + 1}/{config.epochs}")
        try:
            for step, index in enumerate(batch_indices(n_train, config.batch_size, batch_gen, device)):
                if world_size > 1:
                    if len(index) < world_size:  # a last batch too small to give every rank an example
                        progress.update(1, "")
                        continue
                    index = index[rank::world_size]
                inputs, targets = train_x[index], train_y[index]
                if config.augment:
                    inputs = random_crop_flip(inputs, augment_gen)
                out = rule.step(inputs, targets)
                if reducer is not None:
                    reducer.synchronize(model)
                optimizer.step()
                apply_constraints(model)
                if step_every_batch:
                    scheduler.step()
                loss_sum += out.loss * len(targets)
                _add_sums(sums, task.metric_sums(out.output, targets))
                seen += len(targets)
                if step % check_every == 0 or step == steps_per_epoch - 1:
                    loss_now = out.loss.item()
                    if not math.isfinite(loss_now):
                        raise _divergence(loss_now, epoch, step, checkpoint_path, history)
                    if step % 20 == 0 and progress.bar is not None:
                        rate = seen / max(time.perf_counter() - epoch_start, 1e-9)
                        running = _finish(task, sums, loss_sum, seen)[primary]
                        progress.update(0, f"loss {loss_now:.4f} {primary} {running:.4f} "
                                           f"{rate:,.0f} samples/s")
                if step_hooks:
                    info = StepInfo(epoch=epoch + 1, step=step, inputs=inputs, targets=targets,
                                    output=out.output, loss=out.loss)
                    for hook in step_hooks:
                        hook.on_step_end(rule, info)
                progress.update(1, "")
        finally:
            progress.stop()
        if not step_every_batch:
            scheduler.step()
        epoch_time = time.perf_counter() - epoch_start
        train_metrics = _finish(task, sums, loss_sum, max(seen, 1))
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "train_loss": train_metrics.pop("loss"),
            **{f"train_{key}": value for key, value in train_metrics.items()},
            "lr": optimizer.param_groups[0]["lr"],
            "epoch_time_s": round(epoch_time, 3),
            "samples_per_s": round(seen * world_size / max(epoch_time, 1e-9), 1),
        }
        splits = {"val": (val_x, val_y), "test": (test_x, test_y)}
        for split, (inputs, targets) in splits.items():
            metrics = evaluate(rule, inputs, targets, config.eval_batch_size)
            record.update({f"{split}_{key}": value for key, value in metrics.items()})
        variants = evaluate_variants(rule, {name: splits[name] for name in ("test", "val") if len(splits[name][0])},
                                     config.seed, epoch + 1, config.eval_batch_size)
        if variants:
            record["variants"] = variants
        record.update(rule.on_epoch_end(epoch + 1))
        for hook in epoch_end_hooks:
            record.update(hook.on_epoch_end(rule, epoch + 1))
        if not _all_finite(model):  # checked last, so a bad state is never checkpointed
            raise _divergence(float("nan"), epoch, steps_per_epoch - 1, checkpoint_path, history,
                              what="a parameter")
        history.append(record)
        if config.early_stopping is not None:
            value = record[f"val_{primary}"]
            if best is None or _is_better(value, best["metric"], task.higher_is_better):
                best = {"epoch": epoch + 1, "metric": value, "model": clone_state(model.state_dict()),
                        "rule": clone_state(rule.state_dict())}
            elif epoch + 1 - best["epoch"] >= config.early_stopping:
                stopped_early = True
        if is_main:
            _report_epoch(record, config.epochs, config.progress, primary)
            if out_dir is not None:
                with open(out_dir / METRICS_NAME, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(record) + "\n")
                save_checkpoint({
                    "epoch": epoch, "model": model.state_dict(), "rule": rule.state_dict(),
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "reducer": reducer.state_dict() if reducer is not None else None,
                    "hooks": [hook.state_dict() if stateful else None
                              for hook, stateful in zip(all_hooks, stateful_hooks, strict=True)],
                    "torch_rng": torch.get_rng_state(), "history": history, "run_info": run_info,
                    "config": dataclasses.asdict(config), "best": best, "stopped_early": stopped_early,
                    "wall_time_s": elapsed_before + time.perf_counter() - started,
                }, checkpoint_path)  # type: ignore[arg-type]
        if stopped_early:
            break
        target_accuracy = config.stop_at_train_accuracy
        if target_accuracy is not None and record.get("train_accuracy", -1.0) >= target_accuracy:
            break
        if config.time_budget_s is not None and time.perf_counter() - started > config.time_budget_s:
            break  # checkpointed above: --resume continues from here

    if best is not None:  # early stopping keeps the best epoch's weights
        model.load_state_dict(best["model"])
        rule.load_state_dict(best["rule"])
    chosen = history[best["epoch"] - 1] if best is not None else (history[-1] if history else {})
    summary = {
        **run_info,
        "epochs": len(history),
        f"test_{primary}": chosen.get(f"test_{primary}"),
        f"val_{primary}": chosen.get(f"val_{primary}"),
        "train_loss": chosen.get("train_loss"),
        f"train_{primary}": chosen.get(f"train_{primary}"),
        "wall_time_s": round(elapsed_before + time.perf_counter() - started, 3),
        "device": device_description(device),
        "commit": git_commit(),
        "seed": config.seed,
        "history": history,
    }
    if best is not None:
        summary.update({"best_epoch": best["epoch"], "stopped_early": stopped_early,
                        "test_loss": chosen.get("test_loss"), "val_loss": chosen.get("val_loss")})
    if "variants" in chosen:
        summary["variants"] = chosen["variants"]
    if reducer is not None:
        summary.update({"world_size": world_size, **reducer.stats()})
    return summary


def _divergence(value: float, epoch: int, step: int, checkpoint: Path | None, history: list[dict[str, Any]],
                what: str = "the loss") -> DivergenceError:
    if checkpoint is not None and checkpoint.is_file() and history:
        keep = f"The last good checkpoint, {checkpoint} (after epoch {len(history)}), is kept"
    elif checkpoint is not None:
        keep = "No epoch had completed, so no checkpoint was written"
    else:
        keep = "No --out directory was given, so nothing was checkpointed"
    return DivergenceError(f"training diverged: {what} became {value} at epoch {epoch + 1}, step {step + 1}. "
                           f"{keep}. Try a smaller --lr or another optimizer.")


def _report_epoch(record: dict[str, Any], epochs: int, enabled: bool, metric: str = "accuracy") -> None:
    if not enabled:
        return
    label = "" if metric == "accuracy" else f"{metric} "
    parts = [f"epoch {record['epoch']}/{epochs}", f"loss {record['train_loss']:.4f}",
             f"train {label}{record[f'train_{metric}']:.4f}"]
    for split in ("val", "test"):
        if f"{split}_{metric}" in record:
            parts.append(f"{split} {label}{record[f'{split}_{metric}']:.4f}")
    parts += [f"{record['samples_per_s']:,.0f} samples/s", f"{record['epoch_time_s']:.1f}s"]
    print("  ".join(parts), file=sys.stderr, flush=True)


_CONFIG_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def config_for(model: str, requirements: Sequence[OptimizerRequirement | None] = (), **overrides: Any
               ) -> TrainConfig:
    """A TrainConfig from the model's registered defaults, with ``overrides`` (None means default).

    ``requirements`` (of the rule, of a reducer) come between: their ``defaults`` replace the model's
    where the user gave no value, their ``fixed`` settings always hold, and an explicit override that
    conflicts with a fixed setting is a CreditlabError naming the owner (see :mod:`creditlab.optim`).
    """
    defaults = {k: v for k, v in MODELS.get(model).defaults.items() if k in _CONFIG_FIELDS}
    settings = apply_requirements([r for r in requirements if r is not None], overrides)
    defaults.update({k: v for k, v in settings.items() if v is not None})
    unknown = set(defaults) - _CONFIG_FIELDS
    if unknown:
        raise TypeError(f"unknown training settings: {', '.join(sorted(unknown))}")
    if "milestones" in defaults:
        defaults["milestones"] = tuple(defaults["milestones"])
    return TrainConfig(**defaults)


def prepare(rule: str, model: str, dataset: str, config: TrainConfig, rule_options: dict[str, Any] | None = None,
            model_options: dict[str, Any] | None = None) -> Rule:
    """Build the model (seeded) and the rule, on the config's device; fails fast on a bad pair."""
    spec = DATASETS.get(dataset)
    torch.manual_seed(config.seed)
    net = build_model(model, spec.image_shape, spec.num_classes, **(model_options or {}))
    net.to(config.device)
    learner = build_rule(rule, net, **(rule_options or {}))
    return learner.to(config.device)


def train_from_names(rule: str, model: str, dataset: str, data_dir: str | os.PathLike | None = None,
                     rule_options: dict[str, Any] | None = None, model_options: dict[str, Any] | None = None,
                     callbacks: Sequence[Callback] = (),
                     callback_factory: Callable[[Rule, Dataset], Sequence[Callback]] | None = None,
                     reducer_factory: Callable[[Rule, TrainConfig], GradientReducer] | None = None,
                     loaded: Dataset | None = None, hooks: Sequence[TrainerHook] = (),
                     requirements: Sequence[OptimizerRequirement | None] = (), **overrides: Any) -> dict[str, Any]:
    """Train ``rule`` on ``model`` with ``dataset`` using the model's defaults plus ``overrides``.

    ``callback_factory(rule, dataset)`` builds hooks that need the data (alignment tracking);
    ``reducer_factory(rule, config)`` builds a distributed gradient reducer, whose
    ``OptimizerRequirement`` goes in ``requirements`` (the rule's own is added here). ``loaded``
    reuses an already loaded Dataset (its normalization must match).
    """
    rule_class = RULES.get(rule)
    config = config_for(model, requirements=(rule_class.optimizer_requirement, *requirements), **overrides)
    config.validate()
    if loaded is None:
        config.validate_early_stopping_split()
    learner = prepare(rule, model, dataset, config, rule_options, model_options)
    data = loaded if loaded is not None else load_dataset(
        dataset, data_dir, config.device, config.val_fraction, config.seed, config.normalization)
    if loaded is not None and data.train_x.device != torch.device(config.device):
        data = data.to(config.device)
    all_hooks = [*callbacks, *(callback_factory(learner, data) if callback_factory else []), *hooks]
    reducer = reducer_factory(learner, config) if reducer_factory else None
    run_info = {"rule": rule, "model": model, "dataset": dataset}
    summary = fit(learner, data, config, all_hooks, reducer, run_info)
    summary["config"] = {**dataclasses.asdict(config), "rule_options": rule_options or {},
                         "model_options": model_options or {}}
    return summary


__all__ = ["Callback", "GradientReducer", "TrainConfig", "config_for", "evaluate", "evaluate_variants",
           "evaluation_variants", "fit", "make_optimizer", "make_scheduler", "prepare", "train_from_names"]
