"""Forward-Forward side by side with the public reference code loeweX/Forward-Forward (issue #28).

The reference code is *not* part of creditlab: pass a checkout of it (``git clone`` of
loeweX/Forward-Forward, commit da516f0) with ``--reference DIR``. Its ``src/ff_model.py`` and
``src/utils.py`` are imported unchanged (the imports they do not use for training, hydra, omegaconf
and torchvision, are stubbed); MNIST comes from creditlab's loader (inputs in [0, 1], the same files
and order as torchvision's), and the DataLoader is replaced by a seeded permutation without worker
processes. Three modes, each appending one record to ``--out`` (default ``results/ff/results.jsonl``):

* ``train``: the reference training loop (``update_learning_rate``, its two SGD groups, batch 100,
  first 50000 images) for ``--epochs`` of its 100, test accuracy of its softmax read-out after each
  epoch -> ``ff-mnist/reference-code``;
* ``lockstep``: the same initial weights, batches and negative labels for the reference and
  creditlab's ``ff`` (one SGD with lr 1e-3, momentum 0.9), 3 steps on 784-3x64; the largest weight
  difference per parameter -> ``ff-mnist/lockstep-reference-code``;
* ``steptime``: one training step of each, interleaved on the same batches (order alternating),
  784-3x1000, batch 100, 1 thread; medians -> ``ff-mnist/step-time-reference-code``.

    python benchmarks/ff_reference.py train --reference DIR --epochs 4 --seed 0
    python benchmarks/ff_reference.py lockstep --reference DIR
    python benchmarks/ff_reference.py steptime --reference DIR --rounds 30
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import types
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from creditlab.data import load_dataset
from creditlab.models import build_model
from creditlab.results import append_record, make_record
from creditlab.rules import build_rule

CODE = {"code": "loeweX/Forward-Forward", "code_commit": "da516f0"}


def import_reference(directory: str) -> tuple[Any, Any]:
    """(ff_model, utils) of the reference checkout, with its unused imports stubbed."""
    for name in ("hydra", "hydra.utils", "omegaconf", "torchvision"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["hydra.utils"].get_original_cwd = lambda: "."  # type: ignore[attr-defined]
    sys.modules["omegaconf"].OmegaConf = None  # type: ignore[attr-defined]
    sys.path.insert(0, directory)
    from src import ff_model, utils  # type: ignore[import-not-found]

    return ff_model, utils


def reference_options(seed: int, hidden: int, epochs: int = 100) -> SimpleNamespace:
    """The reference's ``config.yaml`` as the attribute tree its code reads."""
    return SimpleNamespace(
        seed=seed, device="cpu", input=SimpleNamespace(batch_size=100, path="."),
        model=SimpleNamespace(peer_normalization=0.03, momentum=0.9, hidden_dim=hidden, num_layers=3),
        training=SimpleNamespace(epochs=epochs, learning_rate=1e-3, weight_decay=3e-4, momentum=0.9,
                                 downstream_learning_rate=1e-2, downstream_weight_decay=3e-3))


def reference_inputs(x: torch.Tensor, y: torch.Tensor, negatives: torch.Tensor) -> tuple[dict, dict]:
    """The reference dataset's sample dicts: label one-hot in row 0, pixels 0-9 (neutral: 0.1)."""
    pos, neg, neutral = x.clone(), x.clone(), x.clone()
    pos[:, 0, 0, :10] = F.one_hot(y, 10).float()
    neg[:, 0, 0, :10] = F.one_hot(negatives, 10).float()
    neutral[:, 0, 0, :10] = 0.1
    return {"pos_images": pos, "neg_images": neg, "neutral_sample": neutral}, {"class_labels": y}


