"""Shared fixtures: the real datasets from $CREDITLAB_DATA (CI sets it to ../shared/data)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from creditlab.data import Dataset, load_dataset

REPO = Path(__file__).resolve().parents[1]


def pytest_report_header() -> str:
    """Which CPU kernels this session computes with (``make test-cpus`` runs the numerically sensitive
    tests under several): ATen's SIMD capability and the BLAS variables that choose MKL's / oneDNN's."""
    chosen = ", ".join(f"{name}={os.environ[name]}" for name in
                       ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA")
                       if name in os.environ)
    return f"ATen CPU capability: {torch.backends.cpu.get_cpu_capability()}" + (f" ({chosen})" if chosen else "")


def _data_root() -> Path:
    if os.environ.get("CREDITLAB_DATA"):
        return Path(os.environ["CREDITLAB_DATA"])
    return REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_root() -> Path:
    """Directory holding the verified datasets (mnist/, fashion-mnist/, cifar-10/)."""
    root = _data_root()
    if not (root / "mnist").is_dir():
        pytest.fail(f"datasets not found in {root}: set CREDITLAB_DATA to the shared data directory")
    return root


@pytest.fixture(scope="session")
def mnist(data_root: Path) -> Dataset:
    """Full MNIST, standard normalization, on the CPU (loaded once per test session)."""
    return load_dataset("mnist", data_root)


@pytest.fixture(scope="session")
def mnist_small(mnist: Dataset) -> Dataset:
    """2000 training and 500 test images of MNIST, for fast training tests."""
    return mnist.subset(train=2000, test=500)


@pytest.fixture(scope="module")
def mnist_subset(mnist: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """The first 512 MNIST training images and labels."""
    return mnist.train_x[:512], mnist.train_y[:512]


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one intra-op thread avoids OpenMP barrier stalls on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def loss_before_and_after_steps(rule, x: torch.Tensor, y: torch.Tensor, steps: int = 30, batch: int = 64,
                                lr: float = 2e-3) -> tuple[float, float]:
    """Full-subset cross-entropy before and after ``steps`` Adam steps of ``rule`` on seeded batches."""
    optimizer = torch.optim.Adam(rule.model.parameters(), lr=lr)
    with torch.no_grad():
        before = float(F.cross_entropy(rule.model(x), y))
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        index = torch.randint(0, len(x), (batch,), generator=gen)
        rule.step(x[index], y[index])
        optimizer.step()
    with torch.no_grad():
        after = float(F.cross_entropy(rule.model(x), y))
    return before, after


def perturbed_vnn(layout: tuple, classes: int, kind_nonnegative: bool, seed: int, noise: float,
                  noise_seed: int):
    """A double-precision VNN on 2x8x8 inputs, every parameter perturbed by seeded noise, projected."""
    from creditlab.models.vnn import build_vectorized, init_generator

    net = build_vectorized((2, 8, 8), classes, layout, kind_nonnegative, init_generator(seed)).double()
    gen = torch.Generator().manual_seed(noise_seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(noise * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    net.apply_constraints()
    return net


@contextlib.contextmanager
def killed_at_step(monkeypatch: pytest.MonkeyPatch, step: int) -> Iterator[None]:
    """The run inside dies like a killed process: ``Rule.step`` raises KeyboardInterrupt on its
    ``step``-th call (counting from 1); the real step is restored afterwards."""
    from creditlab.rules import Rule

    calls = {"n": 0}
    original_step = Rule.step

    def dying_step(self, inputs, targets):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if calls["n"] == step:
            raise KeyboardInterrupt
        return original_step(self, inputs, targets)

    monkeypatch.setattr(Rule, "step", dying_step)
    try:
        with pytest.raises(KeyboardInterrupt):
            yield
    finally:
        monkeypatch.setattr(Rule, "step", original_step)


def killed_and_resumed(rule: str, model: str, data: Dataset, root: Path, monkeypatch: pytest.MonkeyPatch,
                       kill_at: int, **options: object) -> tuple[dict, dict, dict, dict]:
    """Train ``rule`` on ``model`` once straight through (``root/full``) and once killed at step ``kill_at``
    then resumed (``root/cut``); returns both summaries and both final checkpoints."""
    from creditlab.train import train_from_names

    full = train_from_names(rule, model, "mnist", loaded=data, out_dir=str(root / "full"), **options)
    with killed_at_step(monkeypatch, kill_at):
        train_from_names(rule, model, "mnist", loaded=data, out_dir=str(root / "cut"), **options)
    resumed = train_from_names(rule, model, "mnist", loaded=data, out_dir=str(root / "cut"), resume=True, **options)
    checkpoints = [torch.load(root / run / "checkpoint.pt", weights_only=False) for run in ("full", "cut")]
    return full, resumed, checkpoints[0], checkpoints[1]
