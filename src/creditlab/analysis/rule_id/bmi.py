"""The BMI recurrent-network experiment of Portes, Schmid & Murray (NeurIPS 2022), reimplemented.

What the authors' code does (``jacobfulano/learning-rules-with-bmi``, branch ``experiments-neurips-2022``,
commit f6bb45e: ``rnn.py``, ``simulation.py``, ``algorithms/``, ``utils/``; read for the algorithm, not
copied)::

    u = W_rec h + W_in x                         rate RNN, tanh units, tau_rec = 10, dt = 1
    h <- h + (dt/tau_rec)(-h + tanh(u) + xi)     xi ~ N(0, sig_rec I) / sqrt(dt)   (variance sig_rec)
    y = W_bmi h + N(0, sig_out^2)                cursor position; W_bmi: the BMI decoder

    center-out reach: 4 inputs (one pulse per target, on for 20% of a 20-step trial), targets (+-1, +-1)

    SL = RFLO with credit matrix M (Murray 2019):
        p <- (1 - dt/tau) p + (dt/tau) tanh'(u) h_prev^T
        dW_rec += eta (M err) (.) p / T,        err = (y* - y) / (T - t)      ("scaled_distance")
    RL = REINFORCE / node perturbation (Miconi 2017):
        p <- (1 - dt/tau) p + (dt/tau) (xi (.) tanh'(u)) h_prev^T
        dW_rec += eta (r - rbar_k) p / T,       r = -|y* - y|^2, rbar_k a running mean per target k
    both offline: W_rec changes at the end of each trial.

Random numbers, as the authors' code draws them. ``RNNparams.rng`` is ``np.random.RandomState(72)``
and every ``RNN(params)`` takes a deep copy of it (``dataclasses.asdict``), draws its initial weights
from the copy (``W_in = g_in (rand - 1)``, ``W_rec = g_rec randn / sqrt(n)``,
``W_out = g_out (2 rand - 1) / sqrt(n)``), and then runs its session from that state: the task order
(``rng.choice(4, size=trials)``), then per step the input noise (``randn(n_in)``, times sig_in = 0), the
recurrent noise (``multivariate_normal(0, sig_rec I)``) and the readout noise (``randn(n_out)``). So
the pretraining, the session before learning, the training session and the session after learning
all start from the *same* generator state: before and after learning replay the same task order and
noise exactly (common random numbers), training shares the task order's first trials, and the seeds
of a sweep change nothing but W_bmi1 and M (and the held-out split) -- every seed sees the same
pretrained network and the same noise. :func:`initial_weights` and :func:`session_noise` draw the
same numbers in the same order from ``RandomState(network_seed)``.

W_bmi1 and M (``utils/functions.py::choose_aligned_matrix`` with ``zero=False``): replace ``n_change``
randomly chosen entries of the reference with ``(2 rand - 1) / sqrt(n_rec)`` (scale 1, while the
decoder was drawn with g_out = 2, so the norm shrinks), and keep the first draw whose |flat cosine|
with the reference is within ``tolerance`` 0.01 of the target; ``rng = RandomState(seed)`` afresh for
W_bmi1 (from W_bmi0) and again for M^T (from W_bmi1), so M keeps W_bmi1's other entries exactly.
:func:`authors_aligned_matrix`; ``n_change`` per overlap as in their sweeps (:data:`AUTHORS_N_CHANGE`).
The alternative ``construction="exact"`` draws a dense matrix of the reference's norm at the exact
cosine (:func:`~creditlab.analysis.rule_id.feedforward.matrix_with_overlap`).

Protocol: pretrain W_rec with RFLO (M = W_bmi0^T) for ``pretrain_duration`` trials; switch the decoder
to W_bmi1; record ``test_duration`` trials without learning; retrain W_rec for ``train_duration``
trials with SL (RFLO with M) or RL (REINFORCE); record ``test_duration`` trials again. The authors'
SL figure sweeps sim(M, W_bmi1^T) at sim(W_bmi0, W_bmi1) = 0.5; their RL figure sweeps
sim(W_bmi0, W_bmi1) (how far the decoder moved) at sim(M, W_bmi1^T) = 0.5, where the old decoder's
prediction is the one of an SL learner that kept M-hat = W_bmi0^T. Flow fields ``h(t+1) ~ F h(t)``
are fitted by least squares without intercept before and after (``utils/metric.py::flow_field_data``);
the observed change is ``dF_obs = F_late - F_early``. A prediction for a matrix W in
{W_bmi0, W_bmi1, M^T} is ``dF_W = sum_{trials, t} (W^T err_t) h_t^T`` over half of the training trials
(``RandomState(1975 + seed).choice``, as the authors pick them), and its score is the mean over the
*other* half's (trial, t) of ``cos(dF_W h_t, dF_obs h_t)`` (``calculate_flow_field_correlation``).

Departures: every network of a sweep runs in a batch (they all see the same noise, as in the
authors' code, so the batch changes no number); the held-out half is the true complement of the
fitted half (the notebooks' ``arange(n)[~idx_train]`` is the mirror image of the fitted indices, which
overlaps them).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from creditlab.analysis.rule_id.feedforward import matrix_cosine, matrix_with_overlap
from creditlab.errors import CreditlabError
from creditlab.seeding import numpy_generator

BMI_RULES = ("sl", "rl")
CONSTRUCTIONS = ("authors", "exact")
#: the authors' n_change per target overlap for a 2 x 50 decoder (params.txt of figures-2022-5-05 and
#: the stats pickles' ``n_changes``); other sizes scale it by (entries / 100), other overlaps take the
#: nearest listed one
AUTHORS_N_CHANGE = {0.2: 75, 0.3: 75, 0.4: 60, 0.5: 50, 0.6: 50, 0.7: 50, 0.8: 30, 0.9: 30, 1.0: 0}
#: the three predictions: the old decoder W_bmi0, the new decoder W_bmi1, the credit matrix M^T
PREDICTIONS = ("corr_w_bmi0", "corr_w_bmi1", "corr_m")
#: suffix of the correlations scored on the authors' trials (``arange(n)[~idx_train]``)
AUTHORS_SPLIT = "_authors_split"
#: the authors' held-out split seed offset (``RandomState(1975 + seed)``)
SPLIT_SEED_OFFSET = 1975


@dataclass(frozen=True)
class BMISetting:
    """The RNN, task and schedule; field names as in the authors' ``RNNparams`` and sweep notebooks
    (defaults: their ``stats_rflo_m-fig2b-5-18`` parameters, stored in that pickle)."""

    n_in: int = 4
    n_rec: int = 50
    n_out: int = 2
    tau_rec: float = 10.0
    trial_duration: int = 20
    frac_on: float = 0.2
    sig_rec: float = 0.25        # noise *variance* per unit (the authors' covariance is sig_rec * I)
    sig_out: float = 0.01
    g_in: float = 2.0
    g_rec: float = 1.5
    g_out: float = 2.0
    eta_rec: float = 0.1
    tau_reward: float = 5.0
    pretrain_duration: int = 2500
    train_duration: int = 1500
    test_duration: int = 500     # trials recorded before and after retraining
    network_seed: int = 72       # the authors' RNNparams rng = RandomState(72)
    construction: str = "authors"  # how W_bmi1 and M are drawn: "authors" or "exact"
    tolerance: float = 0.01      # the authors' |cosine| tolerance for W_bmi1 and M
    search_loop: int = 100_000   # draws tried before giving up (the first accepted draw does not depend on it)

    def validate(self) -> None:
        """Raise CreditlabError for a setting outside what the experiment allows."""
        checks = [
            (self.n_in == 4 and self.n_out == 2, "n_in = 4 and n_out = 2 (the 4-target center-out reach)"),
            (self.n_rec >= 3, f"n_rec >= 3, got {self.n_rec}"),
            (self.trial_duration >= 3, f"trial_duration >= 3 steps, got {self.trial_duration}"),
            (0 < self.frac_on <= 1, f"frac_on in (0, 1], got {self.frac_on}"),
            (self.sig_rec > 0, f"sig_rec > 0 (RL needs exploration noise), got {self.sig_rec}"),
            (self.tau_rec >= 1, f"tau_rec >= 1 (dt = 1), got {self.tau_rec}"),
            (self.tau_reward >= 1, f"tau_reward >= 1, got {self.tau_reward}"),
            (self.eta_rec > 0, f"eta_rec > 0, got {self.eta_rec}"),
            (self.g_rec >= 0, f"g_rec >= 0, got {self.g_rec}"),
            (self.pretrain_duration >= 1, f"pretrain_duration >= 1 trial, got {self.pretrain_duration}"),
            (self.train_duration >= 2, f"train_duration >= 2 trials (half fit, half held out), got "
                                       f"{self.train_duration}"),
            (self.test_duration >= 2, f"test_duration >= 2 trials (a flow field needs data), got "
                                      f"{self.test_duration}"),
            (self.construction in CONSTRUCTIONS, f"construction one of {', '.join(CONSTRUCTIONS)}, got "
                                                 f"{self.construction!r}"),
            (0 < self.tolerance < 1, f"tolerance in (0, 1), got {self.tolerance}"),
            (self.network_seed >= 0, f"network_seed >= 0, got {self.network_seed}"),
        ]
        for ok, valid in checks:
            if not ok:
                raise CreditlabError(f"BMI experiment setting out of range: need {valid}")

    def check_overlap(self, overlap: float, what: str) -> None:
        """CreditlabError unless ``overlap`` is a target this construction can draw."""
        low = 0.0 if self.construction == "authors" else -1.0
        if not low <= overlap <= 1:
            raise CreditlabError(f"{what} {overlap} out of range: a flat cosine in [{low:g}, 1] for the "
                                 f"{self.construction!r} construction")


def reach_task(setting: BMISetting) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (4, T, 4): a pulse on channel k for the first frac_on of the trial; targets (4, 2)."""
    inputs = np.zeros((4, setting.trial_duration, 4))
    on = int(setting.trial_duration * setting.frac_on)
    for k in range(4):
        inputs[k, :on, k] = 1.0
    targets = np.array([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    return inputs, targets


def initial_weights(setting: BMISetting) -> tuple[dict[str, np.ndarray], np.random.RandomState]:
    """The authors' initial weights from ``RandomState(network_seed)``, in their order, and the generator
    state after them (the state every session of theirs starts from)."""
    rng = np.random.RandomState(setting.network_seed)
    n = setting.n_rec
    weights = {"w_in": setting.g_in * (rng.rand(n, setting.n_in) - 1),
               "w_rec": setting.g_rec * rng.randn(n, n) / n ** 0.5,
               "w_out": setting.g_out * (2 * rng.rand(setting.n_out, n) - 1) / n ** 0.5}
    return weights, rng


def session_noise(setting: BMISetting, start: np.random.RandomState, trials: int) -> dict[str, np.ndarray]:
    """A session's task order and noise, drawn from a copy of ``start`` as the authors' session draws them.

    Returns ``tasks`` (trials,), ``xi`` (trials, T, n_rec) (recurrent noise, variance sig_rec, dt = 1)
    and ``out`` (trials, T, n_out) (readout noise). ``start`` itself is not advanced: each session
    replays the same stream, like each of the authors' ``RNN(params)``.
    """
    rng = copy.deepcopy(start)
    tasks = rng.choice(np.arange(4), size=trials)
    n_in, n = setting.n_in, setting.n_rec
    # per step: input noise (n_in, scaled by sig_in = 0), recurrent noise (n_rec), readout noise (n_out);
    # multivariate_normal(0, sig_rec I) is standard normals times sqrt(sig_rec) (its SVD of c I is exact)
    z = rng.standard_normal((trials, setting.trial_duration, n_in + n + setting.n_out))
    return {"tasks": tasks, "xi": np.sqrt(setting.sig_rec) * z[..., n_in:n_in + n],
            "out": setting.sig_out * z[..., n_in + n:]}


def tanh_slope(u: np.ndarray) -> np.ndarray:
    """d tanh / du, computed as the authors do (1/cosh(10 tanh(u/10))^2, which avoids overflow)."""
    return 1.0 / np.cosh(10 * np.tanh(u / 10)) ** 2


def run_session(setting: BMISetting, w_in: np.ndarray, w_rec: np.ndarray, w_out: np.ndarray,
                credit: np.ndarray | None, rule: str | None, noise: dict[str, np.ndarray],
                record: bool = False) -> dict[str, np.ndarray]:
    """Run the session ``noise`` describes for a batch of B networks; learn W_rec with ``rule`` ("sl", "rl" or None).

    Every network sees the same task order and noise (``noise`` from :func:`session_noise`). w_in
    (B, n, 4), w_rec (B, n, n), w_out (B, 2, n), credit (B, n, 2) = M for SL. Returns the final
    ``w_rec``, per-trial ``loss`` (B, trials) (mean squared distance to the target over the trial),
    and with ``record``: ``h`` (B, trials, T, n) and ``err`` (B, trials, T, 2) (the rule's own error).
    """
    s = setting
    batch, n = w_rec.shape[0], s.n_rec
    inputs, targets = reach_task(s)
    trials = len(noise["tasks"])
    w_rec = w_rec.copy()
    T, decay = s.trial_duration, 1.0 / s.tau_rec
    reward_mean = np.zeros((batch, 4))
    out: dict[str, Any] = {"loss": np.zeros((batch, trials))}
    if record:
        out["h"] = np.zeros((batch, trials, T, n))
        out["err"] = np.zeros((batch, trials, T, 2))
    for trial in range(trials):
        task = int(noise["tasks"][trial])
        x_all, y_star = inputs[task], targets[task]  # (T, 4), (2,)
        h = np.zeros((batch, n))
        trace = np.zeros((batch, n, n))
        dw = np.zeros((batch, n, n))
        r_now = np.zeros(batch)
        for t in range(T):
            h_prev = h
            u = (w_rec @ h[:, :, None])[:, :, 0] + w_in @ x_all[t]
            xi = noise["xi"][trial, t]
            h = h + (-h + np.tanh(u) + xi) * decay
            y = (w_out @ h[:, :, None])[:, :, 0] + noise["out"][trial, t]
            distance = y_star - y
            out["loss"][:, trial] += (distance ** 2).sum(1) / T
            if rule == "rl":
                err = distance
                trace *= 1 - decay  # in place: the trace is the session's largest array
                trace += (xi * tanh_slope(u))[:, :, None] * h_prev[:, None, :] / s.tau_rec
                r_now = -(distance ** 2).sum(1)
                dw += (s.eta_rec * (r_now - reward_mean[:, task]) / T)[:, None, None] * trace
            else:  # RFLO's "scaled_distance" error (also what the authors record in passive sessions)
                err = distance / (T - t)
                if rule == "sl":
                    trace *= 1 - decay
                    trace += tanh_slope(u)[:, :, None] * h_prev[:, None, :] / s.tau_rec
                    dw += (s.eta_rec * (credit @ err[:, :, None])[:, :, 0] / T)[:, :, None] * trace
            if record:
                out["h"][:, trial, t], out["err"][:, trial, t] = h, err
        if rule is not None:
            w_rec = w_rec + dw
        if rule == "rl":  # running mean reward per target, updated at trial end with the last step's reward
            reward_mean[:, task] += (r_now - reward_mean[:, task]) / s.tau_reward
    out["w_rec"] = w_rec
    return out


def flow_field(h: np.ndarray) -> np.ndarray:
    """Least-squares F (no intercept) with h(t+1) ~ F h(t), per network.  h (B, trials, T, n) -> (B, n, n)."""
    batch, _, _, n = h.shape
    before = h[:, :, :-1].reshape(batch, -1, n)
    after = h[:, :, 1:].reshape(batch, -1, n)
    return np.stack([np.linalg.lstsq(before[b], after[b], rcond=None)[0].T for b in range(batch)])


def predicted_flow_change(decoder_like: np.ndarray, err: np.ndarray, h: np.ndarray) -> np.ndarray:
    """dF_W = sum_{trials, t} (W^T err_t) h_t^T.  W (B, 2, n), err (B, trials, T, 2), h (B, ..., n) -> (B, n, n)."""
    return np.einsum("bpi,bstp,bstj->bij", decoder_like, err, h)


def flow_field_correlation(predicted: np.ndarray, observed: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Mean over (trial, t) of cos(dF_pred h_t, dF_obs h_t), per network (B,)."""
    a = np.einsum("bij,bstj->bsti", predicted, h)
    b = np.einsum("bij,bstj->bsti", observed, h)
    cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return cos.reshape(len(h), -1).mean(1)


def n_change_for(overlap: float, entries: int) -> int:
    """The authors' number of re-drawn entries for a target overlap (:data:`AUTHORS_N_CHANGE`, scaled to
    a matrix of ``entries`` entries; 0 at overlap 1)."""
    if overlap >= 1:
        return 0
    nearest = min(AUTHORS_N_CHANGE, key=lambda listed: abs(listed - overlap))
    return min(entries, max(1, round(AUTHORS_N_CHANGE[nearest] * entries / 100)))


def authors_aligned_matrix(reference: np.ndarray, overlap: float, n_change: int, rng: np.random.RandomState,
                           tolerance: float = 0.01, loop: int = 100_000) -> np.ndarray:
    """The authors' partially aligned matrix: ``n_change`` random entries of ``reference`` replaced by
    ``(2 rand - 1) / sqrt(columns)``, the first draw whose |flat cosine| with ``reference`` is strictly
    within ``tolerance`` of ``overlap``; the other entries are ``reference``'s own.

    CreditlabError when no draw of ``loop`` comes within the tolerance (name another overlap or n_change).
    """
    n_change = 0 if overlap == 1 else n_change
    columns = reference.shape[1]
    for _ in range(loop):
        candidate = np.array(reference, dtype=float, copy=True)
        flat = candidate.reshape(-1)  # a view: the copy is contiguous
        chosen = rng.choice(np.arange(flat.size), size=n_change, replace=False)
        flat[chosen] = (2 * rng.rand(len(chosen)) - 1) / columns ** 0.5
        if overlap - tolerance < abs(matrix_cosine(reference, candidate)) < overlap + tolerance:
            return candidate
    raise CreditlabError(f"no draw with {n_change} re-drawn entries has |cosine| within {tolerance} of {overlap} "
                         f"in {loop} tries; choose another overlap")


def draw_decoder_and_credit(setting: BMISetting, w_bmi0: np.ndarray, seed: int, decoder_overlap: float,
                            m_overlap: float) -> tuple[np.ndarray, np.ndarray]:
    """W_bmi1 (overlap ``decoder_overlap`` with W_bmi0) and M^T (overlap ``m_overlap`` with W_bmi1), both (2, n),
    for one seed, drawn by ``setting.construction``."""
    setting.check_overlap(decoder_overlap, "decoder overlap")
    setting.check_overlap(m_overlap, "M overlap")
    if setting.construction == "authors":
        entries = w_bmi0.size
        draw = dict(tolerance=setting.tolerance, loop=setting.search_loop)
        w_bmi1 = authors_aligned_matrix(w_bmi0, decoder_overlap, n_change_for(decoder_overlap, entries),
                                        np.random.RandomState(seed), **draw)
        m_like = authors_aligned_matrix(w_bmi1, m_overlap, n_change_for(m_overlap, entries),
                                        np.random.RandomState(seed), **draw)
        return w_bmi1, m_like
    w_bmi1 = matrix_with_overlap(w_bmi0, decoder_overlap,
                                 numpy_generator(seed, "rule-id-bmi", "w_bmi1", round(decoder_overlap * 1000)))
    m_like = matrix_with_overlap(w_bmi1, m_overlap,
                                 numpy_generator(seed, "rule-id-bmi", "credit", round(m_overlap * 1000)))
    return w_bmi1, m_like


def held_out_split(seed: int, trials: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fitted half (``RandomState(1975 + seed).choice``, as the authors draw it), its true complement,
    and the authors' scored trials ``arange(trials)[~fit]`` (= trials - 1 - fit: the fitted half's mirror
    image, which overlaps it; kept to compare with their numbers like for like)."""
    fit = np.random.RandomState(SPLIT_SEED_OFFSET + seed).choice(np.arange(trials), size=int(0.5 * trials),
                                                                  replace=False)
    return fit, np.setdiff1d(np.arange(trials), fit), np.arange(trials)[~fit]


def pretrain(setting: BMISetting) -> dict[str, Any]:
    """The pretrained network: RFLO with M = W_bmi0^T for ``pretrain_duration`` trials, from the authors'
    ``RandomState(network_seed)``; ``start`` is the generator state every later session replays."""
    setting.validate()
    weights, start = initial_weights(setting)
    noise = session_noise(setting, start, setting.pretrain_duration)
    session = run_session(setting, weights["w_in"][None], weights["w_rec"][None], weights["w_out"][None],
                          weights["w_out"].T[None], "sl", noise)
    return {"w_in": weights["w_in"], "w_rec": session["w_rec"][0], "w_out": weights["w_out"],
            "loss": session["loss"][0], "start": start}


def retrain_and_score(setting: BMISetting, net: dict[str, Any], rule: str, seeds: list[int],
                      cells: list[tuple[float, float]], chunk: int = 16) -> dict[str, Any]:
    """The decoder switch and retraining for every (seed, cell), in batches of ``chunk`` networks.

    ``cells``: (sim(W_bmi0, W_bmi1), sim(M, W_bmi1^T)) pairs. The network learns by ``rule`` ("sl":
    RFLO with that M; "rl": REINFORCE, M only scored). Returns arrays (len(seeds), len(cells)):
    ``corr_w_bmi0``, ``corr_w_bmi1``, ``corr_m`` (each prediction's held-out correlation; with suffix
    ``_authors_split`` the same scored on the authors' trials), losses before
    and after, the drawn matrices' cosines and their norms relative to W_bmi0.
    """
    if rule not in BMI_RULES:
        raise CreditlabError(f"unknown BMI rule {rule!r}; valid: {', '.join(BMI_RULES)}")
    setting.validate()
    if not seeds or not cells:
        raise CreditlabError("need at least one seed and one overlap")
    for decoder_overlap, m_overlap in cells:
        setting.check_overlap(decoder_overlap, "decoder overlap")
        setting.check_overlap(m_overlap, "M overlap")
    pairs = [(seed, cell) for seed in seeds for cell in cells]
    drawn = [draw_decoder_and_credit(setting, net["w_out"], seed, *cell) for seed, cell in pairs]
    test_noise = session_noise(setting, net["start"], setting.test_duration)  # before and after: the same
    train_noise = session_noise(setting, net["start"], setting.train_duration)
    keys = (*PREDICTIONS, *(f"{key}{AUTHORS_SPLIT}" for key in PREDICTIONS), "loss_before", "loss_after")
    values: dict[str, list[float]] = {key: [] for key in keys}
    for begin in range(0, len(pairs), chunk):
        part = range(begin, min(begin + chunk, len(pairs)))
        w_bmi1 = np.stack([drawn[i][0] for i in part])
        m_like = np.stack([drawn[i][1] for i in part])
        batch = len(part)
        w_in = np.repeat(net["w_in"][None], batch, 0)
        w_rec0 = np.repeat(net["w_rec"][None], batch, 0)
        credit = m_like.transpose(0, 2, 1)
        pre = run_session(setting, w_in, w_rec0, w_bmi1, credit, None, test_noise, record=True)
        train = run_session(setting, w_in, w_rec0, w_bmi1, credit, rule, train_noise, record=True)
        post = run_session(setting, w_in, train["w_rec"], w_bmi1, credit, None, test_noise, record=True)
        observed = flow_field(post["h"]) - flow_field(pre["h"])
        for j, i in enumerate(part):
            fit_idx, test_idx, authors_idx = held_out_split(pairs[i][0], setting.train_duration)
            h_fit, err_fit = train["h"][j:j + 1, fit_idx], train["err"][j:j + 1, fit_idx]
            for key, matrix in zip(PREDICTIONS, (net["w_out"], w_bmi1[j], m_like[j]), strict=True):
                predicted = predicted_flow_change(matrix[None], err_fit, h_fit)
                for suffix, scored in (("", test_idx), (AUTHORS_SPLIT, authors_idx)):
                    corr = flow_field_correlation(predicted, observed[j:j + 1], train["h"][j:j + 1, scored])
                    values[key + suffix].append(float(corr[0]))
            values["loss_before"].append(float(pre["loss"][j].mean()))
            values["loss_after"].append(float(post["loss"][j].mean()))
    shape = (len(seeds), len(cells))
    norm0 = np.linalg.norm(net["w_out"])
    return {
        "rule": rule, "seeds": list(seeds), "cells": [list(cell) for cell in cells],
        "setting": {k: v for k, v in asdict(setting).items()},
        **{key: np.asarray(v).reshape(shape) for key, v in values.items()},
        "cos_w_bmi0_w_bmi1": np.array([matrix_cosine(net["w_out"], d) for d, _ in drawn]).reshape(shape),
        "cos_m_w_bmi1": np.array([matrix_cosine(m, d) for d, m in drawn]).reshape(shape),
        "norm_w_bmi1": np.array([np.linalg.norm(d) / norm0 for d, _ in drawn]).reshape(shape),
        "norm_m": np.array([np.linalg.norm(m) / norm0 for _, m in drawn]).reshape(shape),
    }


def sign_flip_test(differences: np.ndarray, rng: np.random.Generator, draws: int = 20000) -> float:
    """Two-sided p-value of mean(differences) = 0 by random sign flips (paired permutation test).

    Exact enumeration when there are at most 16 pairs, else ``draws`` random flips (+1 smoothing).
    """
    d = np.asarray(differences, dtype=float).ravel()
    if d.size == 0:
        raise CreditlabError("sign_flip_test needs at least one paired difference")
    observed = abs(d.mean())
    if d.size <= 16:
        signs = 1 - 2 * ((np.arange(2 ** d.size)[:, None] >> np.arange(d.size)) & 1)
        return float((np.abs((signs * d).mean(1)) >= observed - 1e-15).mean())
    signs = rng.choice([-1.0, 1.0], size=(draws, d.size))
    return float(((np.abs((signs * d).mean(1)) >= observed - 1e-15).sum() + 1) / (draws + 1))


def per_seed_differences(difference: np.ndarray, overlaps: list[float]) -> np.ndarray:
    """One paired difference per seed (the independent unit): the mean over the overlaps below 1 of a
    (seeds, overlaps) array. Cells of one seed share its decoder draw, so they are not independent."""
    below_one = np.asarray(overlaps) < 0.999
    if not below_one.any():
        raise CreditlabError("the test needs at least one overlap below 1 (at 1 the predictions coincide)")
    return np.asarray(difference)[:, below_one].mean(1)


__all__ = ["AUTHORS_N_CHANGE", "BMISetting", "authors_aligned_matrix", "draw_decoder_and_credit", "flow_field",
           "flow_field_correlation", "held_out_split", "initial_weights", "n_change_for", "per_seed_differences",
           "predicted_flow_change", "pretrain", "reach_task", "retrain_and_score", "run_session", "session_noise",
           "sign_flip_test"]
