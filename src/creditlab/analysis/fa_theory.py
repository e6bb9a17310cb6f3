"""Feedback-alignment theory in two-layer networks (Song, Xu & Lafferty, NeurIPS 2021).

The model is f(x) = (1/sqrt(p)) sum_r beta_r psi(w_r . x) with no biases, N(0, 1) initialisation of
W (d x p), beta (p) and the fixed random feedback vector b (p). It is trained by full-batch gradient
descent on the mean squared error L = (1/n) sum_i e_i^2, e_i = f(x_i) - y_i (``nn.MSELoss``, as in the
authors' code), with feedback alignment in the first layer and weight decay lambda on beta only:

    W    <- W    - eta * (2/n) (1/sqrt(p)) X^T [psi'(XW) * (e b^T)]           (FA: b replaces beta)
    beta <- beta - eta * [(2/n) (1/sqrt(p)) psi(XW)^T e + lambda * beta]       (true gradient + decay)

The batched trainer never forms W: every W update lies in the row space of X, so the pre-activations
H = XW (n x p) obey H <- H - eta (2/n)(1/sqrt(p)) G [psi'(H) * (e b^T)] with the Gram matrix G = X X^T
(n x n). With n = 50 < d = 150 this is 3x cheaper than updating W, and exact. Runs (seeds and lambdas)
are stacked along a leading dimension and trained with batched matmuls. The plain single-run
:func:`train_reference` updates W explicitly and is what the tests compare against.

Training length follows the authors' ``simulation_align.py``: at least
``floor(base_steps * sqrt(p) / round(sqrt(p0)))`` steps (5000 sqrt(p/200)), then on until the loss
changes by less than ``plateau_tol`` between two checkpoints ``check_every`` steps apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid")
DATA_KINDS = ("nn", "lr")


def activation_pair(name: str) -> tuple[Callable[[torch.Tensor], torch.Tensor],
                                        Callable[[torch.Tensor], torch.Tensor]]:
    """(psi, psi') for an activation name in :data:`ACTIVATIONS`."""
    if name == "linear":
        return (lambda h: h), torch.ones_like
    if name == "relu":
        return torch.relu, lambda h: (h > 0).to(h.dtype)
    if name == "tanh":
        return torch.tanh, lambda h: 1.0 - torch.tanh(h) ** 2
    if name == "sigmoid":
        def sigmoid_derivative(h: torch.Tensor) -> torch.Tensor:
            s = torch.sigmoid(h)
            return s * (1.0 - s)
        return torch.sigmoid, sigmoid_derivative
    raise ValueError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}")


def derivative_from_output(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """psi'(h) written as a function of a = psi(h), so a step needs one transcendental per unit."""
    if name == "linear":
        return torch.ones_like
    if name == "relu":
        return torch.sign                                    # a = relu(h) >= 0: sign(a) = 1[h > 0]
    if name == "tanh":
        return lambda a: 1.0 - a * a
    if name == "sigmoid":
        return lambda a: a * (1.0 - a)
    raise ValueError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}")


@dataclass(frozen=True)
class SweepSetting:
    """One activation's simulation setting as in the authors' ``simulation_align.py``.

    step_size is the SGD learning rate (the code's ``10e-3`` literal is 1e-2); data is ``nn`` (random
    teacher of the same width and activation) or ``lr`` (y = X theta).
    """

    activation: str
    data: str
    step_size: float
    lambdas: tuple[float, ...]
    n: int = 50
    d: int = 150
    widths: tuple[int, ...] = (200, 400, 800, 1600, 3200, 6400, 12800)
    runs: int = 50
    base_steps: int = 5000
    check_every: int = 1000
    plateau_tol: float = 1e-3
    budget_reference_width: int = 200  # p_list[0] in the authors' step-budget formula


#: The settings of the published sweeps (``run_simulation_*.sh`` -> ``simulation_align.py``).
AUTHOR_SETTINGS: dict[str, SweepSetting] = {
    "linear": SweepSetting("linear", "lr", 1e-3, (0.0, 0.2, 0.3, 0.5)),
    "relu": SweepSetting("relu", "nn", 1e-2, (0.0, 0.02, 0.05, 0.2)),
    "tanh": SweepSetting("tanh", "nn", 1e-1, (0.0, 0.001, 0.002, 0.005)),
    "sigmoid": SweepSetting("sigmoid", "nn", 1e-1, (0.0, 0.001, 0.003, 0.01)),
}


