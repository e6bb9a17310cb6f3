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

# per seed (rows: seeds 0, 22, 33, 47; columns: OVERLAPS), every digit of the pickles' float64 values
PER_SEED: dict[tuple[str, str], tuple[tuple[float, ...], ...]] = {
    ("sl", "corr_w_bmi0"): (
        (-0.21401412761282487, -0.07500414577899608, -0.08380138135368306, 0.013733046781958476,
         -0.04775601338831566, -0.0024011050769919256, 0.03831602280474373),
        (-0.04317981211873842, -0.012450185936384375, 0.010826554377917463, 0.05319059507951248,
         0.024104555617466956, 0.08531433795222329, 0.1211439432813133),
        (-0.04661422118231589, -0.05183323008599159, 0.17035275364677321, 0.3303060038541526,
         0.1673228833891778, 0.1760460946432865, 0.19258060976883748),
        (-0.023936415673150743, 0.06130314659449887, 0.2147907004902286, 0.16160558488821655,
         0.06417517601879583, 0.09579780623896895, 0.17799331978826044),
    ),
    ("sl", "corr_w_bmi1"): (
        (0.15659515839867266, 0.38863955628029495, 0.3149024020587745, 0.3967518608893559,
         0.45253921747623643, 0.5371111776030625, 0.5851011894975928),
        (0.2787881992588284, 0.18984482931508528, 0.4270846127292988, 0.3608267237851121, 0.46430593169109574,
         0.49447317957351966, 0.5809517200907279),
        (0.18512905602526614, 0.46360104139498026, 0.42707881031568967, 0.5816276358397472,
         0.5678031312110676, 0.6859230002623619, 0.7401177767101523),
        (0.28507594180959633, 0.3839333987332543, 0.4857523602892179, 0.41817523136970464, 0.4452649805755178,
         0.6362329879287667, 0.6832235973319536),
    ),
    ("sl", "corr_m"): (
        (0.6952215381961571, 0.7969490277573879, 0.7020366530111971, 0.7047267557518923, 0.6937295115951752,
         0.6203673843230492, 0.5851011894975928),
        (0.765433614947142, 0.7447901332867356, 0.740661735964819, 0.6232404878091091, 0.6915836870676336,
         0.6293647353640772, 0.5809517200907279),
        (0.7966260344518311, 0.8095346339718478, 0.8141617535681119, 0.7704082212302803, 0.8194863361668103,
         0.7502923948119913, 0.7401177767101523),
        (0.7111978127143395, 0.7627071717982423, 0.7055870433586412, 0.6676454481767672, 0.6818073118243606,
         0.7381671329833638, 0.6832235973319536),
    ),
    ("rl", "corr_w_bmi0"): (
        (0.051466624744274374, -0.011658239267740093, -0.03067161009916513, -0.005138706772421393,
         0.04096220326967318, 0.08219019984749, 0.09962367806838557, 0.16058888436732122,
         0.14379277954259753),
        (-0.035976965007335805, -0.004167274894295157, 0.04440469604557098, 0.09811291251830513,
         0.017912183519651393, 0.10987562399413942, 0.06562968646521682, 0.09414377311146864,
         0.1422205902858176),
        (-0.009940443291148059, 0.04559051793984472, -0.004101718442883435, 0.03827086920220614,
         0.08023130862590155, 0.09040303533913184, 0.16896199066216702, 0.11705213533964202,
         0.1443507858583662),
        (-0.08217749214970166, -0.003042278592812306, -0.0003233578293854379, 0.034315110958366916,
         0.12070096042524012, 0.03615692085682515, 0.0931045234940918, 0.14668904675696295,
         0.1448489604891038),
    ),
    ("rl", "corr_w_bmi1"): (
        (0.09983967224867409, 0.28676572726304606, 0.2921221162750131, 0.24901257520443046,
         0.1875236048175694, 0.1663337653571323, 0.12372545111655646, 0.11288350249003788,
         0.14379277954259753),
        (0.2502126894387118, 0.2380418284090612, 0.2977875578114949, 0.25783205296291123, 0.2252271376366456,
         0.17256835543871182, 0.14276652625870984, 0.1885606494998427, 0.1422205902858176),
        (0.26738136281732133, 0.285902245248192, 0.26900641100030825, 0.3054483014665878, 0.19952736084564904,
         0.11134973984823787, 0.16365236194112998, 0.17710455880213377, 0.1443507858583662),
        (0.3502794200741709, 0.29139396846633486, 0.2930011009692516, 0.26735531180371097, 0.2645024038267093,
         0.10649088566651262, 0.14402618385245847, 0.20540004488724825, 0.1448489604891038),
    ),
    ("rl", "corr_m"): (
        (-0.01071034082003862, 0.13235156767902465, 0.147977286414316, 0.12611991093405586,
         0.01869285950726491, 0.023516774579931933, 0.02669534562140248, 0.05503545267821194,
         -0.004785751029844586),
        (0.18295073052662394, 0.10873336516227583, 0.14757716702703416, 0.035440491467504436,
         0.03481253247991788, 0.07925266997444966, 0.06569065633764835, 0.06399263092302235,
         0.06746716418380894),
        (0.12689924144328585, 0.21791970603132688, 0.2455133481270187, 0.26103568819570716,
         0.1913713624876749, 0.13469070591431823, 0.11438948480834273, 0.2201343422492594,
         0.045292154940482124),
        (0.14338340802937288, 0.13537769979536698, 0.10614983678131586, 0.21583958925166874,
         0.15134930528280793, 0.08872023949108565, 0.1659035908635888, 0.2282695341229483,
         0.08017023246785812),
    ),
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
