"""``pc-mnist`` / ``pc-fmnist``: predictive coding side by side with PCX (Pinchetti et al., ICLR 2025;
package ``pcx``, JAX) at PCX's MLP setting, in one process, epochs interleaved.

Setting (the same for both): 784-128-128-128-10 (4 linear layers, leaky ReLU 0.01 as PCX's examples),
value nodes initialised by the feedforward pass, T = 5 inference steps of plain SGD with rate 0.1 on
the energy (squared errors of the hidden layers, cross-entropy at the output with the label clamped),
then one weight step with Adam (lr 1e-3, betas 0.9/0.999, eps 1e-8) on the batch mean of the energy's
weight gradient; batch 128, 25 epochs, inputs standardised (MNIST mean/std); both frameworks see the
same batches (creditlab's seeded order) and each its own seeded initialisation (the same uniform
±1/sqrt(fan_in) law). The PCX side is a PCX model written with PCX's public API as its tutorials do
(``pxc.EnergyModule`` + ``pxc.Vode``, ``pxf.value_and_grad`` on the energy, ``pxu.Optim``).

Per seed: both curves (test accuracy after every epoch) and both wall times per epoch; then the step
time (one training step: inference + weight update, creditlab's ``rule.step`` + optimizer step versus
PCX's jitted ``train_on_batch``), interleaved on the same batches, median of ``timing_rounds``. One
thread for both (``torch.set_num_threads(1)``; XLA with ``--xla_cpu_multi_thread_eigen=false``
``intra_op_parallelism_threads=1``). PCX (and JAX) come from the ``pcx`` extra; without them the
experiment runs creditlab's side only and says so.
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch

from creditlab.data import batch_indices, load_dataset
from creditlab.errors import CreditlabError
from creditlab.experiments import ExperimentContext, ExperimentOption, register_experiment, register_headline
from creditlab.report.headline import Headline
from creditlab.report.render import Table, fmt
from creditlab.results import make_record
from creditlab.seeding import batch_stream_seed

HIDDEN = (128, 128, 128)
ACTIVATION = "leaky_relu"
RULE_OPTIONS: dict[str, Any] = {"T": 5, "inference_rate": 0.1, "energy": "ce"}
SETTINGS: dict[str, Any] = {"batch_size": 128, "lr": 1e-3, "optimizer": "adam", "schedule": "none",
                            "normalization": "standard", "weight_decay": 0.0}
OPTIONS = {
    "epochs": ExperimentOption(25, "epochs per seed (PCX's MLP setting: 25)", minimum=1),
    "seeds": ExperimentOption([0, 1, 2, 3, 4], "seeds, each trained in both frameworks", item=int, minimum=0,
                              single=True),
    "pcx": ExperimentOption(True, "also run PCX side by side (needs the pcx extra)"),
    "timing_rounds": ExperimentOption(200, "interleaved timed steps per framework", minimum=1),
}
QUICK = {"epochs": 1, "seeds": [0], "train_limit": 1024, "test_limit": 500, "timing_rounds": 5}


def _pcx_side(num_features: int, num_classes: int, seed: int) -> Any:
    """A PCX MLP of the setting with its jitted train/eval steps (PCX's tutorial structure)."""
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    import jax
    import optax
    import pcx as px
    import pcx.functional as pxf
    import pcx.nn as pxnn
    import pcx.predictive_coding as pxc
    import pcx.utils as pxu

    px.RKG.seed(seed)

    class Model(pxc.EnergyModule):
        def __init__(self) -> None:
            super().__init__()
            widths = (num_features, *HIDDEN, num_classes)
            self.act_fn = px.static(jax.nn.leaky_relu)
            self.layers = [pxnn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)]
            self.vodes = [pxc.Vode() for _ in HIDDEN] + [pxc.Vode(pxc.ce_energy)]
            self.vodes[-1].h.frozen = True

        def __call__(self, x: Any, y: Any) -> Any:
            for vode, layer in zip(self.vodes[:-1], self.layers[:-1], strict=True):
                x = vode(self.act_fn(layer(x)))
            x = self.vodes[-1](self.layers[-1](x))
            if y is not None:
                self.vodes[-1].set("h", y)
            return self.vodes[-1].get("u")

    mask = pxu.M(pxc.VodeParam | pxc.VodeParam.Cache).to((None, 0))

    @pxf.vmap(mask, in_axes=(0, 0), out_axes=0)
    def forward(x: Any, y: Any, *, model: Model) -> Any:
        return model(x, y)

    @pxf.vmap(mask, in_axes=(0,), out_axes=0)
    def predict_forward(x: Any, *, model: Model) -> Any:
        return model(x, None)

    @pxf.vmap(mask, in_axes=(0,), out_axes=(None, 0), axis_name="batch")
    def energy(x: Any, *, model: Model) -> Any:
        out = model(x, None)
        return jax.lax.psum(model.energy(), "batch"), out

    @pxf.jit(static_argnums=0)
    def train_on_batch(steps: int, x: Any, y: Any, *, model: Model, optim_w: Any, optim_h: Any) -> None:
        model.train()
        with pxu.step(model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
            forward(x, y, model=model)
        optim_h.init(pxu.M_hasnot(pxc.VodeParam, frozen=True)(model))
        for _ in range(steps):
            with pxu.step(model, clear_params=pxc.VodeParam.Cache):
                _, grads = pxf.value_and_grad(pxu.M_hasnot(pxc.VodeParam, frozen=True).to([False, True]),
                                              has_aux=True)(energy)(x, model=model)
            optim_h.step(model, grads["model"])
        optim_h.clear()
        with pxu.step(model, clear_params=pxc.VodeParam | pxc.VodeParam.Cache):  # vodes empty between batches
            _, grads = pxf.value_and_grad(pxu.M(pxnn.LayerParam).to([False, True]), has_aux=True)(energy)(
                x, model=model)
        optim_w.step(model, grads["model"], scale_by=1.0 / x.shape[0])

    @pxf.jit()
    def predict(x: Any, *, model: Model) -> Any:
        model.eval()
        with pxu.step(model, pxc.STATUS.INIT, clear_params=pxc.VodeParam | pxc.VodeParam.Cache):
            return predict_forward(x, model=model).argmax(axis=-1)

    model = Model()
    optim_w = pxu.Optim(lambda: optax.adam(SETTINGS["lr"]), pxu.M(pxnn.LayerParam)(model))
    optim_h = pxu.Optim(lambda: optax.sgd(RULE_OPTIONS["inference_rate"]))

    class Side:
        def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
            xs = jax.numpy.asarray(x.flatten(1).numpy())
            ys = jax.nn.one_hot(jax.numpy.asarray(y.numpy()), num_classes)
            train_on_batch(RULE_OPTIONS["T"], xs, ys, model=model, optim_w=optim_w, optim_h=optim_h)

        def sync(self) -> None:
            jax.block_until_ready(model.layers[0].nn.weight.get())

        def accuracy(self, x: torch.Tensor, y: torch.Tensor) -> float:
            correct = 0
            for start in range(0, len(x), 1000):
                pred = predict(jax.numpy.asarray(x[start:start + 1000].flatten(1).numpy()), model=model)
                correct += int((torch.from_numpy(jax.numpy.asarray(pred).__array__().copy()) ==
                                y[start:start + 1000]).sum())
            return correct / len(x)

    return Side()


def _pcx_available() -> bool:
    try:
        import jax  # noqa: F401
        import pcx  # noqa: F401
    except ImportError:
        return False
    return True


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def _run(ctx: ExperimentContext, name: str, dataset: str) -> list[dict[str, Any]]:
    from creditlab.train import config_for, evaluate, prepare

    options = {**{k: o.default for k, o in OPTIONS.items()}, **ctx.options}
    if ctx.quick:
        options.update({k: v for k, v in QUICK.items() if k in options})
    epochs, seeds = options["epochs"], options["seeds"]
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise CreditlabError(f"{name}: option epochs must be an integer >= 1, got {epochs!r}")
    if not isinstance(seeds, list | tuple) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise CreditlabError(f"{name}: option seeds must be a non-empty list of integers, got {seeds!r}")
    with_pcx = bool(options["pcx"])
    if with_pcx and not _pcx_available():
        print(f"{name}: pcx / jax are not installed (pip install 'creditlab[pcx]'): creditlab's side only")
        with_pcx = False
    torch.set_num_threads(1)
    data = load_dataset(dataset, ctx.data_dir, "cpu", 0.0, 0, SETTINGS["normalization"])
    train_limit = QUICK["train_limit"] if ctx.quick else None
    test_limit = QUICK["test_limit"] if ctx.quick else None
    train_x, train_y = data.train_x[:train_limit], data.train_y[:train_limit].long()
    test_x, test_y = data.test_x[:test_limit], data.test_y[:test_limit].long()
    records = []
    for seed in seeds:
        config = config_for("mlp", seed=seed, epochs=epochs, **SETTINGS)
        rule = prepare("pc", "mlp", dataset, config, RULE_OPTIONS, {"hidden": HIDDEN, "activation": ACTIVATION})
        optimizer = torch.optim.Adam(rule.model.parameters(), lr=SETTINGS["lr"])
        pcx = _pcx_side(train_x[0].numel(), data.num_classes, seed) if with_pcx else None
        curves: dict[str, list[dict[str, Any]]] = {"creditlab": [], "pcx": []}
        for epoch in range(epochs):
            order = batch_indices(len(train_x), SETTINGS["batch_size"],
                                  torch.Generator().manual_seed(batch_stream_seed(seed, epoch, 0)), "cpu")
            batches = [(train_x[i], train_y[i]) for i in order]
            started = time.perf_counter()
            for x, y in batches:
                rule.step(x, y)
                optimizer.step()
            ours_time = time.perf_counter() - started
            accuracy = evaluate(rule, test_x, test_y)["accuracy"]
            curves["creditlab"].append({"epoch": epoch + 1, "test_accuracy": accuracy, "epoch_time_s": ours_time})
            if pcx is not None:
                started = time.perf_counter()
                for x, y in batches:
                    pcx.step(x, y)
                pcx.sync()
                theirs_time = time.perf_counter() - started
                curves["pcx"].append({"epoch": epoch + 1, "test_accuracy": pcx.accuracy(test_x, test_y),
                                      "epoch_time_s": theirs_time})
            print(f"{name} seed {seed} epoch {epoch + 1}: creditlab {accuracy:.4f}"
                  + (f", pcx {curves['pcx'][-1]['test_accuracy']:.4f}" if pcx is not None else ""), flush=True)
        timing = _step_times(rule, optimizer, pcx, batches, options["timing_rounds"])
        for framework, curve in curves.items():
            if not curve:
                continue
            final = {"test_accuracy": curve[-1]["test_accuracy"], "epochs_run": epochs,
                     "step_time_ms": timing.get(framework), "step_cpu_ms": timing.get(f"{framework}_cpu"),
                     "pcx_step_time_ms": timing.get("pcx"), "pcx_step_cpu_ms": timing.get("pcx_cpu"),
                     "step_time_ratio_to_pcx": (timing["creditlab"] / timing["pcx"]) if "pcx" in timing else None,
                     "step_cpu_ratio_to_pcx": (timing["creditlab_cpu"] / timing["pcx_cpu"]) if "pcx" in timing
                     else None}
            record = make_record("reproduce", f"{name}/{framework}-s{seed}",
                                 {"framework": framework, "dataset": dataset, "seed": seed, "epochs": epochs,
                                  "hidden": list(HIDDEN), "activation": ACTIVATION, "rule_options": RULE_OPTIONS,
                                  **SETTINGS, "threads": 1, "quick": ctx.quick,
                                  "train_limit": train_limit, "test_limit": test_limit},
                                 final, epochs=curve, device="cpu")
            ctx.record(record)
            records.append(record)
    return records


def _step_times(rule: Any, optimizer: torch.optim.Optimizer, pcx: Any, batches: list, rounds: int
                ) -> dict[str, float]:
    """Median ms of one training step per framework, interleaved round by round on the same batches:
    wall time (``creditlab``, ``pcx``) and process CPU time (``creditlab_cpu``, ``pcx_cpu``: every thread
    of the process, so a framework that used more threads pays for them; on a loaded machine the wall
    time also holds the waits for a core)."""
    times: dict[str, list[float]] = {"creditlab": [], "pcx": [], "creditlab_cpu": [], "pcx_cpu": []}
    full = [b for b in batches if len(b[1]) == SETTINGS["batch_size"]]

    def run_ours(x: torch.Tensor, y: torch.Tensor) -> None:
        rule.step(x, y)
        optimizer.step()

    def run_pcx(x: torch.Tensor, y: torch.Tensor) -> None:
        pcx.step(x, y)
        pcx.sync()

    steps = [("creditlab", run_ours)] + ([("pcx", run_pcx)] if pcx is not None else [])
    for index in range(rounds + 5):
        x, y = full[index % len(full)]
        for name, fn in steps[::1 if index % 2 else -1]:  # order alternating
            wall, cpu = time.perf_counter(), time.process_time()
            fn(x, y)
            if index >= 5:  # warm-up rounds untimed
                times[name].append(1e3 * (time.perf_counter() - wall))
                times[f"{name}_cpu"].append(1e3 * (time.process_time() - cpu))
    return {k: _median(v) for k, v in times.items() if v}


def summary_tables(records: list[dict[str, Any]]) -> list[Table]:
    """Mean ± sd over seeds of each framework's final test accuracy, and the step times."""
    rows = []
    for framework in ("creditlab", "pcx"):
        mine = [r for r in records if (r.get("config") or {}).get("framework") == framework]
        if not mine:
            continue
        accs = [100 * r["final"]["test_accuracy"] for r in mine]
        steps = [r["final"]["step_time_ms"] for r in mine if r["final"].get("step_time_ms")]
        cpu = [r["final"]["step_cpu_ms"] for r in mine if r["final"].get("step_cpu_ms")]
        mean = sum(accs) / len(accs)
        sd = (sum((a - mean) ** 2 for a in accs) / (len(accs) - 1)) ** 0.5 if len(accs) > 1 else 0.0
        rows.append([framework, str(len(mine)), f"{mean:.2f} ± {sd:.2f}", f"{min(accs):.2f}–{max(accs):.2f}",
                     fmt(_median(steps), 3) if steps else "–", fmt(_median(cpu), 3) if cpu else "–",
                     str(mine[0]["final"].get("epochs_run"))])
    notes = ["784-128-128-128-10 leaky ReLU, T = 5, inference rate 0.1, CE output energy, Adam 1e-3, batch 128; "
             "the same batches for both; step time: one training step, median of interleaved rounds "
             "(order alternating), "
             "1 thread; wall ms and process CPU ms (all threads; on a loaded machine wall time includes "
             "waits)."]
    return [Table(["framework", "seeds", "test acc. % (mean ± sd)", "range", "step wall (ms)", "step CPU (ms)",
                   "epochs"], rows, notes)]


@register_experiment("pc-mnist", "Predictive coding vs PCX (Pinchetti et al. 2025), MLP setting, MNIST",
                     options=OPTIONS, summary=lambda records: summary_tables(records))
def run_mnist(ctx: ExperimentContext) -> list[dict[str, Any]]:
    """PCX's MLP setting on MNIST in both frameworks (see the module docstring)."""
    return _run(ctx, "pc-mnist", "mnist")


@register_experiment("pc-fmnist", "Predictive coding vs PCX (Pinchetti et al. 2025), MLP setting, Fashion-MNIST",
                     options=OPTIONS, summary=lambda records: summary_tables(records))
def run_fmnist(ctx: ExperimentContext) -> list[dict[str, Any]]:
    """PCX's MLP setting on Fashion-MNIST in both frameworks."""
    return _run(ctx, "pc-fmnist", "fashion-mnist")


def _stats(records: list[dict[str, Any]], framework: str) -> tuple[list[float], float | None]:
    mine = [r for r in records if (r.get("config") or {}).get("framework") == framework
            and not (r.get("config") or {}).get("quick")]
    steps = [r["final"]["step_cpu_ms"] for r in mine if r["final"].get("step_cpu_ms")]
    return [100 * r["final"]["test_accuracy"] for r in mine], (_median(steps) if steps else None)


@register_headline("pc", order=70)
def pc_headline(records: list[dict[str, Any]]) -> list[Headline]:
    """creditlab's pc beside PCX run here, per dataset: accuracies over seeds and the step-time ratio."""
    rows = []
    for name, dataset in (("pc-mnist", "MNIST"), ("pc-fmnist", "Fashion-MNIST")):
        newest: dict[str, dict[str, Any]] = {}
        for r in sorted((r for r in records if str(r.get("name", "")).startswith(name + "/")),
                        key=lambda r: str(r.get("timestamp", ""))):
            newest[r["name"]] = r
        group = list(newest.values())
        ours, our_step = _stats(group, "creditlab")
        theirs, their_step = _stats(group, "pcx")
        if not ours or not theirs:
            continue

        def show(values: list[float]) -> str:
            mean = sum(values) / len(values)
            sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
            return f"{mean:.2f} ± {sd:.2f} ({len(values)} seeds)"

        ratio = f"; step CPU time {our_step / their_step:.2f}x PCX's" if our_step and their_step else ""
        epochs = group[0]["final"].get("epochs_run")
        rows.append(Headline("Pinchetti et al. 2025 (PCX)",
                             f"{dataset} MLP 4x128, T = 5: test acc. (%), PC vs PCX run here",
                             f"{show(ours)}{ratio}", f"PCX run here: {show(theirs)}", "not available",
                             f"{epochs} of 25 epochs, 1 CPU thread", "docs/papers/pc-mnist.md"))
    return rows
