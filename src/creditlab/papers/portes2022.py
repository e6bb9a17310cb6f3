"""Portes, Schmid & Murray (NeurIPS 2022), "Distinguishing Learning Rules with Brain Machine Interfaces":
the BMI recurrent network's effect sizes, from the authors' released figure data.

Read from the stats pickles of ``jacobfulano/learning-rules-with-bmi``, branch
``experiments-neurips-2022``, commit f6bb45e (``shared/research/tables_recovered.md`` §6.2): each value
matches the committed figure PDF of the same name point by point. They are the *pre-submission*
figure data (the camera-ready figure may differ slightly), so they are marked verified against those
files only. Values: mean over seeds {0, 22, 33, 47} of Corr(dF_obs, dF_pred), the mean held-out
cosine of the observed flow-field change with the change each decoder predicts; ``sd`` over seeds
where the notes give it (the RL file's are not given per point).

Keys of :data:`CORRELATION`: (trained_with, prediction, overlap) with trained_with ``"sl"`` (RFLO
with M; overlap = sim(M, W_bmi1^T)) or ``"rl"`` (REINFORCE; overlap = sim(M-hat, W_bmi1)), and
prediction ``"corr_m"`` (M or M-hat), ``"corr_w_bmi1"`` (the new decoder), ``"corr_w_bmi0"`` (the
old decoder, SL file only).
"""

from __future__ import annotations

from creditlab.papers.value import PaperValue

REPOSITORY = "jacobfulano/learning-rules-with-bmi, branch experiments-neurips-2022, commit f6bb45e"
SOURCES = {
    "sl": f"{REPOSITORY}: experiments/NeurIPS-2022-5-16/figs-2022-5-18/stats_rflo_m-fig2b-5-18.pickle "
          "(fig2b-rflo-dF-change-m.pdf); tables_recovered.md §6.2(a)",
    "rl": f"{REPOSITORY}: experiments/NeurIPS-2022-4-29/figures-2022-5-05/stats_reinforce_wout.pickle "
          "(fig2b-reinforce-dF-change-alignment.pdf); tables_recovered.md §6.2(b)",
}
NOTE = "pre-submission figure data (May 2022); mean over seeds {0, 22, 33, 47}"
SEEDS = (0, 22, 33, 47)
OVERLAPS = {"sl": (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0), "rl": (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)}

# (mean, sd) per overlap, as tables_recovered.md §6.2 prints them
_SL = {
    "corr_m": ((0.742, 0.041), (0.778, 0.026), (0.741, 0.045), (0.692, 0.054), (0.722, 0.057), (0.685, 0.060),
               (0.647, 0.067)),
    "corr_w_bmi1": ((0.226, 0.056), (0.357, 0.101), (0.414, 0.062), (0.439, 0.085), (0.482, 0.050), (0.588, 0.076),
                    (0.647, 0.067)),
    "corr_w_bmi0": ((-0.082, 0.077), (-0.019, 0.052), (0.078, 0.120), (0.140, 0.123), (0.052, 0.078), (0.089, 0.063),
                    (0.133, 0.061)),
}
_RL = {
    "corr_w_bmi1": (0.242, 0.276, 0.288, 0.270, 0.219, 0.139, 0.144, 0.171, 0.144),
    "corr_m": (-0.019, 0.007, 0.002, 0.041, 0.065, 0.080, 0.107, 0.130, 0.144),
}


def _build() -> dict[tuple[str, str, float], PaperValue]:
    table: dict[tuple[str, str, float], PaperValue] = {}
    for prediction, cells in _SL.items():
        for overlap, (mean, sd) in zip(OVERLAPS["sl"], cells, strict=True):
            table[("sl", prediction, overlap)] = PaperValue(mean, sd, "verified", SOURCES["sl"], NOTE)
    for prediction, means in _RL.items():
        for overlap, mean in zip(OVERLAPS["rl"], means, strict=True):
            table[("rl", prediction, overlap)] = PaperValue(mean, None, "verified", SOURCES["rl"], NOTE)
    return table


CORRELATION: dict[tuple[str, str, float], PaperValue] = _build()

#: the rebuttal's significance tests (Supplement-Statistical-Significance) could not be retrieved
SIGNIFICANCE = PaperValue(None, status="not available", source="the authors' rebuttal supplement",
                          note="Supplement-Statistical-Significance could not be retrieved (tables_recovered.md §6.2)")


def paper_correlation(trained_with: str, prediction: str, overlap: float) -> PaperValue | None:
    """The authors' Corr(dF_obs, dF_pred) for this cell, or None where their data has no such point."""
    return CORRELATION.get((trained_with, prediction, round(float(overlap), 3)))


__all__ = ["CORRELATION", "OVERLAPS", "SEEDS", "SIGNIFICANCE", "SOURCES", "paper_correlation"]