def reference_accuracy(model: Any, x: torch.Tensor, y: torch.Tensor) -> float:
    """Test accuracy of the reference's softmax read-out on the neutral input (its own layers)."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(x), 1000):
            batch = x[start:start + 1000].clone()
            batch[:, 0, 0, :10] = 0.1
            z, features = model._layer_norm(batch.reshape(len(batch), -1)), []
            for index, layer in enumerate(model.model):
                z = model._layer_norm(model.act_fn.apply(layer(z)))
                if index >= 1:
                    features.append(z)
            correct += int((model.linear_classifier(torch.cat(features, -1)).argmax(1) == y[start:start + 1000]).sum())
    model.train()
    return correct / len(x)


def train(args: argparse.Namespace) -> dict[str, Any]:
    """The reference training loop for ``args.epochs`` epochs; one record with the per-epoch curve."""
    _, utils = import_reference(args.reference)
    data = load_dataset("mnist", None, "cpu", normalization="unit")
    x, y = data.train_x[:50000], data.train_y[:50000].long()
    options = reference_options(args.seed, args.hidden)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    model, optimizer = utils.get_model_and_optimizer(options)
    order = torch.Generator().manual_seed(args.seed)
    history, started = [], time.perf_counter()
    for epoch in range(args.epochs):
        optimizer = utils.update_learning_rate(optimizer, options, epoch)
        epoch_start = time.perf_counter()
        permutation = torch.randperm(len(x), generator=order)
        for start in range(0, len(x) - 99, 100):  # DataLoader(shuffle=True, drop_last=True, batch 100)
            index = permutation[start:start + 100]
            labels = y[index]
            negatives = torch.tensor([np.random.choice([c for c in range(10) if c != int(t)]) for t in labels])
            inputs, targets = reference_inputs(x[index], labels, negatives)
            optimizer.zero_grad()
            model(inputs, targets)["Loss"].backward()
            optimizer.step()
        seconds = time.perf_counter() - epoch_start
        accuracy = reference_accuracy(model, data.test_x, data.test_y.long())
        history.append({"epoch": epoch + 1, "test_accuracy": accuracy, "epoch_time_s": round(seconds, 2)})
        print(history[-1], flush=True)
    config = {**CODE, "seed": args.seed, "hidden": [args.hidden] * 3, "epochs": 100, "epochs_run": args.epochs,
              "train_limit": 50000, "batch_size": 100, "threads": 1,
              "driver": "the reference's FF_model and training loop (update_learning_rate, SGD groups) on "
                        "creditlab's MNIST arrays; DataLoader replaced by a seeded permutation, workers 0",
              "evaluated": "softmax read-out of the neutral input on the 10000 test images after every epoch"}
    final = {"test_error_pct": 100 * (1 - history[-1]["test_accuracy"]), "epochs_run": args.epochs,
             "median_epoch_time_s": sorted(h["epoch_time_s"] for h in history)[len(history) // 2]}
    return make_record("reproduce", "ff-mnist/reference-code", config, final, epochs=history,
                       wall_time_s=time.perf_counter() - started)


def _pair(args: argparse.Namespace, hidden: int) -> tuple[Any, Any, Any, Any, Any]:
    """The reference model and optimizer, and creditlab's ff-mlp (same weights), ff rule and SGD."""
    _, utils = import_reference(args.reference)
    torch.manual_seed(0)
    reference, reference_optimizer = utils.get_model_and_optimizer(reference_options(0, hidden))
    ours = build_model("ff-mlp", (1, 28, 28), 10, hidden=(hidden,) * 3)
    with torch.no_grad():
        for a, b in zip(ours.layers, reference.model, strict=True):
            a.weight.copy_(b.weight)
            a.bias.copy_(b.bias)
        ours.classifier.weight.copy_(reference.linear_classifier[0].weight)
    rule = build_rule("ff", ours)
    return reference, reference_optimizer, ours, rule, torch.optim.SGD(ours.parameters(), lr=1e-3, momentum=0.9)


