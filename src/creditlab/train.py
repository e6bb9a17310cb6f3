"""The one trainer every rule and the CLI use.

``fit`` runs epochs of: rule writes ``.grad`` -> optional distributed reducer -> optimizer step ->
model constraints. Each epoch it evaluates, logs one JSON line, and atomically writes a checkpoint
(model, rule state, optimizer, scheduler, reducer, RNG, history) that ``resume=True`` continues
from. Batches come from a permutation seeded by (seed, epoch), so an interrupted and resumed run is
bit-identical to an uninterrupted one on CPU. A non-finite loss or parameter stops training with a
DivergenceError that names the last good checkpoint; a bad state is never written.
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
from types import SimpleNamespace
from typing import Any, Protocol

import torch
import torch.nn as nn

from creditlab.data import Dataset, batch_indices, load_dataset, random_crop_flip
from creditlab.data.specs import DATASETS
from creditlab.errors import CreditlabError, DivergenceError
from creditlab.models import MODELS, apply_constraints, build_model
from creditlab.results import device_description, git_commit
from creditlab.rules import Rule, build_rule

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.jsonl"
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "cosine", "multistep")


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

    def validate(self) -> None:
        """Raise ValueError for settings that cannot work, before any data is loaded."""
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; valid: {', '.join(SCHEDULES)}")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError("epochs and batch size must be >= 1 and lr > 0")


class Callback(Protocol):
    """Called at the end of every epoch; the returned dict is merged into that epoch's record."""

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


def make_optimizer(config: TrainConfig, params: Sequence[nn.Parameter]) -> torch.optim.Optimizer:
    """The ``torch.optim`` optimizer named by ``config.optimizer``.

    Adam and AdamW use torch's fused kernels when every parameter is a floating-point tensor on the
    CPU or a CUDA device (one pass over the state instead of several: 3.3x faster for the 8.5M
    parameters of vnn-fc on 2 CPU cores), else the default implementation.
    """
    if config.optimizer in ("adam", "adamw"):
        fused = bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
        adam = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
        return adam(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused or None)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def make_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int
                   ) -> torch.optim.lr_scheduler.LRScheduler:
    """Learning-rate schedule: constant; cosine to zero over all steps (stepped every batch);
    or step decay by ``gamma`` at epoch ``milestones`` (stepped every epoch)."""
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * steps_per_epoch)
    if config.schedule == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, list(config.milestones), gamma=config.gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


@torch.no_grad()
def evaluate(rule: Rule, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int = 1000
             ) -> dict[str, float]:
    """Accuracy (fraction) and mean loss of ``rule.forward_logits`` on a split, in eval mode."""
    if len(inputs) == 0:
        return {}
    model = rule.model
    was_training = model.training
    model.eval()
    total_loss = torch.zeros((), device=inputs.device)
    correct = torch.zeros((), device=inputs.device, dtype=torch.long)
    for start in range(0, len(inputs), batch_size):
        x, y = inputs[start:start + batch_size], targets[start:start + batch_size]
        logits = rule.forward_logits(x)
        total_loss += rule.loss_fn(logits, y) * len(y)
        correct += (logits.argmax(1) == y).sum()
    model.train(was_training)
    return {"accuracy": correct.item() / len(inputs), "loss": total_loss.item() / len(inputs)}


def _world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _all_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _epoch_generator(seed: int, epoch: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch * 7919 + stream)


