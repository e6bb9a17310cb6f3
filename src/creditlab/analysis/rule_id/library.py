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

Features: the statistics at a few evenly spaced records, either as recorded (``scaling="none"``) or
divided by each layer's own scale at initialization (``scaling="init"``, :func:`scale_normalised`),
which removes what a layer's width does to its init scale (PyTorch's default init scales weights by
1/sqrt(fan_in)), so a classifier trained on one architecture is not reading widths.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from creditlab.errors import CreditlabError
from creditlab.hooks import TrainerHook

STATISTICS = ("norm", "mean", "median", "q3", "var", "skew", "kurtosis")
TRANSFORMS = ("raw", "abs", "sq")
MEASURES = ("weight", "update", "activation")
OBSERVABLES_NAME = "observables.npz"


def summary_statistics(values: torch.Tensor) -> np.ndarray:
    """The 7 statistics of each of the 3 transforms of a tensor (flattened) -> (3, 7) float64.

    Elementwise numpy only (products, no BLAS ``dot`` and no float powers: both are slow on a busy
    machine and this runs at every record).
    """
    flat = values.detach().cpu().double().reshape(-1).numpy()
    rows = []
    for transform in (flat, np.abs(flat), flat * flat):
        mean = transform.mean()
        centered = transform - mean
        squared = centered * centered
        var = squared.mean()
        std = np.sqrt(var) if var > 0 else 1.0
        median, q3 = np.percentile(transform, [50, 75])
        rows.append([np.sqrt((transform * transform).mean()), mean, median, q3, var,
                     (squared * centered).mean() / std ** 3, (squared * squared).mean() / std ** 4])
    return np.asarray(rows, dtype=np.float64)


