"""Distributed reducers on localhost with gloo: real worker processes, each on 127.0.0.1.

The multi-process tests start this file as a script (``python tests/test_distributed.py SCENARIO OUT``)
once per rank, with torchrun's environment variables set by hand, so every test controls its ranks,
ports and timeouts and can bound how long they take.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import reducer_reference as reference
from creditlab.data.dataset import Dataset
from creditlab.data.specs import DATASETS
from creditlab.distributed import (
    REDUCER_KINDS,
    DistributedError,
    SketchedSGD,
    build_reducer,
    init_distributed,
)
from creditlab.distributed.countsketch import CountSketch
from creditlab.models import build_model
from creditlab.rules.bp import Backprop
from creditlab.train import TrainConfig, fit

WORLD = 3
MOMENTUM = 0.5  # dyadic: with gradients on a 2^-8 grid every sum below is exact in float32
ROWS, COLS, K, P = 3, 60, 12, 4
STEPS = 4  # PowerSGD: two warm-up steps of plain averaging, then two compressed ones
# process-group timeout of the workers: generous, so a loaded test machine does not trip it; a dead
# peer is noticed sooner (its sockets close), a stalled one at this bound
KILL_TIMEOUT_S = 30.0


# -- the models and gradients the workers and the simulation share ------------------------------
def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 12), nn.Tanh(), nn.Linear(12, 6))  # 276 weights + 18 biases


def planted_gradient(model: nn.Module, step: int, rank: int) -> list[torch.Tensor]:
    """Gradients on a 2^-8 grid, different per (step, rank), reproducible in any process."""
    generator = torch.Generator().manual_seed(1000 * step + rank)
    return [torch.round(torch.randn(p.shape, generator=generator) * 256) / 256 for p in model.parameters()]


def reducer_for(kind: str, model: nn.Module):
    return build_reducer(kind, model, sketch_rows=ROWS, sketch_cols=COLS, k=K, momentum=MOMENTUM, lr=0.1,
                         seed=0, powersgd_rank=2)


# -- the trainer with a reducer: which examples each rank trains on ------------------------------
TRAIN_N, TRAIN_BATCH = 42, 10  # batches of 10, 10, 10, 10, 2: the last is too small for 3 ranks
EVEN_N, EVEN_BATCH = 36, 9  # every rank gets 3 examples of every batch


def id_dataset(n: int) -> Dataset:
    """n random 1×4×4 images whose first pixel is the example's index (so a batch names its examples)."""
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(n, 1, 4, 4, generator=generator)
    x[:, 0, 0, 0] = torch.arange(n, dtype=torch.float32)
    y = torch.randint(0, 10, (n,), generator=generator)
    empty = torch.zeros(0, 1, 4, 4)
    return Dataset(DATASETS.get("mnist"), x, y, empty, torch.zeros(0, dtype=torch.long), x[:8], y[:8])


class RecordingBackprop(Backprop):
    """Backprop that notes the indices of the examples of every batch it is given."""

    def compute_update(self, inputs, targets):  # noqa: D102
        self.__dict__.setdefault("seen", []).append(inputs[:, 0, 0, 0].round().long().tolist())
        return super().compute_update(inputs, targets)


def train_with_reducer(kind: str | None, rank: int) -> dict:
    """Two epochs of SGD on the id dataset (3 ranks with ``kind``; one process without a reducer)."""
    n, batch = (TRAIN_N, TRAIN_BATCH) if kind in ("topk", None) else (EVEN_N, EVEN_BATCH)
    torch.manual_seed(0)
    model = build_model("mlp", (1, 4, 4), 10, hidden=(8,))
    rule = RecordingBackprop(model)
    reducer = build_reducer(kind, model, k=K, momentum=MOMENTUM, lr=0.1) if kind else None
    config = TrainConfig(epochs=2, batch_size=batch, lr=0.1, optimizer="sgd", schedule="none", progress=False)
    summary = fit(rule, id_dataset(n), config, reducer=reducer)
    fields = ("world_size", "bytes_sent", "bytes_received", "compression_ratio", "steps", "epochs", "reducer")
    return {"rank": rank, "batches": rule.seen, "summary": {k: summary.get(k) for k in fields},
            "weights": torch.cat([p.detach().reshape(-1) for p in model.parameters()]).tolist()}


