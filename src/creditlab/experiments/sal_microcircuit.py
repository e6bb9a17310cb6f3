"""SAL experiment 2 (Gierlich et al., arXiv 2503.02642, fig 6 of v1): a 1-1-1 spiking cortical microcircuit.

Teacher-student scalar regression with Sacramento-style dendritic microcircuits made of stochastic
spiking neurons (t_ref = tau_syn = 10): an input neuron (potential = the input u_in), a hidden
pyramidal neuron with an interneuron, and an output pyramidal neuron. Per step (authors' ``model.py``)::

    hidden:      u_h = b_h + W10 psp_in + lambda_api (w_down psp_out + w_pi psp_inn)   lambda_api = 0.02
    interneuron: u_i = b_o + w_ip psp_h,  w_ip = W21, w_pi = -w_down  (self-predicting state, imposed)
    output:      u_o = b_o + W21 psp_h + lambda_nudge (u_tgt - vbar_bas_o - b_o)       lambda_nudge = 0.6
    dW10 = lr_1 (phi(ubar_h) - phi(vbar_bas_h + b_h)) s_in,  dW21 = lr_2 (phi(ubar_o) - phi(vbar_bas_o + b_o)) s_h

with phi(u) = sigma(u - ln t_ref), bars moving averages, s a presynaptic spike, no plasticity for
``lag`` steps after each pattern onset, biases fixed at the teacher's -1. Teacher: W10 = W21 = 2;
targets are its mean output voltages (simulated). Training inputs {-3, -2.5, -2, -0.8, 0.8, 2, 2.5,
3}, validation {-2.7, -1.8, -0.5, 0.5, 1.8, 2.7}; student weights U(-3, 3). An epoch is 20 training
patterns then 6 validation patterns (no plasticity, no nudging; loss: MSE of the mean output voltage).

Feedback ``w_down`` (B) by rule: ``bp`` copies W21 every step; ``fa`` keeps its random start;
``sal``: the last 5 training patterns of every epoch are a symmetrization phase (lambda_api = 1,
interneuron silenced, forward plasticity off, no nudging) in which w_down learns by SAL (exponential
window tau = 10, nearest-neighbour pairs: post = hidden, pre = output). All rules x seeds run as one
batch. With one neuron per layer the angle between B and W21^T is 0 or 180 degrees (sign agreement);
we record it with |w_down - W21|.

Protocols: ``cpu`` (default) patterns of 500 steps (authors 20,000; 2,000 for SAL's teacher), moving
averages with time constant 100 steps and a 100-step lag (authors: 2,000-step windows and lag), 30
epochs (authors 150), learning rates x40 (so lr x plastic steps is 1/4 of theirs), 20 seeds;
``paper``: the authors' numbers (a long job).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

from creditlab.errors import OptionError
from creditlab.experiments import ExperimentContext, ExperimentOption, register_experiment
from creditlab.experiments.sal_sampling import quantile_summary
from creditlab.report.render import Table
from creditlab.results import make_record
from creditlab.seeding import mix_seed, seeded_generator
from creditlab.spiking.sal import ExponentialWindow, PairSTDP, sal_update
from creditlab.spiking.stochastic import RunNoise, StochasticNeurons, spike_probability

T_REF = 10
TRAIN_INPUTS = (-3.0, -2.5, -2.0, -0.8, 0.8, 2.0, 2.5, 3.0)
VALIDATION_INPUTS = (-2.7, -1.8, -0.5, 0.5, 1.8, 2.7)
RULES = ("bp", "fa", "sal")


@dataclass
class MicrocircuitProtocol:
    """Timing, learning rates and seeds of the microcircuit runs."""

    epochs: int
    pattern_steps: int
    average_steps: int
    lag: int
    lr_hidden: float
    lr_output: float
    lr_down: float
    seeds: int
    train_patterns: int = 20
    symmetrization_patterns: int = 5
    lambda_api: float = 0.02
    lambda_nudge: float = 0.6
    teacher_steps: int = 4000


PAPER = MicrocircuitProtocol(150, 20_000, 2_000, 2_000, 0.2, 0.003, 0.001, 20)
CPU = MicrocircuitProtocol(30, 500, 100, 100, 8.0, 0.12, 0.04, 20)
QUICK = MicrocircuitProtocol(1, 60, 20, 20, 8.0, 0.12, 0.04, 2, teacher_steps=300)


def teacher_targets(inputs: tuple[float, ...], seed: int, chains: int = 64, steps: int = 4000) -> torch.Tensor:
    """Mean output voltage b_o + W21 psp_h of the teacher (W10 = W21 = 2, biases -1) per input."""
    n = len(inputs)
    u_in = torch.tensor(inputs).view(n, 1, 1).expand(n, chains, 1)
    inp, hid = StochasticNeurons((n, chains, 1), T_REF), StochasticNeurons((n, chains, 1), T_REF)
    noise_in = RunNoise([mix_seed(seed, "teacher-in", k) for k in range(n)], (chains, 1))
    noise_h = RunNoise([mix_seed(seed, "teacher-h", k) for k in range(n)], (chains, 1))
    total = torch.zeros(n)
    for step in range(steps + T_REF):
        psp_in, psp_h = inp.psp(), hid.psp()
        if step >= T_REF:
            total += (-1.0 + 2.0 * psp_h).mean((1, 2))
        inp.step(u_in, noise_in.next())
        hid.step(-1.0 + 2.0 * psp_in, noise_h.next())
    return total / steps


class Microcircuits:
    """A batch of 1-1-1 microcircuits, one per (rule, seed); state tensors (runs, 1, 1)."""

    def __init__(self, rules: list[str], seeds: list[int], base_seed: int, protocol: MicrocircuitProtocol) -> None:
        runs = len(rules)
        self.protocol, self.rules = protocol, rules
        init = [seeded_generator(base_seed, "init", s) for s in seeds]
        draws = torch.stack([torch.rand(3, generator=g) * 6 - 3 for g in init])  # W10, W21, w_down
        self.w10, self.w21, self.w_down = (draws[:, k].view(runs, 1, 1).clone() for k in range(3))
        self.is_bp = torch.tensor([r == "bp" for r in rules]).view(runs, 1, 1)
        self.is_sal = torch.tensor([r == "sal" for r in rules]).view(runs, 1, 1)
        self.w_down = torch.where(self.is_bp, self.w21, self.w_down)
        self.bias = -1.0
        names = ("in", "h", "inn", "out")
        self.neurons = {k: StochasticNeurons((runs, 1, 1), T_REF) for k in names}
        self.noise = {k: RunNoise([mix_seed(base_seed, "spikes", r, s, k) for r, s in zip(rules, seeds, strict=True)],
                                  (1, 1)) for k in names}
        self.pairs = PairSTDP(ExponentialWindow(T_REF), "nearest")
        zeros = torch.zeros(runs, 1, 1)
        self.avg = {"bas_h": zeros.clone(), "u_h": zeros.clone(), "bas_o": zeros.clone(), "u_o": zeros.clone()}

    def pattern(self, u_in: torch.Tensor, target: torch.Tensor | None, learn: bool,
                symmetrize: torch.Tensor) -> torch.Tensor:
        """Present one input per run for a pattern; returns the mean output voltage b_o + v_bas_o."""
        p = self.protocol
        decay = math.exp(-1.0 / p.average_steps)
        lam_api = torch.where(symmetrize, 1.0, p.lambda_api)
        forward_on = learn & ~symmetrize
        voltage = torch.zeros_like(u_in)
        self.pairs.reset()
        for step in range(p.pattern_steps):
            psp = {k: pop.psp() for k, pop in self.neurons.items()}
            w_pi = torch.where(symmetrize, 0.0, -self.w_down)
            bas_h = self.w10 * psp["in"]
            u_h = self.bias + bas_h + lam_api * (self.w_down * psp["out"] + w_pi * psp["inn"])
            u_inn = torch.where(symmetrize, -1e4, self.bias + self.w21 * psp["h"])  # silenced in symmetrization
            bas_o = self.w21 * psp["h"]
            u_o = self.bias + bas_o
            if target is not None:
                u_o = u_o + torch.where(symmetrize, 0.0, p.lambda_nudge * (target - self.avg["bas_o"] - self.bias))
            for key, value in (("bas_h", bas_h), ("u_h", u_h), ("bas_o", bas_o), ("u_o", u_o)):
                self.avg[key].mul_(decay).add_(value, alpha=1 - decay)
            spikes = {k: self.neurons[k].step(u, self.noise[k].next())
                      for k, u in (("in", u_in), ("h", u_h), ("inn", u_inn), ("out", u_o))}
            if step >= p.lag:
                voltage += self.bias + bas_o
                if learn:
                    err_h = spike_probability(self.avg["u_h"], T_REF) - spike_probability(
                        self.avg["bas_h"] + self.bias, T_REF)
                    err_o = spike_probability(self.avg["u_o"], T_REF) - spike_probability(
                        self.avg["bas_o"] + self.bias, T_REF)
                    self.w10 += forward_on * p.lr_hidden * err_h * spikes["in"]
                    self.w21 += forward_on * p.lr_output * err_o * spikes["h"]
                    self.pairs.observe(spikes["out"], spikes["h"])  # B: pre = output, post = hidden
            self.w_down = torch.where(self.is_bp, self.w21, self.w_down)
        if learn:
            self.w_down = self.w_down + (symmetrize & self.is_sal) * p.lr_down * sal_update(self.pairs)
        return voltage / (p.pattern_steps - p.lag)


def train(rules: list[str], seeds: list[int], protocol: MicrocircuitProtocol, base_seed: int,
          log: Any = None) -> dict[str, Any]:
    """Every (rule, seed) as one batch; validation loss and weights after every epoch."""
    runs = len(rules)
    train_targets = teacher_targets(TRAIN_INPUTS, base_seed, steps=protocol.teacher_steps)
    val_targets = teacher_targets(VALIDATION_INPUTS, base_seed + 1, steps=protocol.teacher_steps)
    net = Microcircuits(rules, seeds, base_seed, protocol)
    order_gen = seeded_generator(base_seed, "order")
    history = []
    no = torch.zeros(runs, 1, 1, dtype=torch.bool)
    for epoch in range(protocol.epochs + 1):
        if epoch > 0:
            order = torch.randint(len(TRAIN_INPUTS), (protocol.train_patterns,), generator=order_gen)
            for k, index in enumerate(order.tolist()):
                symm = no | (net.is_sal & (k >= protocol.train_patterns - protocol.symmetrization_patterns))
                u = torch.full((runs, 1, 1), TRAIN_INPUTS[index])
                net.pattern(u, torch.full((runs, 1, 1), float(train_targets[index])), True, symm)
        errors = torch.zeros(runs)
        for index, value in enumerate(VALIDATION_INPUTS):
            out = net.pattern(torch.full((runs, 1, 1), value), None, False, no)
            errors += (out.flatten() - val_targets[index]) ** 2
        w21, w_down = net.w21.flatten(), net.w_down.flatten()
        entry = {"epoch": epoch, "val_loss": (errors / len(VALIDATION_INPUTS)).tolist(),
                 "w10": net.w10.flatten().tolist(),
                 "w21": w21.tolist(), "w_down": w_down.tolist(), "feedback_error": (w_down - w21).abs().tolist(),
                 "angle_deg": torch.where(w_down * w21 > 0, 0.0, 180.0).tolist()}
        history.append(entry)
        if log is not None:
            log(entry)
    return {"history": history, "train_targets": train_targets.tolist(), "val_targets": val_targets.tolist()}


def _options(ctx: ExperimentContext) -> str:
    chosen = ctx.options.get("protocol", "cpu")
    if chosen not in ("cpu", "paper"):
        raise OptionError(f"sal-microcircuit option protocol must be 'cpu' or 'paper', got {chosen!r}")
    return "quick" if ctx.quick else chosen


def summary(records: list[dict[str, Any]]) -> list[Table]:
    """Final validation loss and feedback error per rule: median [q25, q75] over seeds."""
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        if record["name"].startswith("sal-microcircuit/"):
            latest[record["name"]] = record
    rows = []
    for r in latest.values():
        f, v = r["final"], r["final"]["final_val_loss"]
        rows.append([f["rule"], f"{f['seeds'][0]}..{f['seeds'][-1]}",
                     f"{v['median']:.4g} [{v['q25']:.4g}, {v['q75']:.4g}]",
                     f"{f['final_feedback_error']['median']:.3g}", f"{f['final_sign_agreement']:.2f}",
                     f"{r['config']['protocol']}: {r['config']['epochs']} epochs x "
                     f"{r['config']['pattern_steps']} steps"])
    notes = ["Paper values: not available (no figure data published)."]
    per_seed = {r["final"]["rule"]: r["final"]["final_val_loss_per_seed"] for r in latest.values()}
    if {"bp", "fa", "sal"} <= set(per_seed) and len({len(v) for v in per_seed.values()}) == 1:
        bp, fa, sal = (per_seed[k] for k in ("bp", "fa", "sal"))  # the same seeds, so paired per seed
        ratio = statistics.median(s / b for s, b in zip(sal, bp, strict=True))
        fa_ratio = statistics.median(f / b for f, b in zip(fa, bp, strict=True))
        notes.append(f"Paired by seed: SAL's loss below FA's on {sum(s < f for s, f in zip(sal, fa, strict=True))}"
                     f"/{len(sal)} seeds, below BP's on {sum(s < b for s, b in zip(sal, bp, strict=True))}/{len(sal)}; "
                     f"median loss ratio to BP: SAL {ratio:.2f}, FA {fa_ratio:.2f}.")
    return [Table(["rule", "seeds", "final val loss median [IQR]", "abs(w_down - W21) median", "sign agreement",
                   "protocol"], rows, notes=notes,
                  title="sal-microcircuit: validation loss and feedback over seeds")]


@register_experiment("sal-microcircuit", "SAL (Gierlich 2025) exp. 2: 1-1-1 spiking microcircuit teacher-student "
                     "regression, SAL symmetrization phases vs BP and FA feedback", summary=summary,
                     options={"protocol": ExperimentOption("cpu", "cpu (stated reduced protocol) or paper (long)",
                                                           choices=("cpu", "paper"))})
def run(ctx: ExperimentContext) -> list[dict[str, Any]]:
    """All rules x seeds in one batch; one record per rule with per-epoch median/IQR over seeds."""
    label = _options(ctx)
    protocol = {"quick": QUICK, "cpu": CPU, "paper": PAPER}[label]
    seeds = list(range(ctx.seed, ctx.seed + protocol.seeds))
    rules = [r for r in RULES for _ in seeds]
    started = time.perf_counter()

    def log(entry: dict[str, Any]) -> None:
        med = {r: quantile_summary([v for v, rr in zip(entry["val_loss"], rules, strict=True) if rr == r])["median"]
               for r in RULES}
        print(f"[sal-microcircuit] epoch {entry['epoch']}: median val loss "
              + ", ".join(f"{r} {v:.4g}" for r, v in med.items()) + f" ({time.perf_counter() - started:.0f} s)",
              flush=True)

    result = train(rules, seeds * len(RULES), protocol, ctx.seed, log)
    wall = time.perf_counter() - started
    records = []
    print(f"\nsal-microcircuit ({label}{': smoke numbers, not results' if ctx.quick else ''}; seeds {seeds[0]}.."
          f"{seeds[-1]}, {len(rules)} runs in one batch, {wall:.0f} s)")
    print(f"{'rule':<5} {'final val loss median [q25, q75]':>34} {'|w_down - W21| median':>22} {'sign agree':>10}")
    for rule in RULES:
        index = [k for k, r in enumerate(rules) if r == rule]
        curve = [{"epoch": h["epoch"], **{key: quantile_summary([h[key][k] for k in index])
                                           for key in ("val_loss", "feedback_error", "w21", "w_down")},
                  "sign_agreement": sum(h["angle_deg"][k] == 0.0 for k in index) / len(index)}
                 for h in result["history"]]
        last = result["history"][-1]
        final = {"rule": rule, "seeds": seeds, "final_val_loss": curve[-1]["val_loss"],
                 "final_val_loss_per_seed": [last["val_loss"][k] for k in index],
                 "final_feedback_error": curve[-1]["feedback_error"],
                 "final_sign_agreement": curve[-1]["sign_agreement"],
                 "final_angle_deg_per_seed": [last["angle_deg"][k] for k in index],
                 "val_targets": result["val_targets"]}
        config = {"protocol": label, **asdict(protocol), "t_ref": T_REF, "seed": ctx.seed}
        record = make_record("reproduce", f"sal-microcircuit/{rule}", config, final, epochs=curve, wall_time_s=wall)
        ctx.record(record)
        records.append(record)
        v = final["final_val_loss"]
        print(f"{rule:<5} {v['median']:>14.4g} [{v['q25']:.4g}, {v['q75']:.4g}] "
              f"{final['final_feedback_error']['median']:>22.4g} {final['final_sign_agreement']:>10.2f}")
    return records