def fit(rule: Rule, dataset: Dataset, config: TrainConfig, callbacks: Sequence[Callback] = (),
        reducer: GradientReducer | None = None, run_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train ``rule.model`` on ``dataset`` and return the run summary.

    The summary holds ``epochs`` (completed), ``test_accuracy``, ``val_accuracy`` (None without a
    validation split), ``train_loss``, ``train_accuracy``, ``wall_time_s``, ``device``, ``commit``,
    ``history`` (one metrics dict per epoch) and whatever ``run_info`` adds (rule, model, dataset).
    """
    config.validate()
    device = torch.device(config.device)
    model = rule.model
    rank, world_size = _world()
    is_main = rank == 0
    optimizer = make_optimizer(config, [p for p in model.parameters() if p.requires_grad])
    train_x, train_y = dataset.train_x[:config.train_limit], dataset.train_y[:config.train_limit]
    test_x, test_y = dataset.test_x[:config.test_limit], dataset.test_y[:config.test_limit]
    n_train = len(train_x)
    steps_per_epoch = math.ceil(n_train / config.batch_size)
    scheduler = make_scheduler(config, optimizer, steps_per_epoch)
    step_every_batch = config.schedule == "cosine"
    out_dir = Path(config.out_dir) if config.out_dir else None
    checkpoint_path = out_dir / CHECKPOINT_NAME if out_dir else None
    history: list[dict[str, Any]] = []
    start_epoch = 0
    elapsed_before = 0.0
    run_info = dict(run_info or {})

    if config.resume and checkpoint_path is not None and checkpoint_path.is_file():
        state = torch.load(checkpoint_path, map_location=device, weights_only=False)
        for key in ("rule", "model", "dataset"):
            if key in run_info and state["run_info"].get(key) != run_info[key]:
                raise CreditlabError(f"--resume: checkpoint {checkpoint_path} is for {key} "
                                     f"{state['run_info'].get(key)!r}, not {run_info[key]!r}")
        model.load_state_dict(state["model"])
        rule.load_state_dict(state["rule"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if reducer is not None and state.get("reducer") is not None:
            reducer.load_state_dict(state["reducer"])
        torch.set_rng_state(state["torch_rng"].cpu())  # map_location moved it to the device
        history = state["history"]
        start_epoch = state["epoch"] + 1
        elapsed_before = state.get("wall_time_s", 0.0)
        if is_main:
            print(f"resuming from {checkpoint_path} after epoch {start_epoch}", file=sys.stderr)
    elif out_dir is not None and is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / METRICS_NAME).unlink(missing_ok=True)

    fit_start = getattr(rule, "on_fit_start", None)
    if callable(fit_start):  # the rule's phase hook (PROTOCOL_SPEC.md; FitContext until creditlab.hooks lands)
        fit_start(SimpleNamespace(config=config, dataset=dataset, steps_per_epoch=steps_per_epoch, device=device))
    check_every = 1 if device.type == "cpu" else 25
    progress = _Progress(config.progress and is_main)
    started = time.perf_counter()
    model.train()

    for epoch in range(start_epoch, config.epochs):
        epoch_start = time.perf_counter()
        batch_gen = _epoch_generator(config.seed, epoch, 0)
        augment_gen = _epoch_generator(config.seed, epoch, 1)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
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
                correct += (out.output.argmax(1) == targets).sum()
                seen += len(targets)
                if step % check_every == 0 or step == steps_per_epoch - 1:
                    loss_now = out.loss.item()
                    if not math.isfinite(loss_now):
                        raise _divergence(loss_now, epoch, step, checkpoint_path, history)
                    if step % 20 == 0:
                        rate = seen / max(time.perf_counter() - epoch_start, 1e-9)
                        progress.update(0, f"loss {loss_now:.4f} acc {correct.item() / seen:.4f} "
                                           f"{rate:,.0f} samples/s")
                progress.update(1, "")
        finally:
            progress.stop()
        if not step_every_batch:
            scheduler.step()
        epoch_time = time.perf_counter() - epoch_start
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "train_loss": loss_sum.item() / max(seen, 1),
            "train_accuracy": correct.item() / max(seen, 1),
            "lr": optimizer.param_groups[0]["lr"],
            "epoch_time_s": round(epoch_time, 3),
            "samples_per_s": round(seen * world_size / max(epoch_time, 1e-9), 1),
        }
        val = evaluate(rule, dataset.val_x, dataset.val_y, config.eval_batch_size)
        if val:
            record["val_accuracy"], record["val_loss"] = val["accuracy"], val["loss"]
        test = evaluate(rule, test_x, test_y, config.eval_batch_size)
        record["test_accuracy"], record["test_loss"] = test["accuracy"], test["loss"]
        for callback in callbacks:
            record.update(callback.on_epoch_end(rule, epoch + 1))
        if not _all_finite(model):  # checked last, so a bad state is never checkpointed
            raise _divergence(float("nan"), epoch, steps_per_epoch - 1, checkpoint_path, history,
                              what="a parameter")
        history.append(record)
        if is_main:
            _report_epoch(record, config.epochs, config.progress)
            if out_dir is not None:
                with open(out_dir / METRICS_NAME, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(record) + "\n")
                _atomic_save({
                    "epoch": epoch, "model": model.state_dict(), "rule": rule.state_dict(),
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "reducer": reducer.state_dict() if reducer is not None else None,
                    "torch_rng": torch.get_rng_state(), "history": history, "run_info": run_info,
                    "config": dataclasses.asdict(config),
                    "wall_time_s": elapsed_before + time.perf_counter() - started,
                }, checkpoint_path)  # type: ignore[arg-type]
        if config.stop_at_train_accuracy is not None and record["train_accuracy"] >= config.stop_at_train_accuracy:
            break
        if config.time_budget_s is not None and time.perf_counter() - started > config.time_budget_s:
            break  # checkpointed above: --resume continues from here

    last = history[-1] if history else {}
    summary = {
        **run_info,
        "epochs": len(history),
        "test_accuracy": last.get("test_accuracy"),
        "val_accuracy": last.get("val_accuracy"),
        "train_loss": last.get("train_loss"),
        "train_accuracy": last.get("train_accuracy"),
        "wall_time_s": round(elapsed_before + time.perf_counter() - started, 3),
        "device": device_description(device),
        "commit": git_commit(),
        "seed": config.seed,
        "history": history,
    }
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


def _report_epoch(record: dict[str, Any], epochs: int, enabled: bool) -> None:
    if not enabled:
        return
    parts = [f"epoch {record['epoch']}/{epochs}", f"loss {record['train_loss']:.4f}",
             f"train {record['train_accuracy']:.4f}"]
    if "val_accuracy" in record:
        parts.append(f"val {record['val_accuracy']:.4f}")
    parts += [f"test {record['test_accuracy']:.4f}", f"{record['samples_per_s']:,.0f} samples/s",
              f"{record['epoch_time_s']:.1f}s"]
    print("  ".join(parts), file=sys.stderr, flush=True)


_CONFIG_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def config_for(model: str, **overrides: Any) -> TrainConfig:
    """A TrainConfig from the model's registered defaults, with ``overrides`` (None means default)."""
    defaults = {k: v for k, v in MODELS.get(model).defaults.items() if k in _CONFIG_FIELDS}
    defaults.update({k: v for k, v in overrides.items() if v is not None})
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
                     loaded: Dataset | None = None, **overrides: Any) -> dict[str, Any]:
    """Train ``rule`` on ``model`` with ``dataset`` using the model's defaults plus ``overrides``.

    ``callback_factory(rule, dataset)`` builds callbacks that need the data (alignment tracking);
    ``reducer_factory(rule, config)`` builds a distributed gradient reducer. ``loaded`` reuses an
    already loaded Dataset (its normalization must match).
    """
    config = config_for(model, **overrides)
    config.validate()
    learner = prepare(rule, model, dataset, config, rule_options, model_options)
    data = loaded if loaded is not None else load_dataset(
        dataset, data_dir, config.device, config.val_fraction, config.seed, config.normalization)
    if loaded is not None and data.train_x.device != torch.device(config.device):
        data = data.to(config.device)
    all_callbacks = list(callbacks) + list(callback_factory(learner, data) if callback_factory else [])
    reducer = reducer_factory(learner, config) if reducer_factory else None
    run_info = {"rule": rule, "model": model, "dataset": dataset}
    summary = fit(learner, data, config, all_callbacks, reducer, run_info)
    summary["config"] = {**dataclasses.asdict(config), "rule_options": rule_options or {},
                         "model_options": model_options or {}}
    return summary


__all__ = ["Callback", "GradientReducer", "TrainConfig", "config_for", "evaluate", "fit",
           "make_optimizer", "make_scheduler", "prepare", "train_from_names"]
