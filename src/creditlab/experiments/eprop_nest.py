"""NEST's e-prop sine-wave regression (nest-simulator's ``test_eprop_regression``): creditlab under NEST's
conventions beside NEST itself and beside the losses NEST's test file asserts.

``creditlab reproduce eprop-nest-sine`` runs :func:`creditlab.spiking.eprop_nest.simulate_nest_sine` (e-prop
under NEST's conventions, dense in time, float64) for ``eprop_iaf`` (Adam) and ``eprop_iaf_adapt``
(gradient descent), the test's two settings, and records its five per-iteration losses beside the
test file's (:data:`creditlab.papers.bellec2020.NEST_SINE_LOSSES`). With ``--opt nest_python=PATH`` (a
Python with ``nest-simulator`` in its own venv) it also runs the setting in NEST
(:mod:`creditlab.experiments.nest_sine_network`) and records NEST's losses side by side.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from creditlab.errors import OptionError
from creditlab.experiments import ExperimentContext, ExperimentOption, register_experiment, register_headline
from creditlab.papers.bellec2020 import NEST_SINE_LOSSES, NEST_SINE_SOURCE
from creditlab.report.headline import Headline, newest_runs
from creditlab.report.render import Table
from creditlab.results import make_record
from creditlab.spiking.eprop_nest import NestSineSetting, simulate_nest_sine

#: NEST neuron model -> the optimizer its test uses
NEST_MODELS = {"eprop_iaf": "adam", "eprop_iaf_adapt": "gradient_descent"}


def _relative(values: list[float] | None, reference: list[float]) -> float | None:
    if values is None:
        return None
    return max(abs(a - b) / abs(b) for a, b in zip(values, reference, strict=True))


def _losses(values: list[float] | None) -> str:
    return "–" if values is None else " ".join(f"{v:.10f}" for v in values)


def nest_tables(records: list[dict[str, Any]]) -> list[Table]:
    """Per NEST model (newest record): creditlab's losses, NEST's, the test file's, and the differences."""
    newest: dict[str, dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: str(r.get("timestamp", ""))):
        if not record["config"].get("quick"):
            newest[record["config"]["neuron_model"]] = record
    rows = []
    for model, record in newest.items():
        final = record["final"]
        rel = final.get("creditlab_vs_nest")
        rows.append([model, record["config"]["optimizer"], _losses(final["reference_losses"]),
                     _losses(final.get("creditlab_losses")), f"{final['creditlab_vs_reference']:.1e}",
                     final.get("nest_version") or "not run", "–" if rel is None else f"{rel:.1e}"])
    notes = [f"References: {NEST_SINE_SOURCE} (14 significant digits). max rel. diff.: the largest of the five "
             "iterations' relative differences."]
    return [Table(["NEST model", "optimizer", "test file's losses", "creditlab's losses", "vs test file",
                   "NEST run here", "creditlab vs NEST"], rows, notes, "NEST e-prop sine regression")]


@register_experiment("eprop-nest-sine", "NEST's e-prop sine regression: creditlab under NEST's conventions beside "
                     "NEST (separate venv) and the losses its test file asserts", summary=nest_tables,
                     options={"nest_python": ExperimentOption("", "a Python interpreter with nest-simulator "
                                                              "to run NEST beside ('': creditlab only)",
                                                              unbounded=True)})