# -- worker side (runs in a subprocess) -------------------------------------------------------
def start_together(out_dir: Path, limit_s: float = 90.0) -> None:
    """File barrier before the rendezvous, so slow interpreter start-ups do not eat the small timeout."""
    world, rank = int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"])
    (out_dir / f"ready{rank}").touch()
    deadline = time.monotonic() + limit_s
    while not all((out_dir / f"ready{r}").exists() for r in range(world)) and time.monotonic() < deadline:
        time.sleep(0.05)


def worker(scenario: str, out_dir: Path) -> None:
    if scenario == "all":
        start_together(out_dir)
    rank, world = init_distributed(timeout_s=float(os.environ["TEST_TIMEOUT_S"]))
    result: dict = {"rank": rank, "world": world}
    if scenario == "all":
        result["updates"], result["reducer_stats"] = {}, {}
        for kind in REDUCER_KINDS:  # planted gradients in, the update every rank holds out
            model = small_model()
            reducer = reducer_for(kind, model)
            updates = []
            for step in range(STEPS):
                for p, g in zip(model.parameters(), planted_gradient(model, step, rank), strict=True):
                    p.grad = g.clone()
                reducer.synchronize(model)
                updates.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]).tolist())
            result["updates"][kind], result["reducer_stats"][kind] = updates, reducer.stats()
        result["trainer"] = train_with_reducer("topk", rank)
        result["trainer_allreduce"] = train_with_reducer("allreduce", rank)
        result["divergence"] = {}
        for kind in REDUCER_KINDS:  # a few SGD steps of backprop on rank-specific data, then compare
            model = small_model()
            if rank == 1:  # replicas start apart on purpose: the reducer must broadcast rank 0's weights
                with torch.no_grad():
                    model[0].weight.add_(1.0)
            reducer = reducer_for(kind, model)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
            reducer.check_optimizer(optimizer)
            generator = torch.Generator().manual_seed(rank)
            for _ in range(5):
                inputs = torch.randn(8, 16, generator=generator)
                targets = torch.randint(0, 6, (8,), generator=generator)
                model.zero_grad()
                nn.functional.cross_entropy(model(inputs), targets).backward()
                reducer.synchronize(model)
                optimizer.step()
            result["divergence"][kind] = reducer.max_divergence(model)
            result.setdefault("stats", {})[kind] = reducer.stats()
        # replicas that drift apart are caught by the periodic check (every 2nd step here)
        model = small_model()
        reducer = SketchedSGD(model, rows=ROWS, cols=COLS, k=K, check_every=2)
        try:
            for step in range(2):
                if step == 1 and rank == 1:
                    with torch.no_grad():
                        model[2].bias.add_(1e-3)
                for p, g in zip(model.parameters(), planted_gradient(model, step, rank), strict=True):
                    p.grad = g.clone()
                reducer.synchronize(model)
            result["drift_error"] = None
        except DistributedError as error:
            result["drift_error"] = str(error)
        (out_dir / f"rank{rank}.json").write_text(json.dumps(result))
        # then the last rank dies and the others must fail within the timeout, not hang
        model = small_model()
        reducer = reducer_for("sketch", model)
        if rank == WORLD - 1:
            os._exit(17)  # dies without a word, like a crashed or OOM-killed worker
        started = time.monotonic()
        try:
            for step in range(1000):
                for p, g in zip(model.parameters(), planted_gradient(model, step, rank), strict=True):
                    p.grad = g.clone()
                reducer.synchronize(model)
            result["error"] = None
        except DistributedError as error:
            result["error"] = str(error)
        result["elapsed_s"] = time.monotonic() - started
    (out_dir / f"rank{rank}.json").write_text(json.dumps(result))


# -- launching ranks -------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(scenario: str, world: int, ranks: list[int], out_dir: Path, timeout_s: float,
           wall_limit_s: float) -> list[subprocess.CompletedProcess]:
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
           "WORLD_SIZE": str(world), "TEST_TIMEOUT_S": str(timeout_s), "GLOO_SOCKET_IFNAME": "lo",
           "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, __file__, scenario, str(out_dir)],
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in ranks]
    deadline = time.monotonic() + wall_limit_s
    results = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            for other in procs:
                other.kill()
            pytest.fail(f"scenario {scenario!r}: ranks still running after {wall_limit_s} s (a hang)")
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


