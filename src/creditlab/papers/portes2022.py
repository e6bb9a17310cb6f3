"""Portes, Schmid & Murray (NeurIPS 2022), "Distinguishing Learning Rules with Brain Machine Interfaces":
the BMI recurrent network's effect sizes, from the authors' released figure data.

Read from the stats pickles of ``jacobfulano/learning-rules-with-bmi``, branch
``experiments-neurips-2022``, commit f6bb45e (keys ``corr1`` = W_bmi0, ``corr2`` = W_bmi1, ``corr3`` =
M, one row per seed; each mean matches the committed figure PDF of the same name point by point).
They are the *pre-submission* figure data (the camera-ready figure may differ slightly), so they are
marked verified against those files only. Values: per seed {0, 22, 33, 47}, Corr(dF_obs, dF_pred),
the mean cosine of the observed flow-field change with the change each matrix predicts, on the
authors' scored trials; :data:`CORRELATION` holds the mean and sd (``np.std``, as their plots) over seeds.

The two figures sweep different overlaps:

- ``"sl"`` (RFLO with M; ``stats_rflo_m-fig2b-5-18``): x = sim(M, W_bmi1^T) at sim(W_bmi0, W_bmi1) = 0.5;
  predictions ``corr_m`` (M, the SL prediction), ``corr_w_bmi1`` (the new decoder), ``corr_w_bmi0``.
- ``"rl"`` (REINFORCE; ``stats_reinforce_wout``): x = sim(W_bmi0, W_bmi1), how far the decoder moved
  (the PDF labels it sim(M-hat, W_bmi1): M-hat is the old decoder), at sim(M, W_bmi1^T) = 0.5;
  ``corr_w_bmi0`` is the old decoder's prediction (the PDF's "SL(M-hat)" curve, an SL learner that
  kept M-hat = W_bmi0^T; at overlap 1 it equals ``corr_w_bmi1`` bit for bit), ``corr_w_bmi1`` the new
  decoder's (the RL prediction), ``corr_m`` the prediction of an M at overlap 0.5 with W_bmi1^T.
"""

from __future__ import annotations

import numpy as np

from creditlab.papers.value import PaperValue

REPOSITORY = "jacobfulano/learning-rules-with-bmi, branch experiments-neurips-2022, commit f6bb45e"
SOURCES = {
    "sl": f"{REPOSITORY}: experiments/NeurIPS-2022-5-16/figs-2022-5-18/stats_rflo_m-fig2b-5-18.pickle "
          "(fig2b-rflo-dF-change-m.pdf)",
    "rl": f"{REPOSITORY}: experiments/NeurIPS-2022-4-29/figures-2022-5-05/stats_reinforce_wout.pickle "
          "(fig2b-reinforce-dF-change-alignment.pdf)",
}
NOTE = "pre-submission figure data (May 2022); mean (sd) over seeds {0, 22, 33, 47}"
SEEDS = (0, 22, 33, 47)
#: the swept overlap per figure: SL sim(M, W_bmi1^T), RL sim(W_bmi0, W_bmi1)
OVERLAPS = {"sl": (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0), "rl": (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)}
#: the overlap held fixed per figure: SL sim(W_bmi0, W_bmi1), RL sim(M, W_bmi1^T)
FIXED_OVERLAP = {"sl": 0.5, "rl": 0.5}
SWEPT = {"sl": "sim(M, W_bmi1^T)", "rl": "sim(W_bmi0, W_bmi1)"}
#: the settings the pickles store (SL file: RNNparams, durations, rnn_seed); the RL file stores none, and
#: its training length is not in the released files
SETTINGS = {"sl": {"n_rec": 50, "sig_rec": 0.25, "eta_rec": 0.1, "g_rec": 1.5, "tau_rec": 10,
                   "pretrain_duration": 2500, "train_duration": 1500, "test_duration": 500, "rnn_seed": 72}}