def run(ctx: ExperimentContext) -> list[dict[str, Any]]:
    """Per NEST model: creditlab's losses, NEST's (under ``nest_python``), the test file's; one record each."""
    interpreter = ctx.options["nest_python"]
    if interpreter and not ctx.quick and not Path(interpreter).is_file():  # checked here: a path of this machine
        raise OptionError(f"--opt nest_python={interpreter!r}: no such interpreter")
    script = Path(__file__).with_name("nest_sine_network.py")
    records = []
    for model, optimizer in NEST_MODELS.items():
        started = time.perf_counter()
        reference = list(NEST_SINE_LOSSES[model])
        setting = NestSineSetting(neuron_model=model, optimizer=optimizer)
        ours = [float(v) for v in simulate_nest_sine(setting)["losses"]]
        final: dict[str, Any] = {"reference_losses": reference, "reference_source": NEST_SINE_SOURCE,
                                 "creditlab_losses": ours, "creditlab_vs_reference": _relative(ours, reference),
                                 "nest_losses": None, "nest_version": None, "nest_vs_reference": None,
                                 "creditlab_vs_nest": None}
        if interpreter and not ctx.quick:
            done = subprocess.run([interpreter, str(script), model, optimizer], capture_output=True, text=True,
                                  check=True, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
            result = json.loads(done.stdout.strip().splitlines()[-1])
            final.update(nest_losses=result["losses"], nest_version=result["nest_version"],
                         nest_vs_reference=_relative(result["losses"], reference),
                         creditlab_vs_nest=_relative(ours, result["losses"]))
        config = {"neuron_model": model, "optimizer": optimizer, "n_in": 100, "n_rec": 100, "n_out": 1,
                  "iterations": 5, "sequence_steps": 100, "numpy_seed": 1, "quick": ctx.quick,
                  "python": sys.version.split()[0]}
        record = make_record("reproduce", f"eprop-nest-sine/{model}", config, final,
                             wall_time_s=time.perf_counter() - started, device="cpu")
        ctx.record(record)
        records.append(record)
        shown = "NEST not run" if final["nest_losses"] is None else \
            f"NEST {final['nest_version']} vs test file {final['nest_vs_reference']:.1e}, creditlab vs NEST " \
            f"{final['creditlab_vs_nest']:.1e}"
        print(f"{model}: creditlab vs test file {final['creditlab_vs_reference']:.1e}; {shown}")
    return records


@register_headline("eprop", order=90)
def eprop_headline(records: list[dict[str, Any]]) -> list[Headline]:
    """README rows: the NEST losses (creditlab vs the test file) and the evidence task's stopping iterations."""
    from creditlab.papers.bellec2020 import EVIDENCE_ITERATIONS

    rows = []
    nest = newest_runs(records, "eprop-nest-sine/")
    if nest:
        worst = max(r["final"]["creditlab_vs_reference"] for r in nest.values())
        versus = [r["final"]["creditlab_vs_nest"] for r in nest.values()
                  if r["final"].get("creditlab_vs_nest") is not None]
        ours = f"max rel. diff. {worst:.1e} over {len(nest)} × 5 losses" + \
            (f"; vs NEST 3.10 run here {max(versus):.1e}" if versus else "")
        rows.append(Headline("Bellec et al. 2020 (e-prop) in NEST", "NEST's e-prop sine regression: 5 losses per "
                             f"model ({', '.join(sorted(nest))}) under NEST's conventions", ours,
                             "NEST test file's losses (rtol 1e-8)", "verified", "the test's full setting",
                             "docs/papers/eprop.md"))
    evidence = newest_runs(records, "eprop-evidence/")
    if evidence:
        def shown(label: str, record: dict[str, Any]) -> str:
            final = record["final"]
            stop = f"{final['iterations']} it." if final["stopped"] else f"> {final['iterations']} it."
            return f"{label.split('/', 1)[-1]} {stop} ({100 * final['test_error']:.1f} %)"
        task = next(iter(evidence.values()))["config"]
        rows.append(Headline("Bellec et al. 2020 (e-prop)", "evidence accumulation: iterations to < 7 % error "
                             "(test error), e-prop beside BPTT", ", ".join(shown(k, r) for k, r in evidence.items()),
                             f"≤ {EVIDENCE_ITERATIONS.value:g} iterations (authors' README)",
                             EVIDENCE_ITERATIONS.status,
                             f"task {task.get('task')} ({task.get('steps')} steps; paper 2250), batch "
                             f"{task.get('batch_size')}, seed {task.get('seed')}", "docs/papers/eprop.md"))
    return rows
