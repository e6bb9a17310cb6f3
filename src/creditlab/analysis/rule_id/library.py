"""Which creditlab rule trained a network? Identification from observables (Nayebi et al. 2020 spirit).

Every rule in :data:`creditlab.rules.RULES` whose own model check accepts the chosen small model (the
same ``check_model`` that construction runs) trains small MLPs on an MNIST subset over several seeds.
A trainer step hook, :class:`ObservableRecorder`, records every ``every`` steps, for the first
hidden layer and the readout (so networks of different depth give the same features):

- weight statistics of W, and of the update since the last record (dW),
- activation statistics of the layer's output on a fixed probe batch,

each summarized (Nayebi et al.'s ``observables_config``) by 7 statistics (norm / sqrt(numel), mean,
median, third quartile, variance, skewness, kurtosis) of 3 transforms (raw, abs, square). They are
stored as arrays beside the run (``observables.npz``: ``values`` (timepoints, layers, measures,
transforms, statistics), ``steps``), not as JSON scalars. A classifier (standardized features,
multinomial logistic regression with L2, full-batch L-BFGS, in torch) is trained on the trajectories
of some seeds of one architecture and tested on held-out seeds of the same architecture and on a
held-out architecture. Chance is 1 / (number of rules).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from creditlab.errors import CreditlabError

STATISTICS = ("norm", "mean", "median", "q3", "var", "skew", "kurtosis")
TRANSFORMS = ("raw", "abs", "sq")
MEASURES = ("weight", "update", "activation")
OBSERVABLES_NAME = "observables.npz"


def summary_statistics(values: torch.Tensor) -> np.ndarray:
    """The 7 statistics of each of the 3 transforms of a tensor (flattened) -> (3, 7) float64."""
    flat = values.detach().cpu().double().reshape(-1).numpy()
    rows = []
    for transform in (flat, np.abs(flat), flat ** 2):
        mean = transform.mean()
        centered = transform - mean
        var = (centered ** 2).mean()
        std = np.sqrt(var) if var > 0 else 1.0
        median, q3 = np.percentile(transform, [50, 75])
        rows.append([np.linalg.norm(transform) / np.sqrt(transform.size), mean, median, q3, var,
                     (centered ** 3).mean() / std ** 3, (centered ** 4).mean() / std ** 4])
    return np.asarray(rows, dtype=np.float64)


def observed_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(path, module) of the first and the last nn.Linear / nn.Conv2d of a model (first hidden, readout)."""
    layers = [(p, m) for p, m in model.named_modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    if len(layers) < 2:
        raise CreditlabError(f"rule identification needs a model with at least two weight layers, got {len(layers)}")
    return [layers[0], layers[-1]]


try:  # the trainer protocol's hook base class, once it lands (PROTOCOL_SPEC.md)
    from creditlab.hooks import TrainerHook as _HookBase  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - until the protocol is merged
    _HookBase = object  # type: ignore[assignment,misc]


class ObservableRecorder(_HookBase):  # type: ignore[misc,valid-type]
    """Trainer step hook: weight, update and probe-activation statistics every ``every`` steps.

    ``probe``: a fixed input batch (batch, *input_shape); ``values`` grows by one (layers, measures,
    transforms, statistics) entry per record. Measuring runs under ``torch.no_grad()`` on the probe
    and draws no random numbers, so the run's trajectory is the same with or without the recorder.
    """

    def __init__(self, probe: torch.Tensor, every: int = 4) -> None:
        if every < 1:
            raise CreditlabError(f"ObservableRecorder: every must be >= 1 step, got {every}")
        self.probe, self.every = probe, every
        self.values: list[np.ndarray] = []
        self.steps: list[int] = []
        self._previous: dict[str, torch.Tensor] = {}
        self._global_step = 0

    def record(self, rule: Any) -> None:
        """Measure now (also called once before training, so the trajectory starts at init)."""
        model = rule.model
        layers = observed_layers(model)
        outputs: dict[str, torch.Tensor] = {}
        handles = [module.register_forward_hook(
            lambda m, a, o, key=path: outputs.__setitem__(key, o.detach())) for path, module in layers]
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                model(self.probe.to(next(model.parameters()).device))
        finally:
            for handle in handles:
                handle.remove()
            model.train(was_training)
        entry = []
        for path, module in layers:
            weight = module.weight.detach()
            previous = self._previous.get(path, weight)
            entry.append([summary_statistics(weight), summary_statistics(weight - previous),
                          summary_statistics(outputs[path])])
            self._previous[path] = weight.clone()
        self.values.append(np.asarray(entry))
        self.steps.append(self._global_step)

    def on_step_end(self, rule: Any, step: Any) -> None:  # noqa: D102 (TrainerHook)
        self._global_step += 1
        if self._global_step % self.every == 0:
            self.record(rule)

    def save(self, directory: str | Path) -> Path:
        """Write ``observables.npz`` (values, steps, and the axis names) into ``directory``."""
        path = Path(directory) / OBSERVABLES_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, values=np.asarray(self.values), steps=np.asarray(self.steps), statistics=np.array(STATISTICS),
                 transforms=np.array(TRANSFORMS), measures=np.array(MEASURES))
        return path


