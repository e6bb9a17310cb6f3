"""Step time of GEVB vs backprop inside the same VNN (scalar credit) vs autograd through the VNN.

Models: the authors' MNIST FC-Vec and Conv-Vec (nonnegative), batch 128, real MNIST (first 1024
training images, inputs in [-1, 1]) cycled in 8 resident batches. A fourth variant, ``fwd+in-grad``,
times only the forward pass and the input layer's weight gradient, the part of a GEVB step that no
implementation can skip: its speed-up over the authors' step bounds what the whole step can reach.
A step is what the trainer does: clear grads, the rule's update into ``.grad``, Adam(3e-4) step,
nonnegative projection. The variants run interleaved (one step each per round, order rotated) in
one process after untimed warm-up steps; we report median / min / max ms and ratios to BP-in-VNN
from the same rounds, beside the authors' implementation (anchor_perf.md: FC-Vec GEVB 272 ms,
Conv-Vec 1408 ms on 2 CPU threads; 2.46 / 3.76 ms on an H100).

    python benchmarks/gevb_step_time.py [--steps 40] [--models fc,conv] [--device cpu] [--out FILE]
        [--authors-code DIR] [--adam shipped|fused|default] [--compile reduce-overhead]

``--compile MODE`` adds GEVB and BP-in-VNN with the whole step under ``torch.compile`` (the GEVB step
is one graph: no backward pass, a closed-form output error), after checking that three compiled steps
leave the same weights as three eager ones. On a GPU, ``reduce-overhead`` (CUDA graphs) is the mode
aimed at the launch-bound 2-5 ms step.

Adam: creditlab's trainer uses torch's fused Adam; ``--adam shipped`` (default) times each code base
with its own optimizer, ``fused`` / ``default`` give every variant the same one.

``--authors-code DIR`` (a checkout of davidclark1/VectorizedNets, not part of creditlab) adds the
authors' own GEVB and vectorized-BP steps to the same interleaved rounds, so the speed-up over their
implementation is measured under identical machine conditions (this machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import copy
import importlib
import os
import statistics
import sys
from collections.abc import Callable

import torch
import torch.nn.functional as F

from creditlab.bench.perf import time_interleaved
from creditlab.data import load_dataset
from creditlab.models import apply_constraints, build_model
from creditlab.results import append_record, make_record
from creditlab.rules import build_rule

AUTHORS_MS = {  # anchor_perf.md §1 (median ms/step, batch 128)
    ("fc", "cpu"): {"gevb": 272.0, "vec-bp": 285.8},
    ("conv", "cpu"): {"gevb": 1407.9, "vec-bp": 1480.9},
    ("fc", "cuda"): {"gevb": 2.46, "vec-bp": 2.53},
    ("conv", "cuda"): {"gevb": 3.76, "vec-bp": 4.29},
}


StepFn = Callable[[torch.Tensor, torch.Tensor], None]


def make_steps(model_kind: str, device: str, seed: int = 0, fused_adam: bool = False,
               compile_mode: str | None = None) -> dict[str, StepFn]:
    """One training-step closure per variant, each with its own copy of the same initial model.

    compile_mode: also time GEVB and BP-in-VNN with the whole step (rule, Adam, projection) under
    ``torch.compile(mode=compile_mode)``, as ``gevb-compiled`` / ``bp-vnn-compiled``.
    """
    torch.manual_seed(seed)
    base = build_model(f"vnn-{model_kind}", (1, 28, 28), 10, seed=seed).to(device)
    steps = {}
    variants = ["gevb", "bp-vnn", "autograd"]
    if compile_mode:
        variants += ["gevb-compiled", "bp-vnn-compiled"]
    for variant in variants:
        model = copy.deepcopy(base)
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-4,
                                     fused=fused_adam or None)
        if variant == "autograd":
            def step(x: torch.Tensor, y: torch.Tensor, model=model, optimizer=optimizer) -> None:
                for p in model.parameters():
                    p.grad = None
                F.cross_entropy(model(x), y).backward()
                optimizer.step()
                apply_constraints(model)
        else:
            rule = build_rule("gevb" if variant.startswith("gevb") else "bp", model)

            def step(x: torch.Tensor, y: torch.Tensor, rule=rule, model=model, optimizer=optimizer) -> None:
                rule.step(x, y)
                optimizer.step()
                apply_constraints(model)
            if variant.endswith("-compiled"):
                step = torch.compile(step, mode=compile_mode)
        step.model = model  # read by check_compiled_steps
        steps[variant] = step
    steps["fwd+in-grad"] = make_floor_step(copy.deepcopy(base))
    return steps


def check_compiled_steps(steps: dict[str, StepFn], batches: list[tuple[torch.Tensor, torch.Tensor]],
                         rounds: int = 3) -> dict[str, float]:
    """Run each compiled step and its eager twin ``rounds`` steps from the same initial weights and
    return the largest parameter difference, relative to the parameters' scale (this also compiles)."""
    differences = {}
    for name in [n for n in steps if n.endswith("-compiled")]:
        eager_name = name.removesuffix("-compiled")
        for batch in batches[:rounds]:
            steps[eager_name](*batch)
            steps[name](*batch)
        eager_params = dict(steps[eager_name].model.named_parameters())
        worst = 0.0
        for pname, param in steps[name].model.named_parameters():
            reference = eager_params[pname].detach()
            scale = reference.abs().max().clamp_min(1e-12)
            worst = max(worst, float((param.detach() - reference).abs().max() / scale))
        differences[name] = worst
    return differences