@pytest.fixture(scope="module")
def steps_results(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("steps")
    started = time.monotonic()
    procs = launch("all", WORLD, list(range(WORLD)), out, timeout_s=KILL_TIMEOUT_S, wall_limit_s=300)
    assert procs[-1].returncode == 17  # the rank that kills itself at the end
    for proc in procs[:-1]:
        assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads((out / f"rank{r}.json").read_text()) for r in range(WORLD)]
    results[0]["wall_s"] = time.monotonic() - started
    return results


def planted_steps() -> reference.Grads:
    model = small_model()
    return [[planted_gradient(model, step, rank) for rank in range(WORLD)] for step in range(STEPS)]


def reference_sketch() -> reference.ReferenceSketch:
    d = sum(p.numel() for p in small_model().parameters() if p.dim() >= 2)
    library = CountSketch(d, ROWS, COLS, seed=0)  # only its random hash parameters (a_j, b_j) are used
    return reference.ReferenceSketch(d, ROWS, COLS, library._multiplier.view(-1).tolist(),
                                     library._offset.view(-1).tolist())


def applied_coordinates(updates: list[list[float]]) -> list[torch.Tensor]:
    """Per step, the weight-matrix coordinates a reducer's update changes (what it chose)."""
    return [reference.split(_unflatten(u))[0].nonzero().view(-1) for u in updates]


def expected_updates(kind: str, library_updates: list[list[float]] | None = None) -> list[torch.Tensor]:
    """The plain-torch simulation of ``kind``; for the sketches, ``library_updates`` resolves ties."""
    grads = planted_steps()
    observed = applied_coordinates(library_updates) if library_updates is not None else None
    d = sum(p.numel() for p in small_model().parameters() if p.dim() >= 2)
    if kind == "allreduce":
        return reference.allreduce(grads)
    if kind == "topk":
        return reference.true_top_k(grads, K, MOMENTUM)
    if kind == "localtopk":
        return reference.local_top_k(grads, K, MOMENTUM)
    if kind == "sketch":
        return reference.sketched_sgd(grads, reference_sketch(), K, min(P * K, d), MOMENTUM, observed)
    if kind == "fetchsgd":
        return reference.fetch_sgd(grads, reference_sketch(), K, MOMENTUM, observed)
    assert kind == "powersgd"
    return reference.power_sgd(grads, rank=2, seed=0)


def test_the_reference_count_sketch_recovers_a_heavy_coordinate():
    sketch = reference_sketch()
    vector = torch.zeros(sketch.bucket.shape[1])
    vector[[5, 200]] = torch.tensor([3.0, -2.0])
    estimates = sketch.estimate(sketch.sketch(vector))
    assert estimates[5] == 3.0 and estimates[200] == -2.0  # two coordinates never share all 3 rows here


@pytest.mark.parametrize("kind", REDUCER_KINDS)
def test_every_reducer_on_3_ranks_equals_a_plain_torch_simulation(steps_results, kind):
    # estimates of coordinates that share buckets tie often; rank 0's choice resolves those ties only
    expected = expected_updates(kind, steps_results[0]["updates"][kind])
    for result in steps_results:
        for step, (got, want) in enumerate(zip(result["updates"][kind], expected, strict=True)):
            got = torch.tensor(got)
            if kind == "powersgd":  # the reference orthonormalizes by QR in float64, torch by Gram-Schmidt
                assert torch.allclose(got, want, rtol=1e-4, atol=1e-5), f"rank {result['rank']} step {step}"
            else:
                assert torch.equal(got, want), f"{kind}: rank {result['rank']} step {step} differs"
    if kind in ("topk", "sketch", "fetchsgd"):  # k-sparse on the weight matrices
        matrices, _ = reference.split(_unflatten(steps_results[0]["updates"][kind][-1]))
        assert int((matrices != 0).sum()) == K