def step_budget(p: int, base_steps: int = 5000, p0: int = 200) -> int:
    """Minimum number of GD steps at width p: ``floor(base_steps * sqrt(p) / round(sqrt(p0)))``.

    This is the authors' ``np.rint(n_step * np.sqrt(p) // np.rint(np.sqrt(p_list[0])))``
    (5050 at p = 200, 40406 at p = 12800).
    """
    if p <= 0 or p0 <= 0:
        raise ValueError("widths must be positive")
    return int(math.floor(base_steps * math.sqrt(p) / round(math.sqrt(p0))))


def cosine_alignment(feedback: torch.Tensor, readout: torch.Tensor) -> torch.Tensor:
    """cos(b, beta) = <b, beta> / (|b| |beta|) over the last dimension.

    feedback, readout: (..., p). Returns (...). Zero vectors give 0.
    """
    if feedback.shape != readout.shape:
        raise ValueError(f"shape mismatch: feedback {tuple(feedback.shape)} vs readout "
                         f"{tuple(readout.shape)}")
    norms = feedback.norm(dim=-1) * readout.norm(dim=-1)
    dots = (feedback * readout).sum(-1)
    safe = norms.clamp_min(torch.finfo(norms.dtype).tiny)
    return torch.where(norms > 0, dots / safe, torch.zeros_like(dots))


@dataclass
class FAProblems:
    """A stack of R independent problems (data and initial network).

    x: (R, n, d) inputs, y: (R, n) targets, w: (R, d, p) first-layer weights, beta: (R, p) readout,
    feedback: (R, p) the fixed random vector b.
    """

    x: torch.Tensor
    y: torch.Tensor
    w: torch.Tensor
    beta: torch.Tensor
    feedback: torch.Tensor

    def __post_init__(self) -> None:
        r, n, d = self.x.shape
        if self.y.shape != (r, n):
            raise ValueError(f"y must be (R, n) = {(r, n)}, got {tuple(self.y.shape)}")
        if self.w.dim() != 3 or self.w.shape[:2] != (r, d):
            raise ValueError(f"w must be (R, d, p) with R, d = {(r, d)}, got {tuple(self.w.shape)}")
        p = self.w.shape[2]
        for name in ("beta", "feedback"):
            if getattr(self, name).shape != (r, p):
                raise ValueError(f"{name} must be (R, p) = {(r, p)}, got {tuple(getattr(self, name).shape)}")

    @property
    def width(self) -> int:
        return self.w.shape[2]

    def select(self, index: torch.Tensor | slice) -> FAProblems:
        """The sub-stack at ``index`` along the run dimension."""
        return FAProblems(self.x[index], self.y[index], self.w[index], self.beta[index], self.feedback[index])