def make_floor_step(model: torch.nn.Module) -> StepFn:
    """The part of a GEVB step no implementation of this net can skip: the forward pass of every layer
    (all K components) and the input layer's weight gradient (the only large one: later layers' GEVB
    gradients are batch-sized outer products). Its time bounds the speed-up of the whole step."""
    from creditlab.models.vnn import output_error

    index, input_layer = model.weight_layers()[0]

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        record = model.record_forward(x)
        _, error = output_error(record.logits, y, F.cross_entropy)
        input_layer.parameter_grads(record.layer_inputs[index], record.gate_masks[index + 1], error)
    return step


def make_authors_steps(model_kind: str, device: str, code_dir: str, seed: int = 0,
                       fused_adam: bool = False) -> dict[str, StepFn]:
    """The authors' training step (train_models.train_epoch, vectorized branch) for GEVB ("df") and BP.

    Input expansion runs on the device inside the step, as in anchor_perf.md §1.
    """
    sys.path.insert(0, code_dir)
    vnn = importlib.import_module("vnn")
    vec_models = importlib.import_module("vec_models")
    torch.manual_seed(seed)
    make = {"fc": vec_models.make_mnist_vec_fc, "conv": vec_models.make_mnist_vec_conv}[model_kind]
    base = make(mono=True).to(device)
    steps = {}
    for rule in ("df", "bp"):
        model = copy.deepcopy(base)
        # their parameters have requires_grad=False and .grad filled by hand
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-4, fused=fused_adam or None)

        def step(x: torch.Tensor, y: torch.Tensor, model=model, optimizer=optimizer, rule=rule) -> None:
            if model_kind == "fc":
                expanded = vnn.expand_input(x.flatten(1), 10)
            else:
                expanded = vnn.expand_input_conv(x, 10)
            optimizer.zero_grad()
            with torch.no_grad():
                output = model(expanded)[..., 0]
            vnn.set_model_grads(model, output, y, learning_rule=rule)
            optimizer.step()
            vnn.post_step_callback(model)
        steps[f"authors-{'gevb' if rule == 'df' else 'vec-bp'}"] = step
    return steps