def _unflatten(flat: list[float]) -> list[torch.Tensor]:
    values, out, offset = torch.tensor(flat), [], 0
    for p in small_model().parameters():
        out.append(values[offset:offset + p.numel()].view(p.shape))
        offset += p.numel()
    return out


def test_ranks_are_bit_identical_after_training_steps_for_every_reducer(steps_results):
    for result in steps_results:
        assert result["divergence"] == {kind: 0.0 for kind in REDUCER_KINDS}


def test_replicas_that_drift_apart_are_detected(steps_results):
    for result in steps_results:
        assert result["drift_error"] is not None
        assert "differ from rank 0's by up to" in result["drift_error"]
        assert "diverged" in result["drift_error"]


def test_traffic_matches_the_papers_accounting(steps_results):
    stats = steps_results[0]["reducer_stats"]
    d, d_bias = 16 * 12 + 12 * 6, 12 + 6
    sketch = stats["sketch"]
    assert sketch["steps"] == STEPS
    assert sketch["bytes_sent"] == 4 * STEPS * (ROWS * COLS + P * K + d_bias)
    assert sketch["bytes_received"] == 4 * STEPS * (K + d_bias)
    total_values = ROWS * COLS + P * K + K + 2 * d_bias  # |S| + P·k + k, biases up and down
    assert sketch["compression_ratio"] == pytest.approx(2 * (d + d_bias) / total_values)
    assert stats["fetchsgd"]["bytes_sent"] == 4 * STEPS * (ROWS * COLS + d_bias)
    assert stats["fetchsgd"]["bytes_received"] == 4 * STEPS * (K + d_bias)
    assert stats["topk"]["bytes_sent"] == 4 * STEPS * (d + d_bias)  # v densely up, k values down
    assert stats["topk"]["bytes_received"] == 4 * STEPS * (K + d_bias)
    assert stats["localtopk"]["bytes_sent"] == 4 * STEPS * (K + d_bias)
    received = sum(int((reference.split(_unflatten(u.tolist()))[0] != 0).sum()) + d_bias
                   for u in expected_updates("localtopk"))  # the union of the ranks' k coordinates
    assert stats["localtopk"]["bytes_received"] == 4 * received
    # PowerSGD rank 2: two dense warm-up steps, then P and Q of the 12×16 weight, the 6×12 weight
    # (2·(6+12)·2 is not below 72) and the biases in full
    compressed_step = (12 + 16) * 2 + 6 * 12 + d_bias
    assert stats["powersgd"]["bytes_sent"] == 4 * (2 * (d + d_bias) + (STEPS - 2) * compressed_step)
    assert stats["allreduce"]["compression_ratio"] == pytest.approx(1.0)
    assert steps_results[0]["stats"]["fetchsgd"]["bytes_sent"] == 4 * 5 * (ROWS * COLS + d_bias)


