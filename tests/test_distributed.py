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

from creditlab.distributed import (
    REDUCER_KINDS,
    DistributedError,
    SketchedSGD,
    build_reducer,
    init_distributed,
)
from creditlab.distributed.countsketch import CountSketch

WORLD = 3
MOMENTUM = 0.5  # dyadic: with gradients on a 2^-8 grid every sum below is exact in float32
ROWS, COLS, K, P = 3, 60, 12, 4
STEPS = 3
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


def simulate_sketched_sgd(model: nn.Module, world: int, steps: int) -> list[list[torch.Tensor]]:
    """Ivkin et al. Algorithm 3 for ``world`` workers in one process; returns each step's update."""
    params = list(model.parameters())
    matrix = [p.dim() >= 2 for p in params]
    d = sum(p.numel() for p, m in zip(params, matrix, strict=True) if m)
    u = [torch.zeros(d) for _ in range(world)]
    v = [torch.zeros(d) for _ in range(world)]
    biases = [p for p, m in zip(params, matrix, strict=True) if not m]
    bias_u = [[torch.zeros_like(p) for p in biases] for _ in range(world)]
    updates = []
    for step in range(steps):
        table = torch.zeros(ROWS, COLS)
        bias_sum = None
        for w in range(world):
            grads = planted_gradient(model, step, w)
            g = torch.cat([x.reshape(-1) for x, m in zip(grads, matrix, strict=True) if m])
            u[w] = MOMENTUM * u[w] + g
            v[w] = v[w] + u[w]
            table += CountSketch(d, ROWS, COLS, seed=0).accumulate_vector(v[w]).table  # worker's message
            biases = [x for x, m in zip(grads, matrix, strict=True) if not m]
            bias_u[w] = [MOMENTUM * b + x for b, x in zip(bias_u[w], biases, strict=True)]
            bias_sum = bias_u[w] if bias_sum is None else [a + b for a, b in zip(bias_sum, bias_u[w],
                                                                                  strict=True)]
        server = CountSketch(d, ROWS, COLS, seed=0)
        server.table = table
        candidates, _ = server.top_k(P * K)
        exact = sum(v[w][candidates] for w in range(world))
        chosen = candidates[exact.abs().topk(K).indices]
        update = torch.zeros(d)
        update[chosen] = sum(v[w][chosen] for w in range(world)) / world
        for w in range(world):
            u[w][chosen] = 0
            v[w][chosen] = 0
        bias_iter = iter([b / world for b in bias_sum])
        flat_iter = iter(update.split([p.numel() for p, m in zip(params, matrix, strict=True) if m]))
        updates.append([next(flat_iter).view(p.shape) if m else next(bias_iter)
                        for p, m in zip(params, matrix, strict=True)])
    return updates


def reducer_for(kind: str, model: nn.Module):
    return build_reducer(kind, model, sketch_rows=ROWS, sketch_cols=COLS, k=K, momentum=MOMENTUM, lr=0.1,
                         seed=0, powersgd_rank=2)


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
        model = small_model()
        reducer = reducer_for("sketch", model)
        updates = []
        for step in range(STEPS):
            for p, g in zip(model.parameters(), planted_gradient(model, step, rank), strict=True):
                p.grad = g.clone()
            reducer.synchronize(model)
            updates.append([p.grad.tolist() for p in model.parameters()])
        result["sketch_updates"] = updates
        result["sketch_stats"] = reducer.stats()
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


def test_w_rank_sketched_sgd_equals_the_single_process_simulation(steps_results):
    expected = simulate_sketched_sgd(small_model(), WORLD, STEPS)
    for result in steps_results:
        for step, (got, want) in enumerate(zip(result["sketch_updates"], expected, strict=True)):
            for g, w in zip(got, want, strict=True):
                assert torch.equal(torch.tensor(g), w), f"rank {result['rank']} step {step} differs"
    nonzero = sum(int((torch.tensor(g) != 0).sum()) for g in steps_results[0]["sketch_updates"][-1][::2])
    assert nonzero == K  # k-sparse on the weight matrices


def test_ranks_are_bit_identical_after_training_steps_for_every_reducer(steps_results):
    for result in steps_results:
        assert result["divergence"] == {kind: 0.0 for kind in REDUCER_KINDS}


def test_replicas_that_drift_apart_are_detected(steps_results):
    for result in steps_results:
        assert result["drift_error"] is not None
        assert "differ from rank 0's by up to" in result["drift_error"]
        assert "diverged" in result["drift_error"]


def test_traffic_matches_the_papers_accounting(steps_results):
    stats = steps_results[0]["sketch_stats"]
    d, d_bias = 16 * 12 + 12 * 6, 12 + 6
    assert stats["steps"] == STEPS
    assert stats["bytes_sent"] == 4 * STEPS * (ROWS * COLS + P * K + d_bias)
    assert stats["bytes_received"] == 4 * STEPS * (K + d_bias)
    total_values = ROWS * COLS + P * K + K + 2 * d_bias  # |S| + P·k + k, biases up and down
    assert stats["compression_ratio"] == pytest.approx(2 * (d + d_bias) / total_values)
    all_stats = steps_results[0]["stats"]
    assert all_stats["allreduce"]["compression_ratio"] == pytest.approx(1.0)
    assert all_stats["topk"]["upload_compression_ratio"] == pytest.approx(1.0)
    assert all_stats["fetchsgd"]["bytes_sent"] == 4 * 5 * (ROWS * COLS + d_bias)
    assert all_stats["powersgd"]["bytes_sent"] < all_stats["allreduce"]["bytes_sent"]


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
