"""SAL experiment 1 (Gierlich et al., arXiv 2503.02642, figs 4-5 of v1): a spiking sampling network.

Seven fully connected stochastic neurons (:mod:`creditlab.spiking.stochastic`, t_ref = tau_syn = 50
steps) learn a target Boltzmann distribution ``p*(z) ~ exp(z^T W* z / 2 + b*^T z)`` over the 2^7
states (W*, b* symmetric, entries U[-1, 1]) by wake-sleep learning, from asymmetric initial weights
(a symmetric N(0, 0.2) matrix plus an asymmetric N(0, sigma_init) perturbation; b ~ N(0, 0.2);
|W|, |b| <= 2). Each learning iteration runs the network freely ("sleep") for ``sleep_steps`` steps
and updates (the wake term is analytic)::

    dW_ij = lr (C*_ij - a_ij C_ij) + lr_symm a'_ij SAL_ij          db_i = lr (m*_i - m_i)
    C_ij  = (t_ref / T) sum_pairs k(|dt|)     the symmetric window (+1/+1): an estimate of <z_i z_j>
    SAL_ij = (t_ref / T) sum_pairs (-k(dt) causal, +k(-dt) anti-causal)           (SAL window)
    m_i   = t_ref * spikes_i / T                                                    (an estimate of <z_i>)

with the triangular window k(s) = 1 - s / 50, nearest-neighbour pairing, and per-synapse plasticity
noise a = 1 + eps, eps ~ N(0, sigma_stdp) truncated at 1.5 sigma_stdp, drawn independently for the
learning rule (a) and for SAL (a'). (For rectangular states of length t_ref two spikes dt apart
overlap for t_ref - |dt| steps, so the symmetric sum times t_ref / T is the time average of z_i z_j.)

Two scenarios, each with and without SAL (authors' configs, ``tables_recovered.md`` section 2.3):
"synaptic noise" sweeps sigma_init in {0, .2, .4, .6, .8, 1} with sigma_stdp = 0; "plasticity noise"
sweeps sigma_stdp in {0, .01, ..., .05} with sigma_init = 0.2. 5 target seeds x 4 init seeds = 20
runs per level. Every run of both scenarios, all levels, with and without SAL, is one batch (480
runs) simulated together; each run has its own generators (``creditlab.seeding.mix_seed``).

Measured: D_KL(p* || p) over the 128 states, with p the network's state distribution read out every
t_ref / 2 steps from ``eval_chains`` parallel chains of the run's current network (add-1/2 counts);
the same estimator applied to the *target* network (W*, b*) gives the sampling floor the estimate
cannot go below. Asymmetry: Var(W_ij - W_ji) over the upper triangle. Median and IQR over seeds.

Protocols: ``cpu`` (default; a stated reduction of the number of steps, with learning rates scaled up
to match) and ``paper`` (the authors' 20,001 / 150,001 iterations of 50,000 steps: a GPU job).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch

from creditlab.errors import OptionError
from creditlab.experiments import ExperimentContext, ExperimentOption, register_experiment
from creditlab.report.render import Table
from creditlab.results import make_record
from creditlab.seeding import mix_seed, seeded_generator
from creditlab.spiking.sal import PairSTDP, TriangularWindow, plasticity_amplitudes, sal_update, symmetric_update
from creditlab.spiking.stochastic import RunNoise, StochasticNeurons

NEURONS = 7
T_REF = 50
SCENARIOS = {"synaptic": (0.0, 0.2, 0.4, 0.6, 0.8, 1.0), "plasticity": (0.0, 0.01, 0.02, 0.03, 0.04, 0.05)}


@dataclass
class SamplingProtocol:
    """How long and how fast the sampling networks learn (per scenario learning rates)."""

    iterations: int
    sleep_steps: int
    lr: dict[str, float]
    lr_symm: dict[str, float]
    eval_every: int
    eval_chains: int
    eval_steps: int
    target_seeds: int = 5
    init_seeds: int = 4
    levels: dict[str, tuple[float, ...]] = field(default_factory=lambda: dict(SCENARIOS))


#: the authors' configs (syn_noise{,_sal}, plast_noise{,_sal}); they differ in iterations, so the
#: paper protocol is run as two batches (one per scenario); D_KL from 64 chains x 100,000 steps where the
#: authors ran one chain 1000x longer than an iteration
PAPER = {"synaptic": SamplingProtocol(20_001, 50_000, {"synaptic": 0.01}, {"synaptic": 0.01}, 500, 64, 100_000,
                                      levels={"synaptic": SCENARIOS["synaptic"]}),
         "plasticity": SamplingProtocol(150_001, 50_000, {"plasticity": 0.001}, {"plasticity": 0.002}, 2000, 64,
                                        100_000, levels={"plasticity": SCENARIOS["plasticity"]})}
#: CPU: 600 iterations of 2,500 steps (1/13,000 of the authors' steps for the plasticity scenario);
#: learning rates x10 / x100 (lr * iterations: syn 60 vs the authors' 200, plast 60 vs 150), lr_symm / lr
#: as theirs (1 and 2). D_KL from 64 chains x 6,000 steps (15,360 states per run).
CPU = SamplingProtocol(600, 2_500, {"synaptic": 0.1, "plasticity": 0.1}, {"synaptic": 0.1, "plasticity": 0.2},
                       100, 64, 6_000)
QUICK = SamplingProtocol(12, 400, {"synaptic": 0.05, "plasticity": 0.1}, {"synaptic": 0.05, "plasticity": 0.2},
                         6, 8, 400, target_seeds=2, init_seeds=1,
                         levels={"synaptic": (0.0, 0.8), "plasticity": (0.0, 0.05)})


def all_states(n: int = NEURONS) -> torch.Tensor:
    """The 2^n binary states, row k = the bits of k (neuron i = bit i): (2^n, n) float64."""
    codes = torch.arange(2 ** n)
    return ((codes.unsqueeze(1) >> torch.arange(n)) & 1).double()


def boltzmann(weights: torch.Tensor, biases: torch.Tensor) -> torch.Tensor:
    """p(z) ~ exp(z^T W z / 2 + b^T z) over all states, for (runs, n, n) symmetric W: (runs, 2^n)."""
    states = all_states(weights.shape[-1])
    energy = 0.5 * torch.einsum("si,rij,sj->rs", states, weights.double(), states) + biases.double() @ states.T
    return torch.softmax(energy, dim=1)


def kl_divergence(target: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """D_KL(p* || p) per run, p from state counts with 1/2 added to every state (never log 0)."""
    p = (counts + 0.5) / (counts + 0.5).sum(1, keepdim=True)
    return (target * (target.clamp_min(1e-300).log() - p.log())).sum(1)


def asymmetry(weights: torch.Tensor) -> torch.Tensor:
    """Var(W_ij - W_ji) over the upper triangle, per run."""
    rows, cols = torch.triu_indices(weights.shape[-1], weights.shape[-1], 1)
    return (weights[:, rows, cols] - weights[:, cols, rows]).var(dim=1)


@dataclass
class Condition:
    """One run of the batch."""

    scenario: str
    level: float
    sal: bool
    target_seed: int
    init_seed: int


def conditions(protocol: SamplingProtocol) -> list[Condition]:
    """Every (scenario, level, SAL off/on, target seed, init seed) of the protocol."""
    return [Condition(s, lv, sal, t, i) for s, levels in protocol.levels.items() for lv in levels
            for sal in (False, True) for t in range(protocol.target_seeds) for i in range(protocol.init_seeds)]


def initial_state(runs: list[Condition], seed: int) -> dict[str, torch.Tensor]:
    """Targets, initial weights, per-run learning rates and plasticity amplitudes (all (runs, ...))."""
    n = NEURONS
    rows: dict[str, list[torch.Tensor]] = {k: [] for k in ("w_target", "b_target", "w", "b", "a_learn", "a_sal")}
    for c in runs:
        target_gen = seeded_generator(seed, "target", c.target_seed)
        upper = torch.triu(torch.rand(n, n, generator=target_gen) * 2 - 1, 1)
        rows["w_target"].append(upper + upper.T)
        rows["b_target"].append(torch.rand(n, generator=target_gen) * 2 - 1)
        init_gen = seeded_generator(seed, "init", c.target_seed, c.init_seed)
        sym = torch.triu(torch.randn(n, n, generator=init_gen) * 0.2, 1)
        sigma_init = c.level if c.scenario == "synaptic" else 0.2
        perturbation = torch.randn(n, n, generator=init_gen) * sigma_init
        rows["w"].append((sym + sym.T + perturbation).clamp(-2, 2))
        rows["b"].append((torch.randn(n, generator=init_gen) * 0.2).clamp(-2, 2))
        sigma_stdp = c.level if c.scenario == "plasticity" else 0.0
        noise_gen = seeded_generator(seed, "stdp-noise", c.target_seed, c.init_seed)
        rows["a_learn"].append(plasticity_amplitudes((n, n), sigma_stdp, noise_gen))
        rows["a_sal"].append(plasticity_amplitudes((n, n), sigma_stdp, noise_gen))
    return {k: torch.stack(v) for k, v in rows.items()}


def sample_counts(weights: torch.Tensor, biases: torch.Tensor, chains: int, steps: int, seeds: list[int],
                  device: str) -> torch.Tensor:
    """State counts (runs, 2^n) of each run's network, read every t_ref/2 steps after a t_ref burn-in."""
    runs, n = biases.shape
    neurons = StochasticNeurons((runs, chains, n), T_REF, device=device)
    noise = RunNoise(seeds, (chains, n), device=device)
    counts = torch.zeros(runs, 2 ** n, device=device)
    powers = 2 ** torch.arange(n, device=device, dtype=torch.float32)
    weights_t, bias = weights.transpose(1, 2).contiguous(), biases.unsqueeze(1)
    for step in range(steps + T_REF):
        neurons.step(torch.baddbmm(bias, neurons.psp(), weights_t), noise.next())
        if step >= T_REF and step % (T_REF // 2) == 0:
            codes = (neurons.state() @ powers).long()  # (runs, chains)
            counts.scatter_add_(1, codes, torch.ones_like(codes, dtype=counts.dtype))
    return counts


def sleep_phase(weights: torch.Tensor, biases: torch.Tensor, neurons: StochasticNeurons, noise: RunNoise,
                pairs: PairSTDP, steps: int) -> torch.Tensor:
    """Run every network freely for ``steps`` steps, pairs reset first; returns spike counts (runs, n)."""
    pairs.reset()
    spike_count = torch.zeros(neurons.refractory_left.shape, device=weights.device)
    weights_t, bias = weights.transpose(1, 2).contiguous(), biases.unsqueeze(1)
    for _ in range(steps):
        spikes = neurons.step(torch.baddbmm(bias, neurons.psp(), weights_t), noise.next())
        pairs.observe(spikes, spikes)
        spike_count += spikes
    return spike_count.sum(1)


def train_batch(runs: list[Condition], protocol: SamplingProtocol, seed: int, device: str,
                log: Any = None) -> dict[str, Any]:
    """Wake-sleep learning of every run at once; D_KL and asymmetry every ``eval_every`` iterations."""
    n = NEURONS
    state = {k: v.to(device) for k, v in initial_state(runs, seed).items()}
    w, b = state["w"], state["b"]
    targets = boltzmann(state["w_target"], state["b_target"])  # (runs, 128) float64
    states = all_states().to(device)
    target_corr = torch.einsum("rs,si,sj->rij", targets, states, states).float()
    target_mean = (targets @ states).float()
    lr = torch.tensor([protocol.lr[c.scenario] for c in runs], device=device).view(-1, 1, 1)
    lr_symm = torch.tensor([protocol.lr_symm[c.scenario] * c.sal for c in runs], device=device).view(-1, 1, 1)
    off_diagonal = (1.0 - torch.eye(n, device=device)).expand(len(runs), n, n)
    spike_seeds = [mix_seed(seed, "spikes", c.scenario, str(c.level), c.target_seed, c.init_seed) for c in runs]
    neurons = StochasticNeurons((len(runs), 1, n), T_REF, device=device)
    noise = RunNoise(spike_seeds, (1, n), device=device)
    pairs = PairSTDP(TriangularWindow(T_REF), "nearest", recurrent=True)
    eval_seeds = [mix_seed(s, "eval") for s in spike_seeds]
    history: list[dict[str, Any]] = []
    floor_counts = sample_counts(state["w_target"], state["b_target"], protocol.eval_chains, protocol.eval_steps,
                                 [mix_seed(s, "floor") for s in eval_seeds], device)
    floor = kl_divergence(targets, floor_counts.double()).cpu()

    def measure(iteration: int) -> None:
        counts = sample_counts(w, b, protocol.eval_chains, protocol.eval_steps,
                               [mix_seed(s, iteration) for s in eval_seeds], device)
        history.append({"iteration": iteration, "dkl": kl_divergence(targets, counts.double()).cpu().tolist(),
                        "asymmetry": asymmetry(w).cpu().tolist()})
        if log is not None:
            log(iteration, history[-1])

    measure(0)
    for iteration in range(1, protocol.iterations + 1):
        spike_count = sleep_phase(w, b, neurons, noise, pairs, protocol.sleep_steps)
        scale = T_REF / protocol.sleep_steps
        sleep_corr = scale * symmetric_update(pairs)
        sleep_mean = scale * spike_count
        dw = lr * (target_corr - state["a_learn"] * sleep_corr) + lr_symm * state["a_sal"] * scale * sal_update(pairs)
        w.add_(dw * off_diagonal).clamp_(-2, 2)
        b.add_(lr[:, 0] * (target_mean - sleep_mean)).clamp_(-2, 2)
        if iteration % protocol.eval_every == 0 or iteration == protocol.iterations:
            measure(iteration)
    return {"history": history, "floor": floor.tolist()}


def quantile_summary(values: list[float]) -> dict[str, float]:
    """Median and interquartile range of ``values`` (float64)."""
    t = torch.tensor(values, dtype=torch.float64)
    q = torch.quantile(t, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)).tolist()
    return {"median": q[1], "q25": q[0], "q75": q[2]}


