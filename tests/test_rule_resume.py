"""Stateful rules resume bit-identically: a run killed mid-epoch and resumed equals the uninterrupted one."""

from __future__ import annotations

import pytest
import torch

from conftest import killed_at_step
from creditlab.train import train_from_names

SETTINGS = {"epochs": 3, "train_limit": 1000, "test_limit": 300, "batch_size": 100, "progress": False}


def _checkpoint(run_dir) -> dict:  # noqa: ANN001
    return torch.load(run_dir / "checkpoint.pt", weights_only=False)


def _same(a: object, b: object) -> bool:
    """Bitwise equality of tensors, also inside the dicts and lists of an ``_extra_state`` (optimizer state)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


#: small spiking phases for SAL (its feedback is learned before each epoch)
RULE_OPTIONS = {"sal": {"iterations": 1, "steps": 20, "chains": 2}}


@pytest.mark.parametrize("rule", ["brsf", "dfa", "dtp", "kp", "sal"])
def test_killed_and_resumed_run_equals_the_uninterrupted_one(rule: str, mnist_small, tmp_path, monkeypatch,
                                                             one_thread) -> None:  # noqa: ANN001
    """brSF's draw counter, DFA's feedback, DTP's learned feedback mappings with their optimizer state and
    noise draw count, KP's learned feedback and velocity and SAL's feedback learned in its spiking phases
    survive the kill."""
    options = {"model_options": {"hidden": (32, 32)}, "rule_options": RULE_OPTIONS.get(rule, {}), **SETTINGS}
    full = train_from_names(rule, "mlp", "mnist", loaded=mnist_small, out_dir=str(tmp_path / "full"), **options)

    with killed_at_step(monkeypatch, 15):  # in the middle of the second epoch (10 steps per epoch)
        train_from_names(rule, "mlp", "mnist", loaded=mnist_small, out_dir=str(tmp_path / "cut"), **options)
    assert _checkpoint(tmp_path / "cut")["epoch"] == 0
    resumed = train_from_names(rule, "mlp", "mnist", loaded=mnist_small, out_dir=str(tmp_path / "cut"),
                               resume=True, **options)
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in full["history"]]
    full_state, cut_state = _checkpoint(tmp_path / "full"), _checkpoint(tmp_path / "cut")
    for part in ("model", "rule"):
        assert full_state[part].keys() == cut_state[part].keys()
        for key, value in full_state[part].items():
            assert _same(value, cut_state[part][key]), (part, key)
    state_keys = " ".join(full_state["model"]) + " " + " ".join(full_state["rule"])
    expected = {"brsf": "_extra_state", "dfa": "feedback_matrix", "dtp": "feedback_weight_1",
                "kp": "feedback_velocity", "sal": "feedback_weight"}[rule]
    assert expected in state_keys
    if rule == "dtp":  # 30 steps: 30 noise draws and 30 feedback-optimizer steps
        assert int(full_state["rule"]["noise_draws"]) == 30
        assert float(full_state["rule"]["_extra_state"]["feedback_optimizer"]["state"][0]["step"]) == 30
    if rule == "brsf":  # 30 training forwards drew 30 magnitudes per layer
        assert full_state["model"]["1._extra_state"]["feedback_draws"] == 30