def load_observables(path: str | Path) -> dict[str, np.ndarray]:
    """Read an ``observables.npz``; a missing or corrupt file raises CreditlabError saying which."""
    path = Path(path)
    try:
        with np.load(path) as data:
            values, steps = data["values"], data["steps"]
    except (OSError, KeyError, ValueError) as error:
        raise CreditlabError(f"observables file {path} is missing or corrupt ({error}); rerun the "
                             "experiment to rebuild it") from None
    if values.ndim != 5 or values.shape[2:] != (len(MEASURES), len(TRANSFORMS), len(STATISTICS)):
        raise CreditlabError(f"observables file {path} has values of shape {values.shape}; expected "
                             f"(timepoints, layers, {len(MEASURES)}, {len(TRANSFORMS)}, {len(STATISTICS)})")
    return {"values": values, "steps": steps}


def trajectory_features(values: np.ndarray, timepoints: int) -> np.ndarray:
    """Features of one run: the statistics at ``timepoints`` evenly spaced records, flattened.

    values (records, layers, measures, transforms, statistics). Heavy-tailed statistics are passed
    through sign(v) log(1 + |v|) so one run's scale does not dominate the classifier.
    """
    if len(values) < timepoints:
        raise CreditlabError(f"a run has {len(values)} observable records, fewer than the {timepoints} "
                             "timepoints the classifier uses")
    index = np.linspace(0, len(values) - 1, timepoints).round().astype(int)
    picked = values[index]
    return (np.sign(picked) * np.log1p(np.abs(picked))).reshape(-1)


@dataclass
class LogisticClassifier:
    """Multinomial logistic regression on standardized features (L2 ``penalty``), fitted by L-BFGS."""

    penalty: float = 1e-2
    iterations: int = 200

    def fit(self, features: np.ndarray, labels: np.ndarray, classes: int) -> LogisticClassifier:
        """Fit on features (n, d) and integer labels (n,) (single-threaded: tiny problem, busy machines)."""
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._fit(features, labels, classes)
        finally:
            torch.set_num_threads(threads)

    def _fit(self, features: np.ndarray, labels: np.ndarray, classes: int) -> LogisticClassifier:
        x = torch.as_tensor(features, dtype=torch.float64)
        self.mean, self.std = x.mean(0), x.std(0).clamp_min(1e-8)
        x = (x - self.mean) / self.std
        y = torch.as_tensor(labels, dtype=torch.long)
        self.weight = torch.zeros(x.shape[1], classes, dtype=torch.float64, requires_grad=True)
        self.bias = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS([self.weight, self.bias], max_iter=self.iterations, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(x @ self.weight + self.bias, y) + self.penalty * (self.weight ** 2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Predicted labels (n,)."""
        x = (torch.as_tensor(features, dtype=torch.float64) - self.mean) / self.std
        with torch.no_grad():
            return (x @ self.weight + self.bias).argmax(1).numpy()


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """counts[i, j]: runs of rule i called rule j."""
    counts = np.zeros((classes, classes), dtype=int)
    np.add.at(counts, (np.asarray(true), np.asarray(predicted)), 1)
    return counts


__all__ = ["LogisticClassifier", "ObservableRecorder", "confusion_matrix", "load_observables", "observed_layers",
           "summary_statistics", "trajectory_features"]
