"""Every option of every registered experiment is typed, and a bad value ends in exit 2 before any work.

The registry is enumerated, so an experiment added later is covered without a change here: each of
its options must declare a type (and a range or choices), and each is fed a wrong type, a value out
of its range and an empty list through ``creditlab reproduce`` with the experiment's run replaced by
one that fails the test if it is called.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from creditlab.cli import app
from creditlab.experiments import EXPERIMENTS, Experiment, load_all, resolve_options
from creditlab.options import Option, OptionValueError

load_all()
COMMAND = typer.main.get_command(app)  # built once (not per invocation): hundreds of invocations below
CASES = [(name, key) for name in EXPERIMENTS.names() for key in EXPERIMENTS.get(name).options]


def _numeric(option: Option) -> bool:
    return option.kind in (int, float) or option.item_kind in (int, float)


def _textual(option: Option) -> bool:
    return option.kind is str or option.item_kind is str


@pytest.mark.parametrize(("name", "key"), CASES)
def test_every_option_declares_its_values(name: str, key: str) -> None:
    """A type (given or from a non-None default), a range for numbers, choices or a check for names,
    and a default the option itself takes."""
    option = EXPERIMENTS.get(name).options[key]
    assert option.kind is not None, f"{name} --opt {key}: declare type= (the default is None)"
    assert option.kind is not list or option.item_kind is not None, f"{name} --opt {key}: declare item="
    assert not _numeric(option) or option.bounded, (
        f"{name} --opt {key}: declare minimum=/maximum=/above=/below= (or unbounded=True)")
    assert not _textual(option) or option.choices or option.check or option.unbounded, (
        f"{name} --opt {key}: declare choices= or check= (or unbounded=True)")
    assert option.validate(option.default) == option.default or isinstance(option.default, tuple)


def _scalar_text(kind: Any) -> list[str]:
    """Command-line values of the wrong type for an item of ``kind``."""
    return {int: ["abc", "1.5", "true"], float: ["abc", "true"], bool: ["maybe", "perhaps", "1"],
            str: ["5", "true"]}[kind]


def wrong_types(option: Option) -> list[str]:
    """Values of another type than the option takes (and null where it is not allowed)."""
    values = ["{a: 1}"] + ([] if option.accepts_none else ["null"])
    if option.kind is list:
        values += [f"[{v}]" for v in _scalar_text(option.item_kind)]
        values += _scalar_text(option.item_kind) if option.single else ["abc" if option.item_kind is not str else "7"]
    else:
        values += _scalar_text(option.kind) + ["[1,2]"]
    return values


def _outside(option: Option, kind: Any) -> list[str]:
    if option.choices is not None or (kind is str and option.check is not None):
        return ["no-such-value"]
    if kind not in (int, float) or option.unbounded:
        return []
    step = 1 if kind is int else 0.5
    values = [option.minimum - step if option.minimum is not None else None, option.above,
              option.maximum + step if option.maximum is not None else None, option.below]
    return [str(v) for v in values if v is not None]


def out_of_range(option: Option) -> list[str]:
    """Values of the right type outside the option's range or choices."""
    if option.kind is list:
        return [f"[{v}]" for v in _outside(option, option.item_kind)]
    return _outside(option, option.kind)


