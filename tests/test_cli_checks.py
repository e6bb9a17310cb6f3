"""Bad command-line input: each refusal names the flag and what is valid, exits 2, and loads no data."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from creditlab.cli import _parse_options, app

runner = CliRunner()


@pytest.fixture(autouse=True)
def no_data_loading(monkeypatch):
    """Any attempt to load a dataset or run a suite fails the test: refusals come first."""
    def refuse(*args, **kwargs):
        raise AssertionError("data was loaded before the flags were checked")

    monkeypatch.setattr("creditlab.train.load_dataset", refuse)
    monkeypatch.setattr("creditlab.bench.demo.load_dataset", refuse)
    monkeypatch.setattr("creditlab.bench.runner.run_suite", refuse)


def refused(args: list[str], *expected: str) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    for text in expected:
        assert text in result.output, result.output
    return result.output


def train(*args: str, out: Path | None = None) -> list[str]:
    return ["train", "--epochs", "1", "--quiet", *args, *(["--out", str(out)] if out else [])]


# -- train --------------------------------------------------------------------------------------
def test_train_limit_zero_is_refused(tmp_path):
    refused(train("--train-limit", "0", out=tmp_path), "--train-limit", ">= 1", "got 0")


def test_negative_train_limit_is_refused(tmp_path):
    refused(train("--train-limit", "-5", out=tmp_path), "--train-limit", ">= 1", "got -5")


def test_test_limit_zero_is_refused(tmp_path):
    refused(train("--test-limit", "0", out=tmp_path), "--test-limit", ">= 1")


def test_cuda_without_cuda_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    refused(train("--device", "cuda", out=tmp_path), "--device cuda", "CUDA is not available", "--device cpu")


def test_a_device_that_is_not_one_is_refused(tmp_path):
    refused(train("--device", "gpu", out=tmp_path), "--device", "valid: cpu, cuda, cuda:N")


def test_out_below_a_file_is_refused(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    refused(train(out=blocker / "run"), "--out", "is a file")
    assert not (blocker.parent / "run").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc takes no new directories on Linux only")
def test_out_where_nothing_can_be_written_is_refused():
    refused(train(out=Path("/proc/creditlab-no-such/run")), "--out", "cannot write in /proc")


def test_a_missing_data_dir_is_not_replaced_by_the_environment(tmp_path, monkeypatch, data_root):
    monkeypatch.setenv("CREDITLAB_DATA", str(data_root))  # a valid fallback exists, and is not used
    refused(train("--data-dir", str(tmp_path / "nowhere"), out=tmp_path / "run"), "--data-dir", "does not exist")


def test_zero_width_hidden_layer_is_refused(tmp_path):
    refused(train("--model-opt", "hidden=[0]", out=tmp_path), "--model-opt hidden=[0]", "integer >= 1")


def test_zero_width_vnn_layer_is_refused(tmp_path):
    refused(train("--model", "vnn-fc", "--rule", "gevb", "--model-opt", "hidden=[8,0]", out=tmp_path),
            "--model-opt", "'hidden'", "integer >= 1")


def test_rule_option_of_the_wrong_type_is_refused(tmp_path):
    refused(train("--rule", "fa", "--rule-opt", "seed=abc", out=tmp_path),
            "--rule-opt seed=abc", "'seed' takes an integer")


def test_unknown_rule_option_lists_the_valid_ones(tmp_path):
    refused(train("--rule", "dfa", "--rule-opt", "sed=1", out=tmp_path), "--rule-opt sed", "valid: seed")


def test_function_valued_rule_option_is_refused(tmp_path):
    refused(train("--rule", "fa", "--rule-opt", "loss_fn=mse", out=tmp_path), "--rule-opt loss_fn",
            "cannot be set from the command line")


def test_unknown_model_option_lists_the_valid_ones(tmp_path):
    refused(train("--model-opt", "widths=[3]", out=tmp_path), "--model-opt widths", "valid: hidden", "activation")


def test_unknown_activation_is_refused(tmp_path):
    refused(train("--model-opt", "activation=swish", out=tmp_path), "--model-opt activation=swish", "relu")


def test_mixed_sign_on_a_model_without_it_is_refused(tmp_path):
    refused(train("--mixed-sign", out=tmp_path), "--mixed-sign", "no option 'mixed_sign'")


def test_valid_flags_still_train(tmp_path, monkeypatch, data_root):
    monkeypatch.undo()  # this one loads data
    result = runner.invoke(app, train("--rule", "fa", "--rule-opt", "seed=3", "--model-opt", "hidden=[16]",
                                      "--train-limit", "64", "--test-limit", "64", "--batch-size", "32",
                                      "--data-dir", str(data_root), out=tmp_path / "run"))
    assert result.exit_code == 0, result.output
    assert "fa on mlp/mnist: test accuracy" in result.output


def test_numbers_in_exponent_form_are_numbers():
    assert _parse_options(["lr=1e-3", "name=abc", "widths=[1,2]"], "--rule-opt") == {
        "lr": 1e-3, "name": "abc", "widths": (1, 2)}


# -- demo and bench -----------------------------------------------------------------------------
def test_demo_train_limit_zero_is_refused(tmp_path):
    refused(["demo", "--out", str(tmp_path), "--train-limit", "0"], "--train-limit", ">= 1")


def test_demo_unknown_rule_is_refused(tmp_path):
    refused(["demo", "--out", str(tmp_path), "--rule", "nope"], "--rule", "'nope'", "valid rules:", "bp")


def test_demo_missing_data_dir_is_refused(tmp_path):
    refused(["demo", "--out", str(tmp_path), "--data-dir", str(tmp_path / "nowhere")], "--data-dir",
            "does not exist")


def test_bench_cuda_without_cuda_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    refused(["bench", "quick", "--device", "cuda", "--out", str(tmp_path / "b.jsonl")], "--device cuda")


def test_bench_out_that_is_a_directory_is_refused(tmp_path):
    refused(["bench", "quick", "--out", str(tmp_path)], "--out", "is a directory")


def reaches_data_loading(args: list[str]) -> None:
    """Every flag passed its check: the command went on to load data (which the fixture refuses)."""
    result = runner.invoke(app, args)
    assert isinstance(result.exception, AssertionError), result.output
    assert "data was loaded before the flags were checked" in str(result.exception)


def test_truenorth_model_options_reach_the_builder(tmp_path):
    """``build_truenorth(**options)`` declares its options as a schema, so --model-opt sees every one."""
    from creditlab.models import MODELS
    from creditlab.options import show

    options = MODELS.get("truenorth").options
    reaches_data_loading(train("--model", "truenorth", *[a for key, o in options.items() if o.default is not None
                                                         for a in ("--model-opt", f"{key}={show(o.default)}")],
                               out=tmp_path))
    refused(train("--model", "truenorth", "--model-opt", "window=1.5", out=tmp_path),
            "--model-opt window=1.5", "takes a whole number >= 1")
    refused(train("--model", "truenorth", "--model-opt", "windows=3", out=tmp_path),
            "no option 'windows'", "valid:", "hidden_neurons")
    refused(train("--model", "truenorth", "--model-opt", "window=17", out=tmp_path), "w*w <= 256")


def _quoted_train_commands() -> list[tuple[str, str]]:
    sys.path.insert(0, str(Path(__file__).parent))
    from test_docs import COMMANDS

    return [(where, args) for where, args, _ in COMMANDS if args.startswith("train ") and "--distributed" not in args]


@pytest.mark.parametrize(("where", "args"), _quoted_train_commands())
def test_every_quoted_train_command_passes_the_checks(where, args, tmp_path, monkeypatch):
    """The docs' `creditlab train` commands (the truenorth 30-core one among them) pass every flag check."""
    import shlex

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    words = shlex.split(args)
    if "--out" not in words:
        words += ["--out", str(tmp_path / "run")]
    reaches_data_loading(words)