def sample_problems(runs: int, n: int, d: int, p: int, activation: str, data: str,
                    generator: torch.Generator, dtype: torch.dtype = torch.float32) -> FAProblems:
    """Draw ``runs`` independent problems as in the authors' ``data_gen.py``.

    X ~ N(0, I_d) (n rows, raw, not normalised); ``lr``: y = X theta with theta ~ N(0, I_d);
    ``nn``: y = (1/sqrt(p)) psi(X W*) beta* from a random teacher of the same width and activation with
    N(0, 1) weights. The student's W, beta and the feedback b are i.i.d. N(0, 1).
    """
    if data not in DATA_KINDS:
        raise ValueError(f"unknown data kind {data!r}; valid: {', '.join(DATA_KINDS)}")
    psi, _ = activation_pair(activation)

    def normal(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    x = normal(runs, n, d)
    if data == "lr":
        y = torch.einsum("rnd,rd->rn", x, normal(runs, d))
    else:
        teacher_w, teacher_beta = normal(runs, d, p), normal(runs, p)
        y = torch.einsum("rnp,rp->rn", psi(x @ teacher_w), teacher_beta) / math.sqrt(p)
    problems = FAProblems(x, y, normal(runs, d, p), normal(runs, p), normal(runs, p))
    return FAProblems(*(t.to(dtype) for t in (problems.x, problems.y, problems.w, problems.beta,
                                               problems.feedback)))


@dataclass
class FATrainResult:
    """Outcome of training a stack of R runs.

    beta: (R, p) final readout; pre_activations: (R, n, p) final XW; steps: (R,) steps taken;
    final_loss: (R,) MSE at the last step taken (before its update); alignment: (R,) cos(b, beta);
    loss_history: (R, T) MSE before each step (only when recorded; T = the longest run).
    """

    beta: torch.Tensor
    pre_activations: torch.Tensor
    steps: torch.Tensor
    final_loss: torch.Tensor
    alignment: torch.Tensor
    hit_max_steps: torch.Tensor
    loss_history: torch.Tensor | None = None
    notes: dict = field(default_factory=dict)


def fa_directions(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, beta: torch.Tensor,
                  feedback: torch.Tensor, weight_decay: float, activation: str
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One run's FA update directions (descent convention) and its MSE loss.

    x: (n, d), y: (n,), w: (d, p), beta, feedback: (p,). Returns (dir_w (d, p), dir_beta (p,), loss).
    With feedback == beta and weight_decay = 0 these are the true gradients of the MSE; weight decay
    adds lambda * beta to dir_beta, the gradient of (lambda/2) |beta|^2.
    """
    psi, dpsi = activation_pair(activation)
    n, p = x.shape[0], w.shape[1]
    h = x @ w
    error = psi(h) @ beta / math.sqrt(p) - y                                    # e_i = f(x_i) - y_i
    scale = 2.0 / (n * math.sqrt(p))                                            # d(mean e^2)/df = 2e/n
    dir_beta = scale * psi(h).T @ error + weight_decay * beta
    dir_w = scale * x.T @ (dpsi(h) * torch.outer(error, feedback))              # FA: b replaces beta
    return dir_w, dir_beta, (error ** 2).mean()


def train_reference(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, beta: torch.Tensor,
                    feedback: torch.Tensor, weight_decay: float, activation: str, step_size: float,
                    min_steps: int, check_every: int = 1000, plateau_tol: float = 1e-3,
                    use_plateau: bool = True, max_steps: int | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, int, list[float]]:
    """Plain single-run FA training with explicit W, a loop over steps (the test reference).

    Follows ``simulation_align.py``: the loss at step t is taken before that step's update; at every
    t with (t + 1) % check_every == 0 the run is marked converged once |loss_t - loss_checkpoint_before|
    < plateau_tol; training stops at the first t >= min_steps after that. Returns (w, beta, steps,
    losses).
    """
    w, beta = w.clone(), beta.clone()
    keep_going, last_checkpoint, t, losses = use_plateau, 0.0, 0, []
    while (t < min_steps or keep_going) and (max_steps is None or t < max_steps):
        dir_w, dir_beta, loss = fa_directions(x, y, w, beta, feedback, weight_decay, activation)
        losses.append(float(loss))
        if use_plateau and check_every > 0 and t % check_every == check_every - 1:
            if abs(float(loss) - last_checkpoint) < plateau_tol:
                keep_going = False
            last_checkpoint = float(loss)
        w = w - step_size * dir_w
        beta = beta - step_size * dir_beta
        t += 1
    return w, beta, t, losses


class _StopRule:
    """Per-run bookkeeping of the authors' stopping rule for a batch whose stopped runs are dropped."""

    def __init__(self, runs: int, dtype: torch.dtype, min_steps: int, check_every: int, plateau_tol: float,
                 use_plateau: bool, max_steps: int | None, record_loss: bool) -> None:
        self.active = torch.arange(runs)                                       # original run ids
        self.keep_going = torch.full((runs,), use_plateau, dtype=torch.bool)
        self.last_checkpoint = torch.zeros(runs, dtype=dtype)
        self.steps = torch.zeros(runs, dtype=torch.long)
        self.final_loss = torch.zeros(runs, dtype=dtype)
        self.hit_cap = torch.zeros(runs, dtype=torch.bool)
        self.history: list[torch.Tensor] | None = [] if record_loss else None
        self.runs, self.dtype, self.min_steps, self.check_every = runs, dtype, min_steps, check_every
        self.plateau_tol, self.use_plateau, self.max_steps = plateau_tol, use_plateau, max_steps

    def observe(self, t: int, loss: torch.Tensor) -> None:
        """Record the loss of the active runs at step t (before the update) and apply the plateau test.

        The loss is copied to the host only when it is needed (a history, a checkpoint, a run that
        stops), so a GPU batch is not synchronized on every step.
        """
        loss = loss.detach()
        if self.history is not None:
            row = torch.full((self.runs,), float("nan"), dtype=self.dtype)
            row[self.active] = loss.cpu()
            self.history.append(row)
        if self.use_plateau and self.check_every > 0 and t % self.check_every == self.check_every - 1:
            loss = loss.cpu()
            converged = (loss - self.last_checkpoint[self.active]).abs() < self.plateau_tol
            self.keep_going[self.active] &= ~converged
            self.last_checkpoint[self.active] = loss
        self._loss = loss

    def finished(self, steps_done: int) -> torch.Tensor:
        """(A,) bool: active runs that stop after ``steps_done`` steps; records their step count."""
        if steps_done >= self.min_steps:
            done = ~self.keep_going[self.active]
        else:
            done = torch.zeros(self.active.numel(), dtype=torch.bool)
        if self.max_steps is not None and steps_done >= self.max_steps:
            self.hit_cap[self.active[~done]] = True
            done = torch.ones_like(done)
        ids = self.active[done]
        if ids.numel() > 0:
            self.steps[ids], self.final_loss[ids] = steps_done, self._loss.cpu()[done]
        return done

    def drop(self, done: torch.Tensor) -> None:
        self.active = self.active[~done]

    def loss_history(self) -> torch.Tensor | None:
        return None if self.history is None else torch.stack(self.history, dim=1)


def train_batched(problems: FAProblems, weight_decay: torch.Tensor | float, activation: str,
                  step_size: float, min_steps: int, check_every: int = 1000, plateau_tol: float = 1e-3,
                  use_plateau: bool = True, max_steps: int | None = None,
                  record_loss: bool = False) -> FATrainResult:
    """Train R runs of FA together (batched matmuls over the leading run dimension).

    weight_decay: a float or an (R,) tensor (one lambda per run, so all lambdas of a width train
    together). Same stopping rule as :func:`train_reference`, applied per run; runs that have stopped
    are dropped from the batch. ``max_steps`` is a safety cap (None: none, as in the authors' code).
    The linear activation uses the exact O(n^2)-per-step reduction of :func:`_train_linear_reduced`.
    """
    if activation == "linear":
        return _train_linear_reduced(problems, weight_decay, step_size, min_steps, check_every, plateau_tol,
                                     use_plateau, max_steps, record_loss)
    x, y, beta, feedback = problems.x, problems.y, problems.beta.clone(), problems.feedback
    runs, n, _ = x.shape
    p = problems.width
    dtype, device = x.dtype, x.device
    lam = torch.as_tensor(weight_decay, dtype=dtype, device=device).expand(runs).clone()
    psi, _ = activation_pair(activation)
    dpsi_of_output = derivative_from_output(activation)
    gram = x @ x.transpose(1, 2)                                               # G = X X^T, (R, n, n)
    h = x @ problems.w                                                         # H = X W, (R, n, p)
    act = psi(h)                                                               # psi(H), kept in step
    scale = 2.0 / (n * math.sqrt(p))
    final_beta, final_h = beta.clone(), h.clone()
    rule = _StopRule(runs, dtype, min_steps, check_every, plateau_tol, use_plateau, max_steps, record_loss)
    const = {"gram": gram, "y": y, "feedback": feedback.unsqueeze(1), "lam": lam.unsqueeze(-1)}  # active rows
    error = torch.bmm(act, beta.unsqueeze(-1)).squeeze(-1) / math.sqrt(p) - y   # e_i = f(x_i) - y_i
    t = 0
    while rule.active.numel() > 0:
        rule.observe(t, (error ** 2).mean(-1))
        error = _fa_step(h, act, beta, error, const, psi, dpsi_of_output, step_size, scale)
        t += 1
        done = rule.finished(t)
        if bool(done.any()):
            ids, keep = rule.active[done].to(device), (~done).to(device)
            final_beta[ids], final_h[ids] = beta[~keep], h[~keep]
            rule.drop(done)
            beta, h, act, error = beta[keep], h[keep], act[keep], error[keep]
            const = {key: value[keep] for key, value in const.items()}
    return FATrainResult(beta=final_beta, pre_activations=final_h, steps=rule.steps,
                         final_loss=rule.final_loss, alignment=cosine_alignment(feedback, final_beta).cpu(),
                         hit_max_steps=rule.hit_cap,
                         loss_history=rule.loss_history())


def _fa_step(h: torch.Tensor, act: torch.Tensor, beta: torch.Tensor, error: torch.Tensor,
             const: dict[str, torch.Tensor], psi: Callable[[torch.Tensor], torch.Tensor],
             dpsi_of_output: Callable[[torch.Tensor], torch.Tensor], step_size: float,
             scale: float) -> torch.Tensor:
    """One FA step of every active run, in place on h, act = psi(h) and beta; returns the next error.

    dbeta = scale psi(H)^T e + lambda beta; H -= eta scale G diag(e) (psi'(H) * b), which is X dW
    with dW = -eta scale X^T diag(e) (psi'(H) * b) (FA: b in place of beta); beta -= eta dbeta.
    psi' is taken from psi(H), so a step evaluates one transcendental per unit and sample.
    """
    p = h.shape[-1]
    error_row = error.unsqueeze(1)                                             # (A, 1, n)
    readout_grad = torch.bmm(error_row, act).squeeze(1)                        # sum_i e_i psi(h_ir)
    first_layer_signal = dpsi_of_output(act).mul_(const["feedback"])           # psi'(H) * (1 b^T)
    h.baddbmm_(const["gram"] * error_row, first_layer_signal, alpha=-step_size * scale)
    beta.mul_(1.0 - step_size * const["lam"]).add_(readout_grad, alpha=-step_size * scale)
    if psi is torch.relu:
        torch.clamp_min(h, 0.0, out=act)
    else:
        act.copy_(psi(h))
    outputs = torch.bmm(act, beta.unsqueeze(-1)).squeeze(-1)
    return outputs / math.sqrt(p) - const["y"]


def _train_linear_reduced(problems: FAProblems, weight_decay: torch.Tensor | float, step_size: float,
                          min_steps: int, check_every: int, plateau_tol: float, use_plateau: bool,
                          max_steps: int | None, record_loss: bool) -> FATrainResult:
    """Linear psi in O(n^2) per step: the whole trajectory stays in a fixed low-dimensional subspace.

    With psi = id, H_t = H_0 + a_t b^T (a in R^n) and beta_t = c_t beta_0 + H_0^T m_t + g_t b
    (c, g scalars, m in R^n); with s = 2/(n sqrt(p)) and e = f - y the GD steps become
        a <- a - eta s G e,   c <- (1 - eta lambda) c,   m <- (1 - eta lambda) m - eta s e,
        g <- (1 - eta lambda) g - eta s (a . e),
    and f = [c z + K m + g v + a (c b.beta_0 + v.m + g b.b)] / sqrt(p) with K = H_0 H_0^T,
    v = H_0 b, z = H_0 beta_0. Exact in exact arithmetic; the tests compare it with the plain loop.
    """
    x, y, b, beta0 = problems.x, problems.y, problems.feedback, problems.beta
    runs, n, _ = x.shape
    p = problems.width
    dtype, device = x.dtype, x.device
    lam = torch.as_tensor(weight_decay, dtype=dtype, device=device).expand(runs).clone()
    h0 = x @ problems.w                                                        # (R, n, p)
    gram, kernel = x @ x.transpose(1, 2), h0 @ h0.transpose(1, 2)              # G, K: (R, n, n)
    v, z = (h0 @ b.unsqueeze(-1)).squeeze(-1), (h0 @ beta0.unsqueeze(-1)).squeeze(-1)   # (R, n)
    bb, b_beta0 = (b * b).sum(-1), (b * beta0).sum(-1)                         # (R,)
    scale, root_p = 2.0 / (n * math.sqrt(p)), math.sqrt(p)
    a = torch.zeros(runs, n, dtype=dtype, device=device)
    m = torch.zeros_like(a)
    c = torch.ones(runs, dtype=dtype, device=device)
    g = torch.zeros_like(c)
    final = {"a": a.clone(), "m": m.clone(), "c": c.clone(), "g": g.clone()}
    rule = _StopRule(runs, dtype, min_steps, check_every, plateau_tol, use_plateau, max_steps, record_loss)
    state = {"a": a, "m": m, "c": c, "g": g}
    const = {"gram": gram, "kernel": kernel, "v": v, "z": z, "bb": bb, "b_beta0": b_beta0, "y": y,
             "lam": lam}                                                       # rows of the active runs
    t = 0
    while rule.active.numel() > 0:
        a, m, c, g = state["a"], state["m"], state["c"], state["g"]
        km = torch.bmm(const["kernel"], m.unsqueeze(-1)).squeeze(-1)
        vm = (const["v"] * m).sum(-1)
        f = (c.unsqueeze(-1) * const["z"] + km + g.unsqueeze(-1) * const["v"]
             + a * (c * const["b_beta0"] + vm + g * const["bb"]).unsqueeze(-1)) / root_p
        error = f - const["y"]
        rule.observe(t, (error ** 2).mean(-1))
        decay = 1.0 - step_size * const["lam"]
        state = {"a": a - step_size * scale * torch.bmm(const["gram"], error.unsqueeze(-1)).squeeze(-1),
                 "m": decay.unsqueeze(-1) * m - step_size * scale * error,
                 "c": decay * c,
                 "g": decay * g - step_size * scale * (a * error).sum(-1)}
        t += 1
        done = rule.finished(t)
        if bool(done.any()):
            ids, keep = rule.active[done].to(device), (~done).to(device)
            for key in final:
                final[key][ids] = state[key][~keep]
            rule.drop(done)
            state = {key: value[keep] for key, value in state.items()}
            const = {key: value[keep] for key, value in const.items()}
    a, m, c, g = final["a"], final["m"], final["c"], final["g"]
    beta = c.unsqueeze(-1) * beta0 + (h0.transpose(1, 2) @ m.unsqueeze(-1)).squeeze(-1) + g.unsqueeze(-1) * b
    h = h0 + a.unsqueeze(-1) * b.unsqueeze(1)
    return FATrainResult(beta=beta, pre_activations=h, steps=rule.steps, final_loss=rule.final_loss,
                         alignment=cosine_alignment(b, beta).cpu(), hit_max_steps=rule.hit_cap,
                         loss_history=rule.loss_history())


@dataclass
class CellResult:
    """Alignment of all runs at one width for every lambda: alignment (L, runs), steps (L, runs)."""

    width: int
    lambdas: tuple[float, ...]
    alignment: torch.Tensor
    steps: torch.Tensor
    final_loss: torch.Tensor
    hit_max_steps: torch.Tensor
    wall_time_s: float


def runs_per_batch(setting: SweepSetting, width: int, total: int, device: str | torch.device = "cpu",
                   max_batch_activations: int | None = None) -> int:
    """How many runs train as one batch: as many as keep its pre-activations (R * n * p numbers) within
    ``max_batch_activations``, at most ``total``.

    Default bound: 640_000 on a CPU, where the step is memory-bound and a batch whose H stays in cache
    is faster per run than one batch of every run (1.3x at p = 12800, n = 50); 400_000_000 on a GPU,
    i.e. a whole cell at once; 10_000_000 for the linear reduction, whose per-run state is O(n^2) and
    whose batch is bounded only by its sampled weights.
    """
    if max_batch_activations is None:
        if setting.activation == "linear":
            max_batch_activations = 10_000_000
        else:
            max_batch_activations = 640_000 if torch.device(device).type == "cpu" else 400_000_000
    return max(1, min(total, max_batch_activations // (setting.n * width)))


def train_in_batches(setting: SweepSetting, width: int, weight_decay: torch.Tensor, generator: torch.Generator,
                     chunk: int, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                     **train_options: Any) -> list[FATrainResult]:
    """Train one run per entry of ``weight_decay`` (its lambda), ``chunk`` runs per batch.

    Each batch draws its own problems from ``generator`` (in float64, then cast to ``dtype`` on
    ``device``); ``train_options`` go to :func:`train_batched`. Returns the batches' results in order.
    """
    parts = []
    for lo in range(0, len(weight_decay), chunk):
        lam = weight_decay[lo:lo + chunk]
        problems = sample_problems(len(lam), setting.n, setting.d, width, setting.activation, setting.data,
                                   generator, dtype=torch.float64)
        problems = FAProblems(*(t.to(device=device, dtype=dtype) for t in (
            problems.x, problems.y, problems.w, problems.beta, problems.feedback)))
        parts.append(train_batched(problems, lam.to(device=device, dtype=dtype), setting.activation,
                                   setting.step_size, **train_options))
    return parts


def run_width(setting: SweepSetting, width: int, runs: int, generator: torch.Generator,
              device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
              max_steps_factor: float | None = 20.0, chunk_runs: int | None = None,
              max_batch_activations: int | None = None) -> CellResult:
    """Train ``runs`` seeds for every lambda of ``setting`` at one width, all lambdas batched together.

    Each (lambda, run) draws its own data and network, as in the authors' loops. The L * runs stack is
    trained in batches of ``chunk_runs`` runs, by default :func:`runs_per_batch`. dtype: float32 (the
    authors') by default, float64 for the linear reduction. The safety cap is ``max_steps_factor`` times
    the step budget (None: no cap).
    """
    import time

    if dtype is None:
        dtype = torch.float64 if setting.activation == "linear" else torch.float32
    lambdas = tuple(float(v) for v in setting.lambdas)
    total = len(lambdas) * runs
    lam = torch.tensor(lambdas, dtype=dtype).repeat_interleave(runs).to(device)   # lambda-major order
    min_steps = step_budget(width, setting.base_steps, setting.budget_reference_width)
    cap = None if max_steps_factor is None else int(max_steps_factor * min_steps)
    chunk = chunk_runs or runs_per_batch(setting, width, total, device, max_batch_activations)
    start = time.perf_counter()
    parts = train_in_batches(setting, width, lam, generator, chunk, device, dtype, min_steps=min_steps,
                             check_every=setting.check_every, plateau_tol=setting.plateau_tol, max_steps=cap)
    wall = time.perf_counter() - start

    def gather(name: str) -> torch.Tensor:
        return torch.cat([getattr(part, name) for part in parts]).view(len(lambdas), runs)

    return CellResult(width, lambdas, gather("alignment"), gather("steps"), gather("final_loss"),
                      gather("hit_max_steps"), wall)


def summarize(values: torch.Tensor) -> dict[str, float]:
    """mean, sd (n - 1) and count of a 1-D tensor."""
    values = values.double()
    sd = float(values.std(unbiased=True)) if values.numel() > 1 else float("nan")
    return {"mean": float(values.mean()), "sd": sd, "n": int(values.numel())}



# ---------------------------------------------------------------------------------------------------
# MNIST: 784-p-10 ReLU, 1/sqrt(p) readout scaling, FA in the first layer (authors' ``mnist.py``).
# ---------------------------------------------------------------------------------------------------

@dataclass
class StackedTwoLayerNets:
    """M two-layer ReLU nets z = relu(x W) beta^T / sqrt(p) trained together (no biases).

    w: (M, d_in, p), beta: (M, K, p) readouts, feedback: (M, K, p) the matrices B used in the
    first-layer update, weight_decay: (M,) lambda on beta only, uses_feedback: (M,) bool; False trains
    that net by backprop (beta in place of B).
    """

    w: torch.Tensor
    beta: torch.Tensor
    feedback: torch.Tensor
    weight_decay: torch.Tensor
    uses_feedback: torch.Tensor

    @property
    def width(self) -> int:
        return self.w.shape[-1]

    def logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, d_in) shared by all nets. Returns (pre-activations (M, B, p), logits (M, B, K))."""
        h = torch.matmul(x, self.w)
        return h, torch.matmul(torch.relu(h), self.beta.transpose(1, 2)) / math.sqrt(self.width)


def init_stacked_nets(d_in: int, width: int, classes: int, weight_decays: tuple[float, ...],
                      uses_feedback: tuple[bool, ...], generator: torch.Generator,
                      device: str | torch.device = "cpu") -> StackedTwoLayerNets:
    """One N(0, 1) initial net (W, beta, B) copied to every slot, as ``get_network_with_reg`` does."""
    if len(weight_decays) != len(uses_feedback):
        raise ValueError("weight_decays and uses_feedback must have the same length")
    m = len(weight_decays)
    w = torch.randn(d_in, width, generator=generator)
    beta = torch.randn(classes, width, generator=generator)
    feedback = torch.randn(classes, width, generator=generator)
    return StackedTwoLayerNets(
        w=w.expand(m, -1, -1).contiguous().to(device), beta=beta.expand(m, -1, -1).contiguous().to(device),
        feedback=feedback.expand(m, -1, -1).contiguous().to(device),
        weight_decay=torch.tensor(weight_decays, dtype=torch.float32, device=device),
        uses_feedback=torch.tensor(uses_feedback, dtype=torch.bool, device=device))


def stacked_sgd_step(nets: StackedTwoLayerNets, x: torch.Tensor, labels: torch.Tensor, lr: float,
                     measure: bool = True) -> dict[str, torch.Tensor]:
    """One SGD step of every net on the batch (x: (B, d_in), labels: (B,)); mean cross-entropy loss.

    dz = (softmax(z) - onehot) / B is the error at the scaled logits (``prediction.grad``);
    grad beta = dz^T relu(h) / sqrt(p) + lambda beta; delta = (dz M / sqrt(p)) * 1[h > 0] with M = B
    (FA) or beta (BP); grad W = x^T delta. Returns per-net loss (M,), and the alignment metrics taken
    on this batch before the update: weight alignment cos(B, beta) (Frobenius) and error-signal
    alignment mean_i cos(dz_i B, dz_i beta) (samples with a zero vector count as 0, as in the code).
    With ``measure=False`` the two alignment metrics are skipped (returned as NaN).
    """
    h, z = nets.logits(x)
    batch, p = x.shape[0], nets.width
    log_probs = torch.log_softmax(z, dim=-1)
    onehot = torch.nn.functional.one_hot(labels, z.shape[-1]).to(z.dtype)
    loss = -(log_probs * onehot).sum(-1).mean(-1)
    dz = (log_probs.exp() - onehot) / batch                                     # (M, B, K)
    act = torch.relu(h)
    signal_fa = torch.matmul(dz, nets.feedback)                                 # e B, (M, B, p)
    signal_bp = torch.matmul(dz, nets.beta)                                     # e beta
    if measure:
        vec_alignment = cosine_alignment(signal_fa, signal_bp).mean(-1)
        weight_alignment = cosine_alignment(nets.feedback.flatten(1), nets.beta.flatten(1))
    else:
        vec_alignment = weight_alignment = loss.new_full(loss.shape, float("nan"))
    backward = torch.where(nets.uses_feedback.view(-1, 1, 1), signal_fa, signal_bp)
    delta = backward / math.sqrt(p) * (h > 0).to(h.dtype)
    grad_w = torch.matmul(x.t(), delta)                                         # (M, d_in, p)
    grad_beta = (torch.matmul(dz.transpose(1, 2), act) / math.sqrt(p)
                 + nets.weight_decay.view(-1, 1, 1) * nets.beta)
    nets.w.sub_(lr * grad_w)
    nets.beta.sub_(lr * grad_beta)
    return {"loss": loss, "weight_alignment": weight_alignment, "vec_alignment": vec_alignment}


@torch.no_grad()
def stacked_accuracy(nets: StackedTwoLayerNets, x: torch.Tensor, labels: torch.Tensor,
                     batch_size: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """(accuracy (M,), mean cross-entropy (M,)) of every net on (x: (N, d_in), labels: (N,))."""
    correct = torch.zeros(nets.w.shape[0], device=x.device)
    total_loss = torch.zeros_like(correct)
    for lo in range(0, x.shape[0], batch_size):
        _, z = nets.logits(x[lo:lo + batch_size])
        target = labels[lo:lo + batch_size]
        correct += (z.argmax(-1) == target).sum(-1)
        per_sample = torch.nn.functional.cross_entropy(
            z.reshape(-1, z.shape[-1]), target.repeat(z.shape[0]), reduction="none")
        total_loss += per_sample.view(z.shape[0], -1).sum(-1)
    return correct / x.shape[0], total_loss / x.shape[0]


__all__ = ["ACTIVATIONS", "AUTHOR_SETTINGS", "CellResult", "FAProblems", "FATrainResult", "SweepSetting",
           "activation_pair", "cosine_alignment", "derivative_from_output", "fa_directions", "run_width",
           "runs_per_batch", "sample_problems",
           "StackedTwoLayerNets", "init_stacked_nets", "stacked_accuracy", "stacked_sgd_step",
           "step_budget", "summarize", "train_batched", "train_in_batches", "train_reference"]
