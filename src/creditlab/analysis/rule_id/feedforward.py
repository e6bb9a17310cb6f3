"""Telling supervised from reinforcement learning apart in a linear feedforward model (Portes et al. 2022).

The model (``shared/research/gaitprop_tp_slrl.md`` §3.2; the paper's appendix equations are not
available, so this is the reconstruction checked there numerically)::

    h = W x + xi,   xi ~ N(0, Sigma)        hidden activity, injected noise (isotropic or not)
    y = D h                                  the fixed, known readout (the BMI decoder)
    e = y* - y                               the error the learner sees

    SL:  dW = eta M e x^T                    M: the brain's credit-assignment estimate of D^T
                                             (M = D^T is the true gradient; a mismatched M is biased)
    RL:  dW = eta (R - Rbar) xi x^T          node perturbation / REINFORCE, R = -1/2 |y* - D h|^2,
                                             Rbar a reward baseline independent of this trial's xi
         E[dW_RL] = eta Sigma D^T e_clean x^T        (e_clean = y* - D W x; tested by Monte Carlo)

Predicted change of the mean hidden activity for a probe input x' after trials t (cumulative,
first order in eta)::

    SL:  dh(x') ~ M       sum_t e_t (x_t^T x')
    RL:  dh(x') ~ Sigma D^T sum_t e_t (x_t^T x')          every factor observable: D known, Sigma
                                                          estimated from trial-to-trial fluctuations

**Statistic.** ``c_X = mean over probe conditions of cos(dh_obs, dh_X)`` for each prediction X
(the mean cosine of ``utils/metric.py::calculate_flow_field_correlation`` in the authors' code,
here on activity rather than flow fields). **Decision rule** (the paper's reading, by ranking): the
network learned by RL when ``c_RL > c_SL``, else by SL. It fails when M is close to Sigma D^T (the
two predictions coincide: no observation separates them) — with isotropic noise, when M is close
to D^T, i.e. when SL is nearly unbiased.

All randomness comes from ``numpy.random.Generator`` objects made by ``seeding.numpy_generator`` from
explicit seeds; many
replicate experiments run at once as a leading batch axis.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from creditlab.errors import CreditlabError
from creditlab.seeding import numpy_generator

RULES_FF = ("sl", "rl")


@dataclass(frozen=True)
class FeedforwardSetting:
    """One experimental condition of the feedforward identification problem."""

    n_in: int = 8                 # input dimension
    n_hidden: int = 30            # recorded units
    n_out: int = 2                # decoder outputs (cursor x, y)
    n_conditions: int = 4         # probe inputs / targets (like 4 reach targets)
    noise_std: float = 0.3        # sqrt of Sigma's mean eigenvalue
    anisotropy: float = 1.0       # ratio largest/smallest eigenvalue of Sigma (1: isotropic)
    overlap: float = 0.4          # cosine between the SL credit matrix M and D^T (flattened)
    m_toward_sigma: float = 0.0   # 0: M from `overlap`; s>0: M = (1-s) M + s * (Sigma D^T scaled): failure case
    learning_trials: int = 200    # trials of learning between the two observation blocks
    observed_trials: int = 50     # observed trials per condition, before and after learning
    eta_sl: float = 0.02          # SL learning rate
    baseline: str = "clean"       # RL reward baseline: "clean" (noise-free reward) or "running"
    baseline_tau: float = 5.0     # running-average time constant in trials ("running")
    use_sigma: bool = True        # the observer's RL prediction includes its estimate of Sigma

    def validate(self) -> None:
        """Raise CreditlabError for settings the model does not allow, naming the valid range."""
        checks = [
            (self.n_in >= 1 and self.n_hidden >= 2 and self.n_out >= 1, "n_in >= 1, n_hidden >= 2, n_out >= 1"),
            (self.n_out < self.n_hidden, f"n_out ({self.n_out}) < n_hidden ({self.n_hidden}) so M can differ from D^T"),
            (self.n_conditions >= 1, "n_conditions >= 1"),
            (self.noise_std > 0, f"noise_std > 0 (RL needs exploration noise), got {self.noise_std}"),
            (self.anisotropy >= 1.0, f"anisotropy >= 1 (largest/smallest eigenvalue), got {self.anisotropy}"),
            (-1.0 <= self.overlap <= 1.0, f"overlap in [-1, 1] (a cosine), got {self.overlap}"),
            (0.0 <= self.m_toward_sigma <= 1.0, f"m_toward_sigma in [0, 1], got {self.m_toward_sigma}"),
            (self.learning_trials >= 1, f"learning_trials >= 1, got {self.learning_trials}"),
            (self.observed_trials >= 2, f"observed_trials >= 2 (the noise covariance needs two), "
                                        f"got {self.observed_trials}"),
            (self.eta_sl > 0, f"eta_sl > 0, got {self.eta_sl}"),
            (self.baseline in ("clean", "running"), f"baseline 'clean' or 'running', got {self.baseline!r}"),
            (self.baseline_tau >= 1.0, f"baseline_tau >= 1 trial, got {self.baseline_tau}"),
        ]
        for ok, valid in checks:
            if not ok:
                raise CreditlabError(f"feedforward rule-identification setting out of range: need {valid}")


# ---------------------------------------------------------------------------------------------
# the pieces: noise covariance, decoder, credit-assignment matrix
# ---------------------------------------------------------------------------------------------
def noise_covariance(n: int, noise_std: float, anisotropy: float, rng: np.random.Generator) -> np.ndarray:
    """Sigma (n, n): random eigenvectors, eigenvalues log-spaced over ``anisotropy``, mean noise_std^2."""
    if anisotropy == 1.0:
        return noise_std ** 2 * np.eye(n)
    eig = np.geomspace(1.0, 1.0 / anisotropy, n)
    eig *= noise_std ** 2 / eig.mean()
    basis, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return (basis * eig) @ basis.T


def matrix_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine between two matrices read as flat vectors (the authors' overlap measure)."""
    a, b = np.ravel(a), np.ravel(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def matrix_with_overlap(reference: np.ndarray, overlap: float, rng: np.random.Generator) -> np.ndarray:
    """A matrix of ``reference``'s shape and norm whose flat cosine with it is exactly ``overlap``."""
    ref = reference / np.linalg.norm(reference)
    other = rng.standard_normal(reference.shape)
    other -= (other.ravel() @ ref.ravel()) * ref
    other /= np.linalg.norm(other)
    return np.linalg.norm(reference) * (overlap * ref + np.sqrt(max(0.0, 1 - overlap ** 2)) * other)


def credit_matrix(decoder: np.ndarray, sigma: np.ndarray, setting: FeedforwardSetting,
                  rng: np.random.Generator) -> np.ndarray:
    """M (n_hidden, n_out): flat cosine ``overlap`` with D^T, optionally pulled toward Sigma D^T."""
    m = matrix_with_overlap(decoder.T, setting.overlap, rng)
    if setting.m_toward_sigma > 0:
        target = sigma @ decoder.T
        target *= np.linalg.norm(m) / np.linalg.norm(target)
        m = (1 - setting.m_toward_sigma) * m + setting.m_toward_sigma * target
    return m


# ---------------------------------------------------------------------------------------------
# updates (batched over replicates: leading axis r)
# ---------------------------------------------------------------------------------------------
def sl_update(credit: np.ndarray, error: np.ndarray, inputs: np.ndarray, eta: float) -> np.ndarray:
    """dW = eta M e x^T.  credit (r, n_h, n_out), error (r, n_out), inputs (r, n_in) -> (r, n_h, n_in)."""
    return eta * np.einsum("rho,ro,ri->rhi", credit, error, inputs)


def rl_update(noise: np.ndarray, reward: np.ndarray, baseline: np.ndarray | float, inputs: np.ndarray,
              eta: float) -> np.ndarray:
    """dW = eta (R - Rbar) xi x^T.  noise (r, n_h), reward (r,), inputs (r, n_in) -> (r, n_h, n_in)."""
    advantage = np.asarray(reward) - np.asarray(baseline)
    return eta * np.einsum("r,rh,ri->rhi", advantage, noise, inputs)


def expected_rl_update(sigma: np.ndarray, decoder: np.ndarray, clean_error: np.ndarray, inputs: np.ndarray,
                       eta: float) -> np.ndarray:
    """E[dW_RL] = eta Sigma D^T e x^T (for any baseline independent of xi); single example, 2-D arrays."""
    return eta * np.outer(sigma @ decoder.T @ clean_error, inputs)


def reward(target: np.ndarray, decoder: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """R = -1/2 |y* - D h|^2 per replicate.  target (r, n_out), decoder (r, n_out, n_h), hidden (r, n_h) -> (r,)."""
    err = target - np.einsum("rph,rh->rp", decoder, hidden)
    return -0.5 * (err ** 2).sum(-1)


# ---------------------------------------------------------------------------------------------
# one batch of simulated experiments
# ---------------------------------------------------------------------------------------------
def _observe(weights: np.ndarray, probes: np.ndarray, chol: np.ndarray, trials: int,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Mean activity per condition (r, K, n_h) and the pooled noise-covariance estimate (r, n_h, n_h)."""
    clean = np.einsum("rhi,ki->rkh", weights, probes)
    noise = np.einsum("hj,rkTj->rkTh", chol, rng.standard_normal((*clean.shape[:2], trials, chol.shape[0])))
    acts = clean[:, :, None, :] + noise
    mean = acts.mean(2)
    resid = (acts - mean[:, :, None, :]).reshape(len(weights), -1, chol.shape[0])
    cov = np.einsum("rnh,rng->rhg", resid, resid) / (resid.shape[1] - probes.shape[0])
    return mean, cov


def _shrunk(cov: np.ndarray, samples: int) -> np.ndarray:
    """Shrink a sample covariance toward its scaled identity (weight n/(n + samples)): stable when few trials."""
    n = cov.shape[-1]
    alpha = n / (n + samples)
    scale = np.trace(cov, axis1=-2, axis2=-1)[:, None, None] / n
    return (1 - alpha) * cov + alpha * scale * np.eye(n)


def mean_cosine(observed: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Mean over conditions of cos(observed_k, predicted_k).  (r, K, n) x (r, K, n) -> (r,)."""
    num = (observed * predicted).sum(-1)
    den = np.linalg.norm(observed, axis=-1) * np.linalg.norm(predicted, axis=-1)
    return (num / np.where(den == 0, np.inf, den)).mean(-1)


def simulate(rule: str, setting: FeedforwardSetting, replicates: int, seed: int) -> dict[str, np.ndarray]:
    """Run ``replicates`` independent experiments trained by ``rule`` ("sl" or "rl").

    Each replicate draws its own W0, decoder, Sigma, M, task; observes ``observed_trials`` noisy
    trials per condition before and after ``learning_trials`` trials of learning; and returns per
    replicate the statistic against each prediction: ``c_rl`` (Sigma-hat D^T e, or D^T e when
    ``use_sigma`` is False), ``c_sl`` (M e), ``c_decoder`` (D^T e), the decision ``called_rl``
    (c_rl > c_sl), ``loss_before``/``loss_after`` and ``cos_m_sigma_d`` = cos(M, Sigma D^T).
    """
    if rule not in RULES_FF:
        raise CreditlabError(f"unknown feedforward rule {rule!r}; valid: {', '.join(RULES_FF)}")
    setting.validate()
    if replicates < 1:
        raise CreditlabError(f"replicates must be >= 1, got {replicates}")
    rng = numpy_generator(seed, "rule-id-feedforward", rule)
    s, r = setting, replicates
    decoders = rng.standard_normal((r, s.n_out, s.n_hidden)) / np.sqrt(s.n_hidden)
    sigmas = np.stack([noise_covariance(s.n_hidden, s.noise_std, s.anisotropy, rng) for _ in range(r)])
    credits = np.stack([credit_matrix(decoders[i], sigmas[i], s, rng) for i in range(r)])
    weights = rng.standard_normal((r, s.n_hidden, s.n_in)) / np.sqrt(s.n_in)
    probes = np.eye(s.n_conditions, s.n_in) if s.n_conditions <= s.n_in else \
        rng.standard_normal((s.n_conditions, s.n_in)) / np.sqrt(s.n_in)
    targets = rng.standard_normal((r, s.n_conditions, s.n_out))
    chol = np.linalg.cholesky(sigmas)  # (r, n_h, n_h)
    # RL at the same expected speed as SL with M = D^T: eta_rl * mean eig(Sigma) = eta_sl
    eta_rl = s.eta_sl / s.noise_std ** 2

    def observe(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        means, covs = [], []
        for i in range(r):  # per replicate Cholesky factor
            m, c = _observe(w[i:i + 1], probes, chol[i], s.observed_trials, rng)
            means.append(m[0])
            covs.append(c[0])
        return np.stack(means), np.stack(covs)

    def loss(w: np.ndarray) -> np.ndarray:
        out = np.einsum("rph,rhi,ki->rkp", decoders, w, probes)
        return 0.5 * ((targets - out) ** 2).sum(-1).mean(-1)

    before, cov_before = observe(weights)
    loss_before = loss(weights)
    running = np.zeros(r)
    sum_ex = np.zeros((r, s.n_out, s.n_in))  # sum_t e_t x_t^T: what every prediction needs
    for t in range(s.learning_trials):
        k = rng.integers(s.n_conditions, size=r)
        x = probes[k]
        y_star = targets[np.arange(r), k]
        xi = np.einsum("rhj,rj->rh", chol, rng.standard_normal((r, s.n_hidden)))
        h = np.einsum("rhi,ri->rh", weights, x) + xi
        err = y_star - np.einsum("rph,rh->rp", decoders, h)  # what the observer (and SL) sees
        sum_ex += np.einsum("rp,ri->rpi", err, x)
        if rule == "sl":
            weights = weights + sl_update(credits, err, x, s.eta_sl)
        else:
            rew = -0.5 * (err ** 2).sum(-1)
            if s.baseline == "clean":
                base = reward(y_star, decoders, h - xi)
            else:
                base = running if t > 0 else rew  # the first trial has no history: advantage 0
            weights = weights + rl_update(xi, rew, base, x, eta_rl)
            running = rew if t == 0 else running + (rew - running) / s.baseline_tau
    after, _ = observe(weights)
    observed = after - before
    samples = s.n_conditions * (s.observed_trials - 1)
    sigma_hat = _shrunk(cov_before, samples)
    drive = np.einsum("rpi,ki->rkp", sum_ex, probes)  # sum_t e_t (x_t^T x_k)
    pred_decoder = np.einsum("rph,rkp->rkh", decoders, drive)
    pred_rl = np.einsum("rhg,rkg->rkh", sigma_hat, pred_decoder) if s.use_sigma else pred_decoder
    pred_sl = np.einsum("rhp,rkp->rkh", credits, drive)
    c_rl, c_sl = mean_cosine(observed, pred_rl), mean_cosine(observed, pred_sl)
    m_vs_sigma = np.array([matrix_cosine(credits[i], sigmas[i] @ decoders[i].T) for i in range(r)])
    return {"c_rl": c_rl, "c_sl": c_sl, "c_decoder": mean_cosine(observed, pred_decoder),
            "called_rl": c_rl > c_sl, "loss_before": loss_before, "loss_after": loss(weights),
            "cos_m_sigma_d": m_vs_sigma}


def identification_accuracy(setting: FeedforwardSetting, replicates: int, seed: int) -> dict[str, Any]:
    """Balanced accuracy of the decision rule: ``replicates`` SL-trained and as many RL-trained runs."""
    sl = simulate("sl", setting, replicates, seed)
    rl = simulate("rl", setting, replicates, seed)
    correct_sl = float((~sl["called_rl"]).mean())
    correct_rl = float(rl["called_rl"].mean())
    return {
        "setting": asdict(setting), "replicates": replicates, "seed": seed,
        "accuracy": 0.5 * (correct_sl + correct_rl), "accuracy_sl": correct_sl, "accuracy_rl": correct_rl,
        "c_rl_under_sl": float(sl["c_rl"].mean()), "c_sl_under_sl": float(sl["c_sl"].mean()),
        "c_rl_under_rl": float(rl["c_rl"].mean()), "c_sl_under_rl": float(rl["c_sl"].mean()),
        "loss_ratio_sl": float((sl["loss_after"] / sl["loss_before"]).mean()),
        "loss_ratio_rl": float((rl["loss_after"] / rl["loss_before"]).mean()),
        "cos_m_sigma_d": float(np.concatenate([sl["cos_m_sigma_d"], rl["cos_m_sigma_d"]]).mean()),
    }


def sweep(base: FeedforwardSetting, field: str, values: list[Any], replicates: int, seed: int
          ) -> list[dict[str, Any]]:
    """Accuracy of the decision rule with ``field`` of ``base`` set to each of ``values``."""
    if field not in asdict(base):
        raise CreditlabError(f"unknown setting {field!r}; valid: {', '.join(asdict(base))}")
    return [{"field": field, "value": v, **identification_accuracy(replace(base, **{field: v}), replicates, seed)}
            for v in values]


__all__ = ["FeedforwardSetting", "credit_matrix", "expected_rl_update", "identification_accuracy",
           "matrix_cosine", "matrix_with_overlap", "mean_cosine", "noise_covariance", "reward", "rl_update",
           "simulate", "sl_update", "sweep"]