def main() -> None:  # noqa: D103
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="timed rounds (each runs every variant once)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--models", default="fc,conv")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--data-dir", default=os.environ.get("CREDITLAB_DATA"))
    parser.add_argument("--out", default=None, help="append a perf record per model to this JSON-lines file")
    parser.add_argument("--authors-code", default=None, help="VectorizedNets checkout to time alongside")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--compile", default=None, dest="compile_mode",
                        choices=["default", "reduce-overhead", "max-autotune"],
                        help="also time GEVB and BP-in-VNN with the whole step under torch.compile(mode=...)")
    parser.add_argument("--adam", default="shipped", choices=["shipped", "fused", "default"],
                        help="shipped: creditlab's fused Adam (as its trainer) vs the authors' default Adam "
                             "(as their train_models.py); fused / default: the same Adam for every variant")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_dataset("mnist", args.data_dir, args.device, 0.0, 0, "symmetric")
    batches = [(data.train_x[i * 128:(i + 1) * 128], data.train_y[i * 128:(i + 1) * 128]) for i in range(8)]
    device_type = torch.device(args.device).type
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, torch {torch.__version__}")
    for kind in args.models.split(","):
        steps = make_steps(kind, args.device, fused_adam=args.adam in ("shipped", "fused"),
                           compile_mode=args.compile_mode)
        compiled_difference = check_compiled_steps(steps, batches)
        for name, difference in compiled_difference.items():
            print(f"{name}: largest parameter difference from eager after 3 steps {difference:.1e} "
                  "(relative to the parameter's largest entry)")
            if difference > 1e-3:
                raise SystemExit(f"{name} does not compute the eager step; not timing it")
        if args.authors_code:
            steps.update(make_authors_steps(kind, args.device, args.authors_code, fused_adam=args.adam == "fused"))
        seconds = time_interleaved(steps, batches, args.steps, args.warmup, args.device)
        times = {name: [1e3 * t for t in values] for name, values in seconds.items()}
        median = {name: statistics.median(t) for name, t in times.items()}
        authors = AUTHORS_MS.get((kind, device_type), {})
        print(f"\n{kind.upper()}-Vec (nonnegative), batch 128, {args.steps} interleaved rounds")
        print(f"{'variant':<16} {'median ms':>10} {'min':>8} {'max':>8} {'/ BP-in-VNN':>12} "
              f"{'authors ms':>11} {'speed-up':>9}")
        final = {}
        for name, t in times.items():
            ref = authors.get({"gevb": "gevb", "bp-vnn": "vec-bp"}.get(name, ""), None)
            speedup = ref / median[name] if ref else None
            print(f"{name:<16} {median[name]:>10.2f} {min(t):>8.2f} {max(t):>8.2f} "
                  f"{median[name] / median['bp-vnn']:>12.3f} {ref if ref else '-':>11} "
                  f"{f'{speedup:.1f}x' if speedup else '-':>9}")
            final[name] = {"median_ms": median[name], "min_ms": min(t), "max_ms": max(t),
                           "ratio_to_bp_vnn": median[name] / median["bp-vnn"],
                           "authors_median_ms": ref, "speedup_vs_authors_anchor": speedup}
        for name, ref_name in (("gevb", "authors-gevb"), ("bp-vnn", "authors-vec-bp"),
                               ("fwd+in-grad", "authors-gevb")):
            if ref_name in median:  # the authors' step timed in the same rounds
                final[name]["speedup_vs_authors_same_rounds"] = median[ref_name] / median[name]
                print(f"{name}: {median[ref_name] / median[name]:.2f}x faster than {ref_name} (same rounds)"
                      + ("  <- the most a GEVB step on this forward can gain" if name == "fwd+in-grad" else ""))
        if args.out:
            config = {"model": f"vnn-{kind}", "batch_size": 128, "rounds": args.steps, "warmup": args.warmup,
                      "optimizer": "adam", "lr": 3e-4, "adam": args.adam,
                      "authors_code": args.authors_code, "threads": torch.get_num_threads(),
                      "compile_mode": args.compile_mode}
            append_record(args.out, make_record("perf", f"gevb-step-time/{kind}-vec", config, final,
                                                device=args.device))


if __name__ == "__main__":
    main()