def observed_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(path, module) of the first and the last nn.Linear / nn.Conv2d of a model (first hidden, readout)."""
    layers = [(p, m) for p, m in model.named_modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    if len(layers) < 2:
        raise CreditlabError(f"rule identification needs a model with at least two weight layers, got {len(layers)}")
    return [layers[0], layers[-1]]


class ObservableRecorder(TrainerHook):
    """Trainer step hook: weight, update and probe-activation statistics every ``every`` steps.

    ``probe``: a fixed input batch (batch, *input_shape); ``values`` grows by one (layers, measures,
    transforms, statistics) entry per record: one at the start of the fit (the initialization) and one
    after every ``every``-th training step. Measuring runs under ``torch.no_grad()`` on the probe and
    draws no random numbers, so the run's trajectory is the same with or without the recorder. Its
    state (records so far, the weights of the last record, the step count) is checkpointed by the
    trainer (``state_dict``), so a resumed fit continues the same arrays.
    """

    def __init__(self, probe: torch.Tensor, every: int = 4) -> None:
        if not isinstance(every, int) or every < 1:
            raise CreditlabError(f"ObservableRecorder: every must be an integer >= 1 step, got {every!r}")
        self.probe, self.every = probe, every
        self.values: list[np.ndarray] = []
        self.steps: list[int] = []
        self._previous: dict[str, torch.Tensor] = {}
        self._global_step = 0

    def record(self, rule: Any) -> None:
        """Measure now."""
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

    def on_fit_start(self, rule: Any, context: Any) -> None:
        """The first record, at the initialization (not again when a resumed fit restored records)."""
        if not self.values:
            self.record(rule)

    def on_step_end(self, rule: Any, step: Any) -> None:
        """Count the step; record after every ``every``-th."""
        self._global_step += 1
        if self._global_step % self.every == 0:
            self.record(rule)

    def state_dict(self) -> dict[str, Any]:
        """Records so far, the last record's weights and the step count (tensors: weights-only loadable)."""
        return {"values": torch.from_numpy(np.asarray(self.values, dtype=np.float64).reshape(
                    len(self.values), *(self.values[0].shape if self.values else (0,)))),
                "steps": torch.tensor(self.steps, dtype=torch.long),
                "previous": {k: v.clone() for k, v in self._previous.items()},
                "global_step": self._global_step, "every": self.every}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output; CreditlabError if it is not a recorder's state or was
        written with another ``every``."""
        try:
            values, steps = state["values"], state["steps"]
            previous, global_step, every = state["previous"], int(state["global_step"]), int(state["every"])
            if len(values) != len(steps) or not isinstance(previous, dict):
                raise ValueError(f"{len(values)} records but {len(steps)} steps")
        except (KeyError, TypeError, ValueError) as error:
            raise CreditlabError(f"ObservableRecorder: the saved state is not an observable recorder's "
                                 f"({type(error).__name__}: {error})") from None
        if every != self.every:
            raise CreditlabError(f"ObservableRecorder: the saved state recorded every {every} steps, this "
                                 f"recorder every {self.every}")
        self.values = [v.numpy() for v in values]
        self.steps = [int(s) for s in steps]
        self._previous = {k: v.clone() for k, v in previous.items()}
        self._global_step = global_step

    def save(self, directory: str | Path, run_config: dict[str, Any] | None = None) -> Path:
        """Write ``observables.npz`` (values, steps, the axis names and the run's config as JSON) into
        ``directory``."""
        path = Path(directory) / OBSERVABLES_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, values=np.asarray(self.values), steps=np.asarray(self.steps), statistics=np.array(STATISTICS),
                 transforms=np.array(TRANSFORMS), measures=np.array(MEASURES),
                 run_config=np.array(json.dumps(run_config or {}, sort_keys=True)))
        return path


def load_observables(path: str | Path, run_config: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Read an ``observables.npz``. A missing, corrupt or malformed file, or (``run_config`` given) one
    recorded for another run, raises CreditlabError naming the file and what is wrong."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            values, steps = data["values"], data["steps"]
            stored = json.loads(str(data["run_config"])) if "run_config" in data.files else None
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise CreditlabError(f"observables file {path} is missing or corrupt ({type(error).__name__}: {error}); "
                             "delete it and rerun the experiment to rebuild it") from None
    if values.ndim != 5 or values.shape[2:] != (len(MEASURES), len(TRANSFORMS), len(STATISTICS)) \
            or len(steps) != len(values):
        raise CreditlabError(f"observables file {path} has values of shape {values.shape} and {len(steps)} "
                             f"steps; expected (timepoints, layers, {len(MEASURES)}, {len(TRANSFORMS)}, "
                             f"{len(STATISTICS)}) with one step per timepoint")
    if run_config is not None:
        wanted = json.loads(json.dumps(run_config, sort_keys=True))
        if stored != wanted:
            differing = sorted(k for k in set(stored or {}) | set(wanted) if (stored or {}).get(k) != wanted.get(k))
            raise CreditlabError(f"observables file {path} was recorded for another run (differs in: "
                                 f"{', '.join(differing) or 'no run config stored'}); delete it or rerun "
                                 "without reusing observables")
    return {"values": values, "steps": steps}


#: powers of the tensor's scale in each statistic (rows: transforms raw, abs, sq; columns: STATISTICS)
SCALE_POWERS = np.array([[1, 1, 1, 1, 2, 0, 0], [1, 1, 1, 1, 2, 0, 0], [2, 2, 2, 2, 4, 0, 0]], dtype=np.float64)
FEATURE_SCALINGS = ("none", "init")


def scale_normalised(values: np.ndarray) -> np.ndarray:
    """Statistics made free of each layer's scale at initialization (so of its width's init scale).

    values (records, layers, measures, transforms, statistics). Per layer, weights and updates are
    divided by the initial weight RMS ``s_w`` (record 0's weight norm / sqrt(numel)), activations by
    the initial activation RMS ``s_a``, each statistic by the power of the scale it carries
    (:data:`SCALE_POWERS`: mean, median, q3 and the norm scale as s (s^2 for the squared transform),
    the variance as s^2 (s^4), skewness and kurtosis not at all).
    """
    out = np.array(values, dtype=np.float64, copy=True)
    for layer in range(out.shape[1]):
        weight_rms, activation_rms = out[0, layer, 0, 0, 0], out[0, layer, 2, 0, 0]
        for measure, scale in enumerate((weight_rms, weight_rms, activation_rms)):
            if not scale > 0:
                raise CreditlabError(f"layer {layer}'s initial {MEASURES[measure]} scale is {scale}: "
                                     "its statistics cannot be normalised (an all-zero layer?)")
            out[:, layer, measure] /= scale ** SCALE_POWERS
    return out


def trajectory_features(values: np.ndarray, timepoints: int, scaling: str = "none") -> np.ndarray:
    """Features of one run: the statistics at ``timepoints`` evenly spaced records, flattened.

    values (records, layers, measures, transforms, statistics); ``scaling`` "init" first applies
    :func:`scale_normalised`. Heavy-tailed statistics are passed through sign(v) log(1 + |v|) so one
    run's scale does not dominate the classifier.
    """
    if scaling not in FEATURE_SCALINGS:
        raise CreditlabError(f"unknown feature scaling {scaling!r}; valid: {', '.join(FEATURE_SCALINGS)}")
    if not isinstance(timepoints, int) or timepoints < 2:
        raise CreditlabError(f"timepoints must be an integer >= 2 (the initialization and later), got {timepoints!r}")
    if len(values) < timepoints:
        raise CreditlabError(f"a run has {len(values)} observable records, fewer than the {timepoints} "
                             "timepoints the classifier uses: record more often (every) or train longer")
    if scaling == "init":
        values = scale_normalised(values)
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


__all__ = ["FEATURE_SCALINGS", "LogisticClassifier", "ObservableRecorder", "confusion_matrix", "load_observables",
           "observed_layers", "scale_normalised", "summary_statistics", "trajectory_features"]
