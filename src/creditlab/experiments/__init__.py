"""Paper reproductions, registered by name for ``creditlab reproduce NAME``.

Each experiment module defines a function decorated with :func:`register_experiment`::

    @register_experiment("fa-theory-alignment", "Song et al. 2021: cos(beta, b) vs width")
    def run(ctx: ExperimentContext) -> list[dict]:
        ...  # ctx.quick, ctx.device, ctx.out_dir, ctx.data_dir, ctx.seed, ctx.options
        rec = make_record("reproduce", "fa-theory-alignment", config, final)
        ctx.record(rec)         # appends to ctx.out_dir/results.jsonl
        ctx.figure(fig, "alignment_vs_width")   # saves ctx.out_dir/alignment_vs_width.png
        return [rec]

An experiment may take options (``creditlab reproduce NAME --opt KEY=VALUE``, values parsed as YAML
scalars or lists), each declared once with its type and range (:class:`creditlab.options.Option`,
here called ``ExperimentOption``): ``register_experiment(name, description, options={"widths":
ExperimentOption(None, "widths p, e.g. [800,1600]", type=list, item=int, minimum=1)})``; the run reads
``ctx.options["widths"]``. :func:`resolve_options` checks every value before the run starts: unknown
keys, wrong types, values out of range and empty lists are refused, naming the option and what is valid.

``quick=True`` must run the same code path on a reduced problem in about two minutes on 2 CPU
cores; its numbers are smoke checks, never quoted as results.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from creditlab.options import Option, resolve
from creditlab.registry import Registry, import_submodules
from creditlab.results import append_record

if TYPE_CHECKING:
    from creditlab.report.headline import Headline
    from creditlab.report.render import Table


@dataclass
class ExperimentContext:
    """Where and how an experiment runs."""

    quick: bool = False
    device: str = "cpu"
    out_dir: Path = field(default_factory=lambda: Path("runs/reproduce"))
    data_dir: str | os.PathLike | None = None
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    def record(self, record: dict[str, Any]) -> None:
        """Append a results record to ``out_dir/results.jsonl``."""
        append_record(self.out_dir / "results.jsonl", record)

    def figure(self, fig: Any, stem: str) -> Path:
        """Save a matplotlib figure as ``out_dir/<stem>.png`` and close it."""
        import matplotlib.pyplot as plt

        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"{stem}.png"
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        return path


#: records -> the report's tables for an experiment (``creditlab.report.render.Table``)
Summary = Callable[[list[dict[str, Any]]], list["Table"]]


#: one option of an experiment: its default (used when ``--opt`` does not set it), a help line, and the
#: values it takes (``ExperimentOption(default, help, type=..., minimum=..., choices=...)``)
ExperimentOption = Option


@dataclass(frozen=True)
class Experiment:
    """A registered reproduction; ``summary(records)``, where given, is how the report shows its records;
    ``options`` are the keys ``--opt`` may set."""

    name: str
    description: str
    run: Callable[[ExperimentContext], list[dict[str, Any]]]
    summary: Summary | None = None
    options: dict[str, ExperimentOption] = field(default_factory=dict)


def resolve_options(experiment: Experiment, given: dict[str, Any]) -> dict[str, Any]:
    """Every option of ``experiment``: the defaults, overridden by the checked values of ``given``;
    :class:`creditlab.options.OptionValueError` (a CreditlabError) for an unknown key or a value its
    option does not take, naming the option, the value and what is valid."""
    return resolve(experiment.options, given, f"experiment {experiment.name!r}")


EXPERIMENTS: Registry[Experiment] = Registry("experiment")


Run = Callable[[ExperimentContext], list[dict[str, Any]]]


def register_experiment(name: str, description: str, summary: Summary | None = None,
                        options: dict[str, ExperimentOption] | None = None) -> Callable[[Run], Run]:
    """Decorator registering ``run(ctx) -> records`` as the experiment ``name``; ``summary(records)``
    turns its records into the report's tables (default: the report's generic per-record tables);
    ``options`` are the keys ``--opt KEY=VALUE`` may set (``ctx.options``)."""

    def decorator(run: Run) -> Run:
        EXPERIMENTS.register(name)(Experiment(name, description, run, summary, dict(options or {})))
        return run

    return decorator


#: records -> the README's rows for a paper's claims (``creditlab.report.headline.Headline``)
HeadlineFn = Callable[[list[dict[str, Any]]], list["Headline"]]

#: (order, name) -> headline function; the README lists papers by ``order``
HEADLINES: dict[tuple[int, str], HeadlineFn] = {}


def register_headline(name: str, order: int) -> Callable[[HeadlineFn], HeadlineFn]:
    """Decorator registering ``headline(records) -> [Headline, ...]``: a paper's claims for README's
    results table, computed from every record (rows a paper's records do not hold yet are left out)."""

    def decorator(fn: HeadlineFn) -> HeadlineFn:
        HEADLINES[(order, name)] = fn
        return fn

    return decorator


def load_all() -> Registry[Experiment]:
    """Import every experiment module (so each registers) and return the registry."""
    import_submodules(__name__)
    return EXPERIMENTS


__all__ = ["EXPERIMENTS", "HEADLINES", "Experiment", "ExperimentContext", "ExperimentOption", "HeadlineFn",
           "Summary", "load_all", "register_experiment", "register_headline", "resolve_options"]