# per seed (rows: seeds 0, 22, 33, 47; columns: OVERLAPS), four decimals, read from the pickles
PER_SEED: dict[tuple[str, str], tuple[tuple[float, ...], ...]] = {
    ("sl", "corr_w_bmi0"): ((-0.2140, -0.0750, -0.0838, 0.0137, -0.0478, -0.0024, 0.0383),
                            (-0.0432, -0.0125, 0.0108, 0.0532, 0.0241, 0.0853, 0.1211),
                            (-0.0466, -0.0518, 0.1704, 0.3303, 0.1673, 0.1760, 0.1926),
                            (-0.0239, 0.0613, 0.2148, 0.1616, 0.0642, 0.0958, 0.1780)),
    ("sl", "corr_w_bmi1"): ((0.1566, 0.3886, 0.3149, 0.3968, 0.4525, 0.5371, 0.5851),
                            (0.2788, 0.1898, 0.4271, 0.3608, 0.4643, 0.4945, 0.5810),
                            (0.1851, 0.4636, 0.4271, 0.5816, 0.5678, 0.6859, 0.7401),
                            (0.2851, 0.3839, 0.4858, 0.4182, 0.4453, 0.6362, 0.6832)),
    ("sl", "corr_m"): ((0.6952, 0.7969, 0.7020, 0.7047, 0.6937, 0.6204, 0.5851),
                       (0.7654, 0.7448, 0.7407, 0.6232, 0.6916, 0.6294, 0.5810),
                       (0.7966, 0.8095, 0.8142, 0.7704, 0.8195, 0.7503, 0.7401),
                       (0.7112, 0.7627, 0.7056, 0.6676, 0.6818, 0.7382, 0.6832)),
    ("rl", "corr_w_bmi0"): ((0.0515, -0.0117, -0.0307, -0.0051, 0.0410, 0.0822, 0.0996, 0.1606, 0.1438),
                            (-0.0360, -0.0042, 0.0444, 0.0981, 0.0179, 0.1099, 0.0656, 0.0941, 0.1422),
                            (-0.0099, 0.0456, -0.0041, 0.0383, 0.0802, 0.0904, 0.1690, 0.1171, 0.1444),
                            (-0.0822, -0.0030, -0.0003, 0.0343, 0.1207, 0.0362, 0.0931, 0.1467, 0.1448)),
    ("rl", "corr_w_bmi1"): ((0.0998, 0.2868, 0.2921, 0.2490, 0.1875, 0.1663, 0.1237, 0.1129, 0.1438),
                            (0.2502, 0.2380, 0.2978, 0.2578, 0.2252, 0.1726, 0.1428, 0.1886, 0.1422),
                            (0.2674, 0.2859, 0.2690, 0.3054, 0.1995, 0.1113, 0.1637, 0.1771, 0.1444),
                            (0.3503, 0.2914, 0.2930, 0.2674, 0.2645, 0.1065, 0.1440, 0.2054, 0.1448)),
    ("rl", "corr_m"): ((-0.0107, 0.1324, 0.1480, 0.1261, 0.0187, 0.0235, 0.0267, 0.0550, -0.0048),
                       (0.1830, 0.1087, 0.1476, 0.0354, 0.0348, 0.0793, 0.0657, 0.0640, 0.0675),
                       (0.1269, 0.2179, 0.2455, 0.2610, 0.1914, 0.1347, 0.1144, 0.2201, 0.0453),
                       (0.1434, 0.1354, 0.1061, 0.2158, 0.1513, 0.0887, 0.1659, 0.2283, 0.0802)),
}


def _build() -> dict[tuple[str, str, float], PaperValue]:
    table: dict[tuple[str, str, float], PaperValue] = {}
    for (rule, prediction), rows in PER_SEED.items():
        values = np.asarray(rows)
        for overlap, column in zip(OVERLAPS[rule], values.T, strict=True):
            mean, sd = round(float(column.mean()), 4), round(float(column.std()), 4)
            table[(rule, prediction, overlap)] = PaperValue(mean, sd, "verified", SOURCES[rule], NOTE)
    return table


CORRELATION: dict[tuple[str, str, float], PaperValue] = _build()

#: the rebuttal's significance tests (Supplement-Statistical-Significance) could not be retrieved
SIGNIFICANCE = PaperValue(None, status="not available", source="the authors' rebuttal supplement",
                          note="Supplement-Statistical-Significance-2022-7-31.ipynb is not in the stored copy "
                               "(files of 4 MiB and more are absent)")


def paper_correlation(trained_with: str, prediction: str, overlap: float) -> PaperValue | None:
    """The authors' Corr(dF_obs, dF_pred) for this cell (mean and sd over their seeds), or None where
    their data has no such point. ``overlap`` is the figure's swept overlap (see :data:`SWEPT`)."""
    return CORRELATION.get((trained_with, prediction, round(float(overlap), 3)))


def paper_per_seed(trained_with: str, prediction: str) -> np.ndarray:
    """The authors' per-seed values (seeds :data:`SEEDS` x overlaps :data:`OVERLAPS`)."""
    return np.asarray(PER_SEED[(trained_with, prediction)])


__all__ = ["CORRELATION", "FIXED_OVERLAP", "OVERLAPS", "PER_SEED", "SEEDS", "SETTINGS", "SIGNIFICANCE", "SOURCES",
           "SWEPT", "paper_correlation", "paper_per_seed"]
