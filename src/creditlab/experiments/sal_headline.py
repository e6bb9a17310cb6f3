"""SAL (Gierlich et al. 2025): README's rows, one per experiment, from the records of ``sal-sampling``,
``sal-microcircuit`` and ``sal-deep`` (the paper's figure values are not available)."""

from __future__ import annotations

from typing import Any

from creditlab.experiments import register_headline
from creditlab.report.headline import Headline, newest_runs

PAPER = "Gierlich et al. 2025 (SAL)"
PAGE = "docs/papers/sal.md"
UNAVAILABLE = "no figure values or logs published"


def _fc_angles(record: dict[str, Any]) -> str:
    """The final angle(W, B) of the FC layers, first to last, as '68/58/38'."""
    angles = record["final"]["final_feedback_angle_deg"]
    return "/".join(f"{angles[k]:.0f}" for k in angles if k.startswith("classifier"))


def _phase_version(record: dict[str, Any]) -> str:
    """'' for a record of the phase as the authors' code runs it; a remark for an older one.

    Records since the phase copies the FC biases, uses the authors' refractory period and window lags
    (and checks divergence) carry ``sal_feedback_error`` in every epoch; older ones do not."""
    epochs = record.get("epochs") or []
    if epochs and all("sal_feedback_error" in e for e in epochs):
        return ""
    return "; an older phase (biases 0, refractory t_ref, lags 1–20)"


@register_headline("sal", order=70)
def sal_headline(records: list[dict[str, Any]]) -> list[Headline]:
    """Final D_KL under the strongest noise with and without SAL beside the noiseless baseline; the
    microcircuit's validation loss per feedback; the deep net's accuracy and feedback angles."""
    rows = []
    sampling = newest_runs(records, "sal-sampling/")
    for scenario, noise in (("synaptic", "σ_init"), ("plasticity", "σ_stdp")):
        levels = sorted({r["final"]["level"] for r in sampling.values() if r["final"]["scenario"] == scenario})
        if len(levels) < 2:
            continue
        cell = {(r["final"]["level"], r["final"]["sal"]): r for r in sampling.values()
                if r["final"]["scenario"] == scenario}
        top, base = levels[-1], levels[0]
        if not all(k in cell for k in ((top, True), (top, False), (base, False))):
            continue
        dkl = {k: cell[k]["final"]["final_dkl"]["median"] for k in ((top, True), (top, False), (base, False))}
        config = cell[(top, True)]["config"]
        rows.append(Headline(
            PAPER, f"sampling network: D_KL(p*‖p) under {scenario} noise returns to the noiseless level with SAL",
            f"{noise} = {top:g}: SAL {dkl[(top, True)]:.4f}, no SAL {dkl[(top, False)]:.4f}; "
            f"noiseless {dkl[(base, False)]:.4f}", UNAVAILABLE, "not available",
            f"{config.get('protocol')} protocol: {config.get('iterations')} iterations × {config.get('sleep_steps')} "
            f"steps, {cell[(top, True)]['final']['runs']} seeds (median)", PAGE))
    micro = newest_runs(records, "sal-microcircuit/")
    if {"bp", "fa", "sal"} <= set(micro):
        config = micro["sal"]["config"]
        rows.append(Headline(
            PAPER, "microcircuit teacher-student: validation loss with SAL ≈ BP, below FA",
            ", ".join(f"{rule} {micro[rule]['final']['final_val_loss']['median']:.4f}" for rule in ("bp", "sal", "fa"))
            + " (median)", UNAVAILABLE, "not available",
            f"{len(micro['sal']['final']['seeds'])} seeds, {config.get('epochs')} epochs × "
            f"{config.get('pattern_steps')} steps ({config.get('protocol')} protocol)", PAGE))
    deep = newest_runs(records, "sal-deep/")
    for dataset in sorted({name.split("/")[0] for name in deep}):
        runs = {name.split("/")[1]: r for name, r in deep.items() if name.startswith(dataset + "/")}
        shown = [rule for rule in ("bp", "kp", "sal", "fa") if rule in runs]
        if "sal" not in runs or "fa" not in runs:
            continue
        config = runs["sal"]["config"]
        sal = config.get("sal") or {}
        lr = f"{sal['sal_lr']:g}" if "sal_lr" in sal else "?"
        named = {"sal": f"sal (sal_lr {lr})"}
        rows.append(Headline(
            PAPER, f"deep conv net, {dataset}: test acc. (%) and FC feedback angles (°) with SAL between FA and BP",
            ", ".join(f"{named.get(rule, rule)} {100 * runs[rule]['final']['test_accuracy']:.2f}" for rule in shown)
            + f"; angles SAL {_fc_angles(runs['sal'])}, FA {_fc_angles(runs['fa'])}", UNAVAILABLE, "not available",
            f"{config.get('epochs')} epochs × {config.get('train_limit') or 'all'} images, seed "
            f"{runs['sal']['final'].get('seed')}; SAL phases of {sal.get('iterations', '?')} × {sal.get('steps', '?')} "
            f"steps at sal_lr {lr} (authors: 5 × 2000 at 0.04)" + _phase_version(runs["sal"]), PAGE))
    return rows
