"""The papers' own numbers, once each: one module per paper (``gevb``, ``biotorch``, ``song2021``,
``gaitprop``, ``lee2015``, ``esser2015``, ``portes2022``, ``anchors``), every entry a :class:`PaperValue` with its
status and source.

This package imports nothing of creditlab's experiments or report. :func:`paper_accuracy` and
:func:`paper_step_time_ratio` look a training cell up across the papers in creditlab's names (rule,
model, dataset, model options), for the report's accuracy and step-time tables.
"""

from __future__ import annotations

from typing import Any

from creditlab.papers import anchors, biotorch, gevb
from creditlab.papers.value import STATUSES, PaperValue

Options = tuple[tuple[str, Any], ...]


def options_key(options: dict[str, Any] | None) -> Options:
    """Model options as a hashable, order-free key; falsy values are dropped (they are the defaults)."""
    return tuple(sorted((k, v) for k, v in (options or {}).items() if v))


def _accuracy_index() -> dict[tuple[str, str, str, Options], list[tuple[str, PaperValue]]]:
    """(rule, model, dataset, options) -> [(optimizer, the paper's test error %)], first one preferred."""
    index: dict[tuple[str, str, str, Options], list[tuple[str, PaperValue]]] = {}
    for (dataset, model, label), value in gevb.TEST_ERROR.items():
        rule, options = gevb.label_to_rule(model, label)
        index.setdefault((rule, model, dataset, options_key(options)), []).append(("adam", value))
    for (dataset, model, optimizer, rule), value in biotorch.TEST_ERROR.items():
        index.setdefault((rule, model, dataset, ()), []).append((optimizer, value))
    return index


_ACCURACY = _accuracy_index()


def paper_accuracy(rule: str, model: str, dataset: str, model_options: dict[str, Any] | None = None,
                   optimizer: str | None = None) -> PaperValue | None:
    """A paper's test error % for this cell (preferring the run with ``optimizer``), or None."""
    candidates = _ACCURACY.get((rule, model, dataset, options_key(model_options)), [])
    for run_optimizer, value in candidates:
        if optimizer is not None and run_optimizer == optimizer:
            return value
    return candidates[0][1] if candidates else None


def paper_step_time_ratio(rule: str, model: str, device_type: str) -> PaperValue | None:
    """The anchor's step-time ratio to its own BP for a rule, model and device type (``cpu``/``cuda``)."""
    return anchors.STEP_TIME_RATIO.get((rule, model, device_type))


__all__ = ["STATUSES", "PaperValue", "options_key", "paper_accuracy", "paper_step_time_ratio"]