def summarize(runs: list[Condition], result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (scenario, level, SAL): median/IQR of D_KL and asymmetry at every measurement."""
    rows = []
    keyed = itertools.groupby(sorted(range(len(runs)), key=lambda k: (runs[k].scenario, runs[k].level, runs[k].sal)),
                              key=lambda k: (runs[k].scenario, runs[k].level, runs[k].sal))
    for (scenario, level, sal), members in keyed:
        index = list(members)
        curve = [{"iteration": h["iteration"], "dkl": quantile_summary([h["dkl"][k] for k in index]),
                  "asymmetry": quantile_summary([h["asymmetry"][k] for k in index])} for h in result["history"]]
        rows.append({"scenario": scenario, "level": level, "sal": sal, "runs": len(index),
                     "seeds": [[runs[k].target_seed, runs[k].init_seed] for k in index],
                     "final_dkl": curve[-1]["dkl"], "final_asymmetry": curve[-1]["asymmetry"],
                     "final_dkl_per_run": [result["history"][-1]["dkl"][k] for k in index],
                     "sampling_floor_dkl": quantile_summary([result["floor"][k] for k in index]), "curve": curve})
    return rows


def _figure(ctx: ExperimentContext, rows: list[dict[str, Any]], protocol: SamplingProtocol) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(14, 7))
    for r, scenario in enumerate(protocol.levels):
        scen = [row for row in rows if row["scenario"] == scenario]
        example = max(lv for lv in protocol.levels[scenario] if lv <= (0.8 if scenario == "synaptic" else 0.05))
        for metric, ax in (("dkl", axes[r, 0]), ("asymmetry", axes[r, 1])):
            for row in scen:
                if row["level"] not in (0.0, example):
                    continue
                x = [c["iteration"] for c in row["curve"]]
                med = [c[metric]["median"] for c in row["curve"]]
                ax.plot(x, med, label=f"{'SAL' if row['sal'] else 'no SAL'}, noise {row['level']}",
                        ls="-" if row["sal"] else "--")
                ax.fill_between(x, [c[metric]["q25"] for c in row["curve"]], [c[metric]["q75"] for c in row["curve"]],
                                alpha=0.2)
            ax.set_yscale("log")
            ax.set_xlabel("iteration")
            ax.set_title(f"{scenario} noise: {'D_KL(p*||p)' if metric == 'dkl' else 'Var(W_ij - W_ji)'}")
            ax.legend(fontsize=7)
        ax = axes[r, 2]
        for sal in (False, True):
            sel = [row for row in scen if row["sal"] == sal]
            ax.errorbar([row["level"] for row in sel], [row["final_dkl"]["median"] for row in sel],
                        yerr=[[row["final_dkl"]["median"] - row["final_dkl"]["q25"] for row in sel],
                              [row["final_dkl"]["q75"] - row["final_dkl"]["median"] for row in sel]],
                        marker="o", capsize=3, label="SAL" if sal else "no SAL")
        ax.axhline(scen[0]["sampling_floor_dkl"]["median"], color="gray", ls=":", label="sampling floor")
        ax.set_yscale("log")
        ax.set_xlabel("sigma_init" if scenario == "synaptic" else "sigma_stdp")
        ax.set_title("final D_KL, median and IQR over seeds")
        ax.legend(fontsize=7)
    fig.tight_layout()
    ctx.figure(fig, "sal_sampling")


def print_summary(rows: list[dict[str, Any]]) -> None:
    """The final D_KL and asymmetry table (median [IQR] over seeds)."""
    print(f"{'scenario':<11}{'noise':>6} {'SAL':>4} {'runs':>4} {'final D_KL median [q25, q75]':>32} "
          f"{'asymmetry median':>17} {'floor':>9}")
    for row in rows:
        d, a = row["final_dkl"], row["final_asymmetry"]
        print(f"{row['scenario']:<11}{row['level']:>6} {'yes' if row['sal'] else 'no':>4} {row['runs']:>4} "
              f"{d['median']:>12.4g} [{d['q25']:.4g}, {d['q75']:.4g}] {a['median']:>17.4g} "
              f"{row['sampling_floor_dkl']['median']:>9.4g}")


def _options(ctx: ExperimentContext) -> dict[str, Any]:
    protocol = ctx.options.get("protocol", "cpu")
    if protocol not in ("cpu", "paper"):
        raise OptionError(f"sal-sampling option protocol must be 'cpu' or 'paper', got {protocol!r}")
    return {"protocol": protocol}


def _as_list(value: Any) -> list[Any]:
    return [value] if isinstance(value, str | int | float) else list(value)


def restricted(protocol: SamplingProtocol, options: dict[str, Any]) -> SamplingProtocol:
    """``protocol`` with the ``iterations``, ``scenarios`` and ``levels`` options applied (a stated
    budget: more iterations, or a subset of the conditions); ValueError naming the valid values."""
    changes: dict[str, Any] = {}
    if options.get("iterations") is not None:
        iterations = int(options["iterations"])
        if iterations < 1:
            raise OptionError(f"sal-sampling option iterations must be >= 1, got {iterations}")
        changes["iterations"] = iterations
    levels = dict(protocol.levels)
    if options.get("scenarios") is not None:
        chosen = [str(s) for s in _as_list(options["scenarios"])]
        if not chosen or any(s not in levels for s in chosen):
            raise OptionError(f"sal-sampling option scenarios must be a non-empty subset of {list(levels)}, "
                             f"got {chosen}")
        levels = {s: levels[s] for s in chosen}
    if options.get("levels") is not None:
        wanted = {float(v) for v in _as_list(options["levels"])}
        levels = {s: tuple(v for v in values if v in wanted) for s, values in levels.items()}
        if any(len(v) < 1 for v in levels.values()):
            raise OptionError(f"sal-sampling option levels {sorted(wanted)} leave a scenario without a level; "
                             f"valid: {dict(protocol.levels)}")
    if levels != protocol.levels:
        changes["levels"] = levels
    return replace(protocol, **changes) if changes else protocol


def _latest(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last record of every name (later runs replace earlier ones), in first-seen order."""
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        latest[record["name"]] = record
    return list(latest.values())


def summary(records: list[dict[str, Any]]) -> list[Table]:
    """Final D_KL and asymmetry per (scenario, noise level, SAL): median [q25, q75] over seeds."""
    rows = []
    for r in _latest([r for r in records if r["name"].startswith("sal-sampling/")]):
        f, c = r["final"], r["config"]
        d = f["final_dkl"]
        rows.append([f["scenario"], f"{f['level']:g}", "yes" if f["sal"] else "no", str(f["runs"]),
                     f"{d['median']:.4g} [{d['q25']:.4g}, {d['q75']:.4g}]", f"{f['final_asymmetry']['median']:.3g}",
                     f"{f['sampling_floor_dkl']['median']:.4g}",
                     f"{c['protocol']}: {c['iterations']} x {c['sleep_steps']}"])
    return [Table(["scenario", "noise", "SAL", "runs", "final D_KL median [IQR]", "asymmetry (median)",
                   "sampling floor", "protocol (iterations x steps)"], rows,
                  notes=["D_KL(p* || p) over the 2^7 states; the floor is the same estimator on the target network.",
                         "Paper values: not available (no figure data published)."],
                  title="sal-sampling: final D_KL and asymmetry over seeds")]


@register_experiment("sal-sampling", "SAL (Gierlich 2025) exp. 1: 7-neuron spiking sampling network, "
                     "D_KL and asymmetry under synaptic / plasticity noise, with and without SAL", summary=summary,
                     options={"protocol": ExperimentOption("cpu", "cpu (stated reduced protocol) or paper (GPU)",
                                                           choices=("cpu", "paper")),
                              "iterations": ExperimentOption(None, "learning iterations [default: the protocol's]",
                                                             type=int, minimum=1),
                              "scenarios": ExperimentOption(None, "scenarios to run [default: both]", type=list,
                                                            choices=tuple(SCENARIOS), single=True),
                              "levels": ExperimentOption(None, "noise levels to run, e.g. [0.0,1.0] [default: all]",
                                                         type=list, item=float, minimum=0, single=True)})
def run(ctx: ExperimentContext) -> list[dict[str, Any]]:
    """Every condition of both scenarios as one batch of runs; one record per (scenario, level, SAL)."""
    torch.manual_seed(ctx.seed)
    chosen = _options(ctx)["protocol"]
    if ctx.quick:
        batches = {"quick": QUICK}
    elif chosen == "paper":
        batches = PAPER
    else:
        batches = {"cpu": CPU}
    batches = {label: restricted(protocol, ctx.options) for label, protocol in batches.items()}
    records = []
    for label, protocol in batches.items():
        runs = conditions(protocol)
        started = time.perf_counter()

        def log(iteration: int, entry: dict[str, Any], label: str = label, started: float = started) -> None:
            print(f"[sal-sampling {label}] iteration {iteration}: median D_KL "
                  f"{float(torch.tensor(entry['dkl']).median()):.4g} ({time.perf_counter() - started:.0f} s)",
                  flush=True)

        result = train_batch(runs, protocol, ctx.seed, ctx.device, log)
        wall = time.perf_counter() - started
        rows = summarize(runs, result)
        config = {"protocol": "quick" if ctx.quick else chosen, **asdict(protocol), "neurons": NEURONS,
                  "t_ref": T_REF, "seed": ctx.seed, "runs_in_batch": len(runs), "device": ctx.device}
        for row in rows:
            name = f"sal-sampling/{row['scenario']}/{row['level']}/{'sal' if row['sal'] else 'no-sal'}"
            record = make_record("reproduce", name, config, {k: v for k, v in row.items() if k != "curve"},
                                 epochs=row["curve"], wall_time_s=wall, device=ctx.device)
            ctx.record(record)
            records.append(record)
        print(f"\nsal-sampling ({label}{': smoke numbers, not results' if ctx.quick else ''}; "
              f"{len(runs)} runs in one batch, {wall:.0f} s)")
        print_summary(rows)
        _figure(ctx, rows, protocol)
    return records


__all__ = ["CPU", "PAPER", "QUICK", "SamplingProtocol", "all_states", "asymmetry", "boltzmann", "kl_divergence",
           "run", "sample_counts", "train_batch"]