def test_the_docs_quote_the_30_core_truenorth_command():
    assert any("--model truenorth" in args and "stride=4" in args for _, args in _quoted_train_commands())


def test_track_alignment_without_a_true_gradient_is_refused_before_data(tmp_path):
    refused(train("--rule", "s2stdp", "--model", "spiking-fc", "--track-alignment", out=tmp_path),
            "--track-alignment", "no true gradient")
    reaches_data_loading(train("--rule", "fa", "--model", "mlp", "--track-alignment", out=tmp_path))


def test_resume_on_an_empty_out_says_it_starts_fresh(tmp_path):
    result = runner.invoke(app, train("--resume", out=tmp_path / "empty"))
    assert isinstance(result.exception, AssertionError)  # went on to load data: a new run
    assert "--resume: no checkpoint in" in result.output and "new run" in result.output


def test_help_keeps_the_bracketed_default_hints():
    """`[default: the model's]` would be read as rich markup and dropped unless escaped."""
    import re

    import typer.main

    command = typer.main.get_command(app)
    hints = [(name, re.sub(r"\\(?=\[)", "", hint)) for name, sub in command.commands.items() for param in sub.params
             for hint in re.findall(r"\\?\[[^\]]*\]", getattr(param, "help", None) or "")]
    assert ("train", "[default: the model's]") in hints
    for name in {name for name, _ in hints}:
        result = CliRunner(env={"COLUMNS": "400"}).invoke(app, [name, "--help"])
        assert result.exit_code == 0
        for hint in [h for n, h in hints if n == name]:
            assert hint in result.output, (name, hint)