def _batch(data: Any, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    index = torch.randint(0, 50000, (100,), generator=generator)
    x, y = data.train_x[index], data.train_y[index].long()
    return x, y, (y + torch.randint(1, 10, (100,), generator=generator)) % 10


def lockstep(args: argparse.Namespace) -> dict[str, Any]:
    """Three steps of both on the same weights, batches and negative labels; max weight differences."""
    hidden, steps = 64, 3
    reference, reference_optimizer, ours, rule, optimizer = _pair(args, hidden)
    data = load_dataset("mnist", None, "cpu", normalization="unit")
    generator = torch.Generator().manual_seed(1)
    worst: dict[str, float] = {}
    for _ in range(steps):
        x, y, negatives = _batch(data, generator)
        rule.negative_labels = lambda labels, negatives=negatives: negatives  # the same negatives for both
        inputs, targets = reference_inputs(x, y, negatives)
        reference_optimizer.zero_grad()
        reference(inputs, targets)["Loss"].backward()
        reference_optimizer.step()
        rule.step(x, y)
        optimizer.step()
        pairs = [(f"layers.{i}.{k}", getattr(a, k), getattr(b, k)) for k in ("weight", "bias")
                 for i, (a, b) in enumerate(zip(ours.layers, reference.model, strict=True))]
        pairs.append(("classifier.weight", ours.classifier.weight, reference.linear_classifier[0].weight))
        for name, a, b in pairs:
            worst[name] = max(worst.get(name, 0.0), float((a.detach() - b.detach()).abs().max()))
    print(worst)
    config = {**CODE, "hidden": [hidden] * 3, "steps": steps, "batch_size": 100,
              "what": "same initial weights, batches and negative labels; the reference's FF_model and its two SGD "
                      "groups vs creditlab's ff + one SGD (lr 1e-3, momentum 0.9); max |w_ours - w_ref| over the steps"}
    return make_record("reproduce", "ff-mnist/lockstep-reference-code", config, {"max_abs_weight_difference": worst})


def steptime(args: argparse.Namespace) -> dict[str, Any]:
    """Median ms of one training step of each, interleaved on the same batches, order alternating."""
    reference, reference_optimizer, _, rule, optimizer = _pair(args, 1000)
    data = load_dataset("mnist", None, "cpu", normalization="unit")
    generator = torch.Generator().manual_seed(1)
    times: dict[str, list[float]] = {"creditlab": [], "reference": []}
    for round_ in range(args.rounds + 3):
        x, y, negatives = _batch(data, generator)
        inputs, targets = reference_inputs(x, y, negatives)

        def run_reference(inputs: dict = inputs, targets: dict = targets) -> None:
            reference_optimizer.zero_grad()
            reference(inputs, targets)["Loss"].backward()
            reference_optimizer.step()

        def run_ours(x: torch.Tensor = x, y: torch.Tensor = y) -> None:
            rule.step(x, y)
            optimizer.step()

        for name, fn in [("reference", run_reference), ("creditlab", run_ours)][::1 if round_ % 2 else -1]:
            started = time.perf_counter()
            fn()
            if round_ >= 3:  # warm-up rounds untimed
                times[name].append(1e3 * (time.perf_counter() - started))
    median = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    print(median)
    config = {**CODE, "hidden": [1000] * 3, "batch_size": 100, "rounds": args.rounds, "threads": 1,
              "what": "one training step (both FF passes, the read-out, SGD), interleaved on the same batches, "
                      "order alternating; median"}
    return make_record("reproduce", "ff-mnist/step-time-reference-code", config,
                       {"creditlab_step_ms": median["creditlab"], "reference_code_step_ms": median["reference"],
                        "ratio_creditlab_over_reference": median["creditlab"] / median["reference"]})


def main(argv: list[str] | None = None) -> None:
    """Parse the mode and options, run it, append its record."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("train", "lockstep", "steptime"))
    parser.add_argument("--reference", required=True, help="a checkout of loeweX/Forward-Forward (not committed)")
    parser.add_argument("--epochs", type=int, default=4, help="train: epochs of the 100-epoch protocol")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hidden", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=30, help="steptime: timed rounds")
    parser.add_argument("--out", default="results/ff/results.jsonl")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    record = {"train": train, "lockstep": lockstep, "steptime": steptime}[args.mode](args)
    append_record(args.out, record)


if __name__ == "__main__":
    main()
