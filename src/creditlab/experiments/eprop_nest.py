"""NEST's e-prop sine-wave regression (nest-simulator's ``test_eprop_regression``), run by NEST itself.

``creditlab reproduce eprop-nest-sine --opt nest_python=PATH`` runs :mod:`creditlab.experiments.nest_sine_network`
under ``PATH`` (a Python with ``nest-simulator``, in its own venv) for ``eprop_iaf`` (Adam) and
``eprop_iaf_adapt`` (gradient descent) and records NEST's five per-iteration losses beside the
reference losses NEST's test file asserts (:data:`creditlab.papers.bellec2020.NEST_SINE_LOSSES`).
Without ``nest_python`` (and with ``--quick``) it records the references alone, marked "NEST not run".

What is not here: creditlab's own e-prop under NEST's conventions. NEST's ``eprop_iaf`` differs from
the paper's (and creditlab's ``lsnn``) in ways that change every loss: weights are updated at every
time step (``optimize_each_step``) by a per-synapse Adam whose skipped steps (beyond
``eprop_isi_trace_cutoff`` after a presynaptic spike) are replayed with zero gradient; traces are
computed event by event between presynaptic spikes; the reset is applied in the spiking step; the
learning signal is the readout error one step later through separate feedback weights; the rate
regularizer is an online running average (``kappa_reg``) filtered into its own trace ``e_bar_reg``.
Matching NEST's losses to 1e-6 needs a per-step, event-equivalent re-implementation of these.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from creditlab.experiments import ExperimentContext, ExperimentOption, register_experiment
from creditlab.papers.bellec2020 import NEST_SINE_LOSSES, NEST_SINE_SOURCE
from creditlab.report.render import Table
from creditlab.results import make_record

#: NEST neuron model -> the optimizer its test uses
NEST_MODELS = {"eprop_iaf": "adam", "eprop_iaf_adapt": "gradient_descent"}


def nest_tables(records: list[dict[str, Any]]) -> list[Table]:
    """Per NEST model (newest record): NEST's losses, the test file's, the largest relative difference."""
    newest: dict[str, dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: str(r.get("timestamp", ""))):
        newest[record["config"]["neuron_model"]] = record
    rows = []
    for model, record in newest.items():
        final = record["final"]
        nest = final.get("nest_losses")
        rows.append([model, record["config"]["optimizer"], final.get("nest_version") or "not run",
                     " ".join(f"{v:.10f}" for v in final["reference_losses"]),
                     "–" if nest is None else " ".join(f"{v:.10f}" for v in nest),
                     "–" if nest is None else f"{final['max_relative_difference']:.1e}"])
    return [Table(["NEST model", "optimizer", "NEST run", "test file's losses", "NEST's losses here",
                   "max rel. diff."], rows, [f"References: {NEST_SINE_SOURCE}."], "NEST e-prop sine regression")]


@register_experiment("eprop-nest-sine", "NEST's e-prop sine-wave regression run by NEST (separate venv) beside "
                     "the losses its test file asserts", summary=nest_tables,
                     options={"nest_python": ExperimentOption("", "a Python interpreter with nest-simulator "
                                                              "('' : record the references only)")})
def run(ctx: ExperimentContext) -> list[dict[str, Any]]:
    """Run NEST's setting per model under ``nest_python`` and record its losses beside the references."""
    interpreter = ctx.options["nest_python"]
    if interpreter and not ctx.quick and not Path(interpreter).is_file():
        raise ValueError(f"--opt nest_python={interpreter!r}: no such interpreter")
    script = Path(__file__).with_name("nest_sine_network.py")
    records = []
    for model, optimizer in NEST_MODELS.items():
        started = time.perf_counter()
        reference = list(NEST_SINE_LOSSES[model])
        final: dict[str, Any] = {"reference_losses": reference, "reference_source": NEST_SINE_SOURCE,
                                 "nest_losses": None, "nest_version": None, "max_relative_difference": None}
        if interpreter and not ctx.quick:
            done = subprocess.run([interpreter, str(script), model, optimizer], capture_output=True, text=True,
                                  check=True, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
            result = json.loads(done.stdout.strip().splitlines()[-1])
            losses = result["losses"]
            relative = [abs(a - b) / abs(b) for a, b in zip(losses, reference, strict=True)]
            final.update(nest_losses=losses, nest_version=result["nest_version"], max_relative_difference=max(relative))
        config = {"neuron_model": model, "optimizer": optimizer, "n_in": 100, "n_rec": 100, "n_out": 1,
                  "iterations": 5, "sequence_steps": 100, "numpy_seed": 1, "quick": ctx.quick,
                  "python": sys.version.split()[0]}
        record = make_record("reproduce", f"eprop-nest-sine/{model}", config, final,
                             wall_time_s=time.perf_counter() - started, device="cpu")
        ctx.record(record)
        records.append(record)
        shown = "NEST not run" if final["nest_losses"] is None else \
            f"NEST {final['nest_version']}: max rel. diff. {final['max_relative_difference']:.1e}"
        print(f"{model}: {shown}")
    return records
