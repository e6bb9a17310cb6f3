"""The BMI recurrent-network experiment of Portes, Schmid & Murray (NeurIPS 2022), reimplemented.

What the authors' code does (``jacobfulano/learning-rules-with-bmi``, branch ``experiments-neurips-2022``;
read for the algorithm, not copied; notes in ``shared/research/gaitprop_tp_slrl.md`` §3.3)::

    u = W_rec h + W_in x                         rate RNN, tanh units, tau = 10, dt = 1
    h <- h + (dt/tau)(-h + tanh(u) + xi)         xi ~ N(0, sig_rec I) / sqrt(dt)   (variance sig_rec)
    y = W_bmi h + N(0, sig_out^2)                cursor position; W_bmi: the BMI decoder

    center-out reach: 4 inputs (one pulse per target, on for 20% of a 20-step trial), targets (+-1, +-1)

    SL = RFLO with credit matrix M (Murray 2019):
        p <- (1 - dt/tau) p + (dt/tau) tanh'(u) h_prev^T
        dW_rec += eta (M err) (.) p / T,        err = (y* - y) / (T - t)      ("scaled_distance")
    RL = REINFORCE / node perturbation (Miconi 2017):
        p <- (1 - dt/tau) p + (dt/tau) (xi (.) tanh'(u)) h_prev^T
        dW_rec += eta (r - rbar_k) p / T,       r = -|y* - y|^2, rbar_k a running mean per target k
    both offline: W_rec changes at the end of each trial.

Protocol: pretrain W_rec with RFLO (M = W_bmi0^T) for ``pretrain_trials``; switch the decoder to
W_bmi1 (flat cosine ``decoder_overlap`` with W_bmi0); record ``window`` trials without learning;
retrain W_rec for ``train_trials`` with SL (RFLO, M of flat cosine ``overlap`` with W_bmi1^T) or RL;
record ``window`` trials again. Flow fields ``h(t+1) ~ F h(t)`` are fitted by least squares without
intercept before and after (``utils/metric.py::flow_field_data``); the observed change is
``dF_obs = F_late - F_early``. A prediction for a matrix W in {W_bmi0, W_bmi1, M} is
``dF_W = sum_{trials, t} (W^T err_t) h_t^T`` over half of the training trials, and its score is the
mean over the *other* half's (trial, t) of ``cos(dF_W h_t, dF_obs h_t)``
(``calculate_flow_field_correlation``; our held-out half is a true complement, unlike the notebook's
``~idx_train``).

Departures, all for the CPU budget or clarity: every (seed, overlap) network of a sweep runs at once
as a batch (one numpy generator per sweep, ``seeding.numpy_generator(seed, "rule-id-bmi", rule, *seeds)``);
one pretraining, independent of the seeds (as the notebooks do: the network's own generator is fixed
and the seeds change the decoder, M and the noise); W_bmi1 and M are built with an exact flat cosine
(:func:`~creditlab.analysis.rule_id.feedforward.matrix_with_overlap`) instead of the authors'
random search over re-drawn entries (``choose_aligned_matrix``, tolerance 0.01).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from creditlab.analysis.rule_id.feedforward import matrix_cosine, matrix_with_overlap
from creditlab.errors import CreditlabError
from creditlab.seeding import numpy_generator

BMI_RULES = ("sl", "rl")


@dataclass(frozen=True)
class BMISetting:
    """The RNN, task and schedule (defaults: the authors' ``stats_rflo_m`` parameters, params.txt)."""

    n_in: int = 4
    n_rec: int = 50
    n_out: int = 2
    tau: float = 10.0
    trial_duration: int = 20
    frac_on: float = 0.2
    sig_rec: float = 0.25        # noise *variance* per unit (the authors' covariance is sig_rec * I)
    sig_out: float = 0.01
    g_in: float = 2.0
    g_rec: float = 1.5
    g_out: float = 2.0
    eta_rec: float = 0.1
    eta_rec_rl: float = 0.1
    tau_reward: float = 5.0
    pretrain_trials: int = 2500
    train_trials: int = 1500
    window: int = 500            # trials recorded before and after retraining
    decoder_overlap: float = 0.5  # flat cosine(W_bmi0, W_bmi1)
    network_seed: int = 72       # the authors' RNNparams rng

    def validate(self) -> None:
        """Raise CreditlabError for a setting outside what the experiment allows."""
        checks = [
            (self.n_in == 4 and self.n_out == 2, "n_in = 4 and n_out = 2 (the 4-target center-out reach)"),
            (self.n_rec >= 3, f"n_rec >= 3, got {self.n_rec}"),
            (self.trial_duration >= 3, f"trial_duration >= 3 steps, got {self.trial_duration}"),
            (0 < self.frac_on <= 1, f"frac_on in (0, 1], got {self.frac_on}"),
            (self.sig_rec > 0, f"sig_rec > 0 (RL needs exploration noise), got {self.sig_rec}"),
            (self.tau >= 1 and self.tau_reward >= 1, "tau >= 1 and tau_reward >= 1"),
            (self.eta_rec > 0 and self.eta_rec_rl > 0, "learning rates > 0"),
            (self.pretrain_trials >= 1 and self.train_trials >= 2, "pretrain_trials >= 1, train_trials >= 2"),
            (self.window >= 2, f"window >= 2 trials (a flow field needs data), got {self.window}"),
            (-1 <= self.decoder_overlap <= 1, f"decoder_overlap in [-1, 1], got {self.decoder_overlap}"),
        ]
        for ok, valid in checks:
            if not ok:
                raise CreditlabError(f"BMI experiment setting out of range: need {valid}")


def reach_task(setting: BMISetting) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (4, T, 4): a pulse on channel k for the first frac_on of the trial; targets (4, 2)."""
    inputs = np.zeros((4, setting.trial_duration, 4))
    on = int(setting.trial_duration * setting.frac_on)
    for k in range(4):
        inputs[k, :on, k] = 1.0
    targets = np.array([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    return inputs, targets


def initial_weights(setting: BMISetting, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """W_in in [-g_in, 0], W_rec ~ g_rec N(0, 1/n), W_out ~ g_out U(-1, 1)/sqrt(n) (the authors' init)."""
    n = setting.n_rec
    return {"w_in": setting.g_in * (rng.random((n, setting.n_in)) - 1),
            "w_rec": setting.g_rec * rng.standard_normal((n, n)) / np.sqrt(n),
            "w_out": setting.g_out * (2 * rng.random((setting.n_out, n)) - 1) / np.sqrt(n)}


def tanh_slope(u: np.ndarray) -> np.ndarray:
    """d tanh / du, computed as the authors do (1/cosh(10 tanh(u/10))^2, which avoids overflow)."""
    return 1.0 / np.cosh(10 * np.tanh(u / 10)) ** 2


def run_session(setting: BMISetting, w_in: np.ndarray, w_rec: np.ndarray, w_out: np.ndarray,
                credit: np.ndarray | None, rule: str | None, trials: int, rng: np.random.Generator,
                record: bool = False, eta: float | None = None) -> dict[str, np.ndarray]:
    """Run ``trials`` trials of a batch of B networks; learn W_rec with ``rule`` ("sl", "rl" or None).

    w_in (B, n, 4), w_rec (B, n, n), w_out (B, 2, n), credit (B, n, 2) = M for SL. Returns the final
    ``w_rec``, per-trial ``loss`` (B, trials) (mean squared distance to the target over the trial),
    and with ``record``: ``h`` (B, trials, T, n) and ``err`` (B, trials, T, 2) (the rule's own error).
    """
    s = setting
    batch, n = w_rec.shape[0], s.n_rec
    inputs, targets = reach_task(s)
    w_rec = w_rec.copy()
    T, decay = s.trial_duration, 1.0 / s.tau
    eta = (s.eta_rec if rule == "sl" else s.eta_rec_rl) if eta is None else eta
    reward_mean = np.zeros((batch, 4))
    rows = np.arange(batch)
    out: dict[str, Any] = {"loss": np.zeros((batch, trials))}
    if record:
        out["h"] = np.zeros((batch, trials, T, n))
        out["err"] = np.zeros((batch, trials, T, 2))
    for trial in range(trials):
        task = rng.integers(4, size=batch)
        x_all, y_star = inputs[task], targets[task]  # (B, T, 4), (B, 2)
        h = np.zeros((batch, n))
        trace = np.zeros((batch, n, n))
        dw = np.zeros((batch, n, n))
        for t in range(T):
            h_prev = h
            u = np.einsum("bij,bj->bi", w_rec, h) + np.einsum("bij,bj->bi", w_in, x_all[:, t])
            xi = np.sqrt(s.sig_rec) * rng.standard_normal((batch, n))  # dt = 1
            h = h + (-h + np.tanh(u) + xi) * decay
            y = np.einsum("bij,bj->bi", w_out, h) + s.sig_out * rng.standard_normal((batch, 2))
            distance = y_star - y
            out["loss"][:, trial] += (distance ** 2).sum(1) / T
            if rule == "rl":
                err = distance
                trace = (1 - decay) * trace + decay * np.einsum("bi,bj->bij", xi * tanh_slope(u), h_prev)
                r_now = -(distance ** 2).sum(1)
                dw += eta * (r_now - reward_mean[rows, task])[:, None, None] * trace / T
            else:  # RFLO's "scaled_distance" error (also recorded for passive sessions)
                err = distance / (T - t)
                if rule == "sl":
                    trace = (1 - decay) * trace + decay * np.einsum("bi,bj->bij", tanh_slope(u), h_prev)
                    dw += eta * np.einsum("bip,bp->bi", credit, err)[:, :, None] * trace / T
            if record:
                out["h"][:, trial, t], out["err"][:, trial, t] = h, err
        if rule is not None:
            w_rec = w_rec + dw
        if rule == "rl":  # running mean reward per target, updated at trial end with the last step's reward
            reward_mean[rows, task] += (r_now - reward_mean[rows, task]) / s.tau_reward
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


def pretrain(setting: BMISetting) -> dict[str, np.ndarray]:
    """The pretrained network: RFLO with M = W_bmi0^T for ``pretrain_trials`` (seeded by network_seed)."""
    setting.validate()
    rng = numpy_generator(setting.network_seed, "rule-id-bmi", "pretrain")
    w = initial_weights(setting, rng)
    session = run_session(setting, w["w_in"][None], w["w_rec"][None], w["w_out"][None], w["w_out"].T[None],
                          "sl", setting.pretrain_trials, rng)
    return {"w_in": w["w_in"], "w_rec": session["w_rec"][0], "w_out": w["w_out"], "loss": session["loss"][0]}


def retrain_and_score(setting: BMISetting, net: dict[str, np.ndarray], rule: str, seeds: list[int],
                      overlaps: list[float], base_seed: int = 0) -> dict[str, Any]:
    """The decoder switch and retraining for every (seed, overlap), batched; correlations per network.

    SL: the network learns with M of flat cosine ``overlap`` with W_bmi1^T. RL: it learns by REINFORCE
    and ``overlap`` is that of the *hypothesized* M-hat scored as the SL prediction. Returns arrays
    (len(seeds), len(overlaps)) ``corr_w_bmi0``, ``corr_w_bmi1``, ``corr_m``, and the losses.
    """
    if rule not in BMI_RULES:
        raise CreditlabError(f"unknown BMI rule {rule!r}; valid: {', '.join(BMI_RULES)}")
    setting.validate()
    for overlap in overlaps:
        if not -1 <= overlap <= 1:
            raise CreditlabError(f"overlap {overlap} out of range: a flat cosine in [-1, 1]")
    if not seeds or not overlaps:
        raise CreditlabError("need at least one seed and one overlap")
    pairs = [(seed, overlap) for seed in seeds for overlap in overlaps]
    w_bmi1, credits = [], []
    for seed, overlap in pairs:
        pick = numpy_generator(seed, "rule-id-bmi", "w_bmi1")  # W_bmi1 depends on the seed only, as in the notebooks
        decoder = matrix_with_overlap(net["w_out"], setting.decoder_overlap, pick)
        w_bmi1.append(decoder)
        credit_rng = numpy_generator(seed, "rule-id-bmi", "credit", round(overlap * 1000))
        credits.append(matrix_with_overlap(decoder.T, overlap, credit_rng))
    w_bmi1_b, credit_b = np.stack(w_bmi1), np.stack(credits)
    batch = len(pairs)
    w_in = np.repeat(net["w_in"][None], batch, 0)
    w_rec0 = np.repeat(net["w_rec"][None], batch, 0)
    w_bmi0 = np.repeat(net["w_out"][None], batch, 0)
    rng = numpy_generator(base_seed, "rule-id-bmi", rule, *seeds)
    pre = run_session(setting, w_in, w_rec0, w_bmi1_b, credit_b, None, setting.window, rng, record=True)
    train = run_session(setting, w_in, w_rec0, w_bmi1_b, credit_b, rule, setting.train_trials, rng, record=True)
    post = run_session(setting, w_in, train["w_rec"], w_bmi1_b, credit_b, None, setting.window, rng, record=True)
    observed = flow_field(post["h"]) - flow_field(pre["h"])
    split = numpy_generator(base_seed, "rule-id-bmi", "split").permutation(setting.train_trials)
    fit_idx, test_idx = split[: setting.train_trials // 2], split[setting.train_trials // 2:]
    h_fit, err_fit, h_test = train["h"][:, fit_idx], train["err"][:, fit_idx], train["h"][:, test_idx]
    corr = {}
    for key, matrix in (("corr_w_bmi0", w_bmi0), ("corr_w_bmi1", w_bmi1_b),
                        ("corr_m", credit_b.transpose(0, 2, 1))):
        corr[key] = flow_field_correlation(predicted_flow_change(matrix, err_fit, h_fit), observed, h_test)
    shape = (len(seeds), len(overlaps))
    return {
        "rule": rule, "seeds": list(seeds), "overlaps": list(overlaps), "setting": asdict(setting),
        **{k: v.reshape(shape) for k, v in corr.items()},
        "loss_before": pre["loss"].mean(1).reshape(shape), "loss_after": post["loss"].mean(1).reshape(shape),
        "cos_m_w_bmi1": np.array([matrix_cosine(c.T, d) for c, d in zip(credits, w_bmi1, strict=True)]).reshape(shape),
        "cos_w_bmi0_w_bmi1": np.array([matrix_cosine(net["w_out"], d) for d in w_bmi1]).reshape(shape),
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


__all__ = ["BMISetting", "flow_field", "flow_field_correlation", "predicted_flow_change", "pretrain",
           "reach_task", "retrain_and_score", "run_session", "sign_flip_test"]
