"""The sampling network's 120 runs of one condition as one batch vs a loop over runs (one process).

One "step" is one learning iteration's sleep phase of SAL experiment 1 (7 neurons, t_ref 50,
nearest-neighbour pair sums for the symmetric and SAL windows) for all 120 runs of a scenario
(6 noise levels x 20 seeds): ``batch`` simulates them as one (120, 1, 7) population, ``loop`` as 120
one-run simulations one after another. Both are timed interleaved in one process (creditlab's
``time_interleaved``); the speed-up is the ratio of median times from the same rounds. Peak memory
(max resident set) of each mode is measured alone in a child process. Both modes give the same
spikes bit for bit (tests/test_sal.py).

    python benchmarks/sal_batch_speed.py [--runs 120] [--steps 500] [--rounds 5] [--device cpu] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
from collections.abc import Callable

import torch

from creditlab.bench.perf import time_interleaved
from creditlab.experiments.sal_sampling import NEURONS, T_REF, sleep_phase
from creditlab.results import append_record, make_record
from creditlab.seeding import mix_seed
from creditlab.spiking.sal import PairSTDP, TriangularWindow
from creditlab.spiking.stochastic import RunNoise, StochasticNeurons


def make_phase(runs: int, steps: int, device: str, batched: bool) -> Callable[[object, object], None]:
    """A function running one sleep phase of ``runs`` networks, batched or one run at a time."""
    gen = torch.Generator().manual_seed(0)
    weights = (torch.randn(runs, NEURONS, NEURONS, generator=gen) * 0.5).to(device)
    biases = (torch.rand(runs, NEURONS, generator=gen) * 2 - 1).to(device)
    seeds = [mix_seed(0, r) for r in range(runs)]
    groups = [list(range(runs))] if batched else [[r] for r in range(runs)]
    states = [(StochasticNeurons((len(g), 1, NEURONS), T_REF, device=device),
               RunNoise([seeds[r] for r in g], (1, NEURONS), device=device),
               PairSTDP(TriangularWindow(T_REF), "nearest", recurrent=True)) for g in groups]

    def phase(_inputs: object, _targets: object) -> None:
        for g, (neurons, noise, pairs) in zip(groups, states, strict=True):
            sleep_phase(weights[g], biases[g], neurons, noise, pairs, steps)

    return phase


def _child(mode: str, runs: int, steps: int, device: str) -> None:
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux (after imports)
    phase = make_phase(runs, steps, device, mode == "batch")
    phase(None, None)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.startswith("cuda"):
        peak, baseline = torch.cuda.max_memory_allocated() / 2**20, 0.0
    print(json.dumps({"peak_mib": peak, "above_import_mib": peak - baseline}))


def main() -> None:  # noqa: D103
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=120)
    parser.add_argument("--steps", type=int, default=500, help="sleep-phase steps per timed step")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="append a perf record to this JSON-lines file")
    parser.add_argument("--child", choices=("batch", "loop"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.runs < 1 or args.steps < 1 or args.rounds < 1:
        parser.error(f"--runs, --steps and --rounds must be >= 1, got {args.runs}, {args.steps}, {args.rounds}")
    torch.set_num_threads(args.threads)
    if args.child:
        _child(args.child, args.runs, args.steps, args.device)
        return
    steps = {mode: make_phase(args.runs, args.steps, args.device, mode == "batch") for mode in ("batch", "loop")}
    times = time_interleaved(steps, [(None, None)], rounds=args.rounds, warmup=1, device=args.device)
    median = {mode: statistics.median(t) for mode, t in times.items()}
    peaks = {}
    for mode in ("batch", "loop"):
        out = subprocess.run([sys.executable, __file__, "--child", mode, "--runs", str(args.runs), "--steps", "50",
                              "--device", args.device, "--threads", str(args.threads)],
                             capture_output=True, text=True, check=True)
        peaks[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    final = {"batch_s_per_phase": median["batch"], "loop_s_per_phase": median["loop"],
             "speedup": median["loop"] / median["batch"], "batch_us_per_step": 1e6 * median["batch"] / args.steps,
             "peak_mib_batch": peaks["batch"]["peak_mib"], "peak_mib_loop": peaks["loop"]["peak_mib"],
             "peak_above_import_mib_batch": peaks["batch"]["above_import_mib"],
             "peak_above_import_mib_loop": peaks["loop"]["above_import_mib"], "times_s": times}
    print(f"{args.runs} runs x {args.steps} steps: batch {median['batch']:.3f} s, loop {median['loop']:.3f} s "
          f"(median of {args.rounds} interleaved rounds), speed-up {final['speedup']:.1f}x; peak RSS batch "
          f"{final['peak_mib_batch']:.0f} MiB (+{final['peak_above_import_mib_batch']:.1f} over imports), loop "
          f"{final['peak_mib_loop']:.0f} MiB (+{final['peak_above_import_mib_loop']:.1f}) "
          f"({args.device}, {args.threads} thread(s))")
    if args.out:
        append_record(args.out, make_record("perf", "sal-batch-speed", vars(args), final, device=args.device))


if __name__ == "__main__":
    main()