@pytest.fixture
def runs_forbidden(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every experiment's run fails the test if called: a refused value must stop before it."""
    def forbidden(ctx: Any) -> list[dict[str, Any]]:
        raise AssertionError(f"the experiment ran with options {ctx.options}")

    for name in EXPERIMENTS.names():
        monkeypatch.setitem(EXPERIMENTS._entries, name, dataclasses.replace(EXPERIMENTS.get(name), run=forbidden))
    monkeypatch.setattr("typer.testing._get_command", lambda _app: COMMAND)


@pytest.mark.parametrize(("name", "key"), CASES)
def test_wrong_type_out_of_range_and_empty_list_exit_2(name: str, key: str, runs_forbidden: None,
                                                        tmp_path: Path) -> None:
    option: Option = EXPERIMENTS.get(name).options[key]
    if option.kind is None or (option.kind is list and option.item_kind is None):
        pytest.fail(f"{name} --opt {key}: untyped; declare type= (and item= for a list)")
    bad = wrong_types(option) + out_of_range(option)
    if option.kind is not list or option.non_empty:
        bad.append("[]")
    for text in bad:
        result = CliRunner().invoke(app, ["reproduce", name, "--opt", f"{key}={text}", "--out", str(tmp_path)])
        assert result.exit_code == 2, f"{name} --opt {key}={text}: exit {result.exit_code}\n{result.output[-2000:]}"
        assert f"option {key!r} takes {option.describe()}" in " ".join(result.output.split()), result.output
        assert "Traceback" not in result.output
    if option.kind is list and not option.non_empty:
        assert resolve_options(EXPERIMENTS.get(name), {key: ()})[key] == []


@pytest.mark.parametrize(("name", "key", "value", "valid"), [
    ("gaitprop-mnist", "epochs", "abc", "a whole number >= 1"),
    ("gaitprop-mnist", "epochs", "-2", "a whole number >= 1"),
    ("gaitprop-mnist", "train_limit", "1.5", "a whole number >= 1"),
    ("gaitprop-mnist", "width", "0", "a whole number >= 1"),
    ("gaitprop-mnist", "rules", "[]", "a non-empty list of names from 'bp', 'gaitprop', 'tp'"),
    ("fa-theory-loss", "activation", "swish", "one of 'linear', 'relu', 'tanh', 'sigmoid', or a non-empty list"),
    ("ncg-fmnist", "folds", "ten", "a whole number >= 2"),
    ("ncg-fmnist", "epochs", "-1", "a whole number >= 1"),
    ("ncg-fmnist", "with_ablation", "maybe", "true or false"),
    ("sal-deep", "sal_lr", "abc", "a number > 0"),
    ("sal-deep", "rules", "[]", "a non-empty list"),
    ("truenorth-mnist", "networks", "[]", "a non-empty list"),
    ("truenorth-mnist", "resume", "perhaps", "true or false"),
    ("truenorth-mnist", "sweep", "[]", "a whole number >= 1, or a non-empty list of them"),
    ("rule-id-library", "reuse", "sometimes", "true or false"),
])
def test_the_reported_values_exit_2_naming_the_option(name: str, key: str, value: str, valid: str,
                                                      runs_forbidden: None, tmp_path: Path) -> None:
    """The values of issue #27 that ended in tracebacks or ran silently."""
    result = CliRunner().invoke(app, ["reproduce", name, "--opt", f"{key}={value}", "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())  # the error line may be wrapped
    assert f"--opt {key}=" in output and valid in output, output


def test_valid_values_are_kept_and_normalised() -> None:
    gaitprop = EXPERIMENTS.get("gaitprop-mnist")
    options = resolve_options(gaitprop, {"epochs": 3, "rules": ("bp", "tp"), "val_fraction": 0, "time_budget_s": 5})
    assert options["epochs"] == 3 and options["rules"] == ["bp", "tp"] and options["width"] is None
    assert isinstance(options["val_fraction"], float) and options["time_budget_s"] == 5.0
    assert resolve_options(EXPERIMENTS.get("fa-theory-loss"), {"activation": "tanh"})["activation"] == "tanh"
    with pytest.raises(OptionValueError, match=r"--opt activation=swish: experiment 'fa-theory-loss': option "
                       r"'activation' takes one of 'linear'"):
        resolve_options(EXPERIMENTS.get("fa-theory-loss"), {"activation": "swish"})


def test_type_is_inferred_strictly_from_the_default() -> None:
    assert Option(3, "n").validate(4) == 4
    for value in (1.5, "abc", True, None):
        with pytest.raises(ValueError):
            Option(3, "n").validate(value)
    for value in ("maybe", 1, None):
        with pytest.raises(ValueError):
            Option(False, "flag").validate(value)
    assert Option(0.1, "x").validate(2) == 2.0 and isinstance(Option(0.1, "x").validate(2), float)
    with pytest.raises(ValueError, match="empty list"):
        Option([1, 2], "sizes").validate([])
    assert Option([1, 2], "sizes", non_empty=False).validate(()) == []
    with pytest.raises(ValueError, match="a whole number"):
        Option([1, 2], "sizes").validate([1, "x"])


def test_positional_form_still_registers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Experiments declare ``ExperimentOption(default, help)``: the same typed option, type from the default."""
    from creditlab.experiments import ExperimentOption, register_experiment

    monkeypatch.setattr(EXPERIMENTS, "_entries", dict(EXPERIMENTS._entries))  # registered here only
    register_experiment("positional-form", "a test", options={"epochs": ExperimentOption(10, "epochs"),
                                                              "quick": ExperimentOption(False, "flag")})(lambda ctx: [])
    experiment = EXPERIMENTS.get("positional-form")
    assert resolve_options(experiment, {"epochs": 3}) == {"epochs": 3, "quick": False}
    for given in ({"epochs": 1.5}, {"epochs": "abc"}, {"epochs": True}, {"quick": "maybe"}, {"quick": 1}):
        with pytest.raises(OptionValueError, match=f"--opt {next(iter(given))}="):
            resolve_options(experiment, given)
    assert isinstance(Experiment("x", "y", lambda ctx: []).options, dict)


def test_reproduce_out_that_is_a_file_exits_2(tmp_path: Path, runs_forbidden: None) -> None:
    path = tmp_path / "a-file"
    path.write_text("x")
    result = CliRunner().invoke(app, ["reproduce", "sal-deep", "--out", str(path)])
    assert result.exit_code == 2 and "--out" in result.output and "not a directory" in result.output
    assert "Traceback" not in result.output and "NotADirectoryError" not in result.output


def _quoted_reproduce_commands() -> list[tuple[str, str]]:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from test_docs import COMMANDS

    return [(where, args) for where, args, _ in COMMANDS if args.startswith("reproduce ") and "--opt" in args]


@pytest.mark.parametrize(("where", "args"), _quoted_reproduce_commands())
def test_every_quoted_reproduce_command_passes_the_option_check(where: str, args: str) -> None:
    """The options the docs and README quote are valid under each experiment's schema."""
    import shlex

    from creditlab.cli import _parse_options

    words = shlex.split(args)
    pairs = [words[i + 1] for i, word in enumerate(words) if word == "--opt"]
    resolve_options(EXPERIMENTS.get(words[1]), _parse_options(pairs, "--opt"))