# -- the trainer with a reducer ----------------------------------------------------------------
def test_each_rank_trains_on_its_slice_of_the_global_batch(steps_results):
    single = train_with_reducer(None, 0)["batches"]  # one process: the global batches, in order
    n_batches = -(-TRAIN_N // TRAIN_BATCH)
    for epoch in range(2):  # the global batches cover every example once per epoch
        assert sorted(i for b in single[epoch * n_batches:(epoch + 1) * n_batches] for i in b) == list(range(TRAIN_N))
    kept = [b for b in single if len(b) >= WORLD]  # a last batch with fewer examples than ranks is skipped
    assert len(kept) == 2 * (n_batches - 1)
    per_rank = [r["trainer"]["batches"] for r in steps_results]
    for rank, batches in enumerate(per_rank):
        assert batches == [b[rank::WORLD] for b in kept]
    for step, batch in enumerate(kept):
        union = [i for rank_batches in per_rank for i in rank_batches[step]]
        assert sorted(union) == sorted(batch) and len(union) == len(batch)


def test_the_trainer_reports_the_reducers_traffic(steps_results):
    d, d_bias = 16 * 8 + 8 * 10, 8 + 10  # mlp 16-8-10
    steps = 2 * (-(-TRAIN_N // TRAIN_BATCH) - 1)
    for result in steps_results:
        summary = result["trainer"]["summary"]
        assert summary["world_size"] == WORLD and summary["reducer"] == "topk" and summary["epochs"] == 2
        assert summary["steps"] == steps
        assert summary["bytes_sent"] == 4 * steps * (d + d_bias)
        assert summary["bytes_received"] == 4 * steps * (K + d_bias)
        assert summary["compression_ratio"] == pytest.approx(2 * (d + d_bias) / (d + K + 2 * d_bias))


def test_allreduce_on_3_ranks_trains_like_one_process_on_the_whole_batch(steps_results):
    # equal slices: the mean of the ranks' mean gradients is the mean over the global batch
    torch.manual_seed(0)
    model = build_model("mlp", (1, 4, 4), 10, hidden=(8,))
    config = TrainConfig(epochs=2, batch_size=EVEN_BATCH, lr=0.1, optimizer="sgd", schedule="none", progress=False)
    initial = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    fit(Backprop(model), id_dataset(EVEN_N), config)
    expected = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    assert not torch.allclose(expected, initial, atol=1e-3)  # it trained
    for result in steps_results:
        got = torch.tensor(result["trainer_allreduce"]["weights"])
        assert result["trainer_allreduce"]["summary"]["world_size"] == WORLD
        assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_a_killed_rank_ends_the_others_with_a_timeout_error(steps_results):
    for result in steps_results[:-1]:
        assert result["error"] is not None and "peer rank died" in result["error"]
        assert result["elapsed_s"] < KILL_TIMEOUT_S + 5


def test_a_rendezvous_that_never_completes_fails_within_the_timeout(tmp_path):
    started = time.monotonic()
    procs = launch("rendezvous", 2, [0], tmp_path, timeout_s=3, wall_limit_s=90)  # rank 1 never starts
    assert procs[0].returncode != 0
    assert "DistributedError" in procs[0].stderr and "did not complete within 3 s" in procs[0].stderr
    assert time.monotonic() - started < 90  # interpreter start-up included


# -- single-process checks ---------------------------------------------------------------------
def test_without_torchrun_environment_nothing_is_initialized(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert init_distributed() == (0, 1)
    monkeypatch.setenv("MASTER_PORT", "1234")
    with pytest.raises(DistributedError, match="RANK and WORLD_SIZE"):
        init_distributed()


@pytest.mark.parametrize("options, message", [
    ({"k": 10_000}, "not in \\[1, 264\\]"),
    ({"sketch_cols": 5}, "too small for k=12"),
    ({"sketch_cols": 100}, "no smaller than"),
    ({"momentum": 1.0}, "momentum"),
])
def test_invalid_combinations_are_refused(options, message):
    kwargs = dict(sketch_rows=ROWS, sketch_cols=COLS, k=K, momentum=MOMENTUM, lr=0.1, seed=0, powersgd_rank=1)
    with pytest.raises(ValueError, match=message):
        build_reducer("sketch", small_model(), **{**kwargs, **options})
    with pytest.raises(ValueError, match="unknown --distributed 'nope'"):
        build_reducer("nope", small_model(), **kwargs)


def test_optimizer_requirement_is_checked():
    model = small_model()
    reducer = reducer_for("fetchsgd", model)
    assert reducer.required_optimizer()["momentum"] == 0.0
    reducer.check_optimizer(torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="momentum 0"):
        reducer.check_optimizer(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    with pytest.raises(ValueError, match="plain SGD"):
        reducer.check_optimizer(torch.optim.Adam(model.parameters()))
    assert reducer_for("allreduce", model).required_optimizer() is None


def test_state_dict_round_trip_continues_identically():
    def run(split: bool) -> list[torch.Tensor]:
        model = small_model()
        reducer = reducer_for("fetchsgd", model)
        outputs = []
        for step in range(4):
            if split and step == 2:
                state = reducer.state_dict()
                reducer = reducer_for("fetchsgd", model)
                reducer.load_state_dict(state)
            for p, g in zip(model.parameters(), planted_gradient(model, step, 0), strict=True):
                p.grad = g.clone()
            reducer.synchronize(model)
            outputs.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
        assert reducer.stats()["steps"] == 4
        return outputs

    for a, b in zip(run(False), run(True), strict=True):
        assert torch.equal(a, b)


if __name__ == "__main__":
    worker(sys.argv[1], Path(sys.argv[2]))
