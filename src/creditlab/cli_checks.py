"""Command-line input checks that run before any data is loaded.

Each check raises :class:`InvalidFlagError` with a message that names the flag, says what was given
and what is valid; the CLI turns it into ``error: ...`` and exit status 2. Nothing here trains,
loads data or creates files.
"""

from __future__ import annotations

import inspect
import os
import tempfile
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from creditlab.errors import CreditlabError, UnknownNameError


class InvalidFlagError(CreditlabError, ValueError):
    """A command-line flag whose value cannot work; the message names the flag and what is valid."""


# -- numbers ------------------------------------------------------------------------------------

def check_positive_int(flag: str, value: int | None, what: str = "a whole number") -> None:
    """``value`` is None (not given) or an integer >= 1."""
    if value is not None and value < 1:
        raise InvalidFlagError(f"{flag} must be {what} >= 1, got {value}")


def check_limit(flag: str, value: int | None) -> None:
    """``--train-limit``/``--test-limit``: None (the whole split) or a number of examples >= 1."""
    if value is not None and value < 1:
        raise InvalidFlagError(f"{flag} must be a number of examples >= 1, got {value} "
                               f"(omit {flag} to use the whole split)")


def check_learning_rate(value: float | None) -> None:
    """``--lr``: None (the model's default) or a finite number > 0."""
    if value is not None and not 0 < value < float("inf"):
        raise InvalidFlagError(f"--lr must be a finite number > 0, got {value}")


def check_fraction(flag: str, value: float) -> None:
    """A share of the training set in [0, 1)."""
    if not 0.0 <= value < 1.0:
        raise InvalidFlagError(f"{flag} must be in [0, 1) (a share of the training set), got {value}")


# -- places -------------------------------------------------------------------------------------

def check_device(flag: str, device: str) -> None:
    """``cpu``, ``cuda`` or ``cuda:N`` with CUDA available and N below the number of GPUs."""
    valid = "cpu, cuda, cuda:N"
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise InvalidFlagError(f"{flag} {device!r} is not a device; valid: {valid}") from None
    if parsed.type == "cpu":
        return
    if parsed.type != "cuda":
        raise InvalidFlagError(f"{flag} {device!r} is not supported; valid: {valid}")
    if not torch.cuda.is_available():
        raise InvalidFlagError(f"{flag} {device}: CUDA is not available on this machine (torch "
                               f"{torch.__version__}, CUDA build {torch.version.cuda or 'none'}); use {flag} cpu")
    count = torch.cuda.device_count()
    if parsed.index is not None and parsed.index >= count:
        raise InvalidFlagError(f"{flag} {device}: this machine has {count} CUDA device(s); "
                               f"valid: cuda, cuda:0 .. cuda:{count - 1}")


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path.cwd()


def check_writable_dir(flag: str, path: str | os.PathLike) -> None:
    """``path`` is a directory, or can be created as one, in a place that takes new files (tried with
    a temporary directory that is removed at once; permission bits alone say nothing for root)."""
    target = Path(path).expanduser().absolute()
    if target.exists() and not target.is_dir():
        raise InvalidFlagError(f"{flag} {path}: exists and is not a directory; give a directory")
    existing = _nearest_existing(target)
    if not existing.is_dir():
        raise InvalidFlagError(f"{flag} {path}: cannot create a directory there, {existing} is a file; "
                               "give a directory in a writable place")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".creditlab-write-check-", dir=existing))
    except OSError as error:
        raise InvalidFlagError(f"{flag} {path}: cannot write in {existing} ({error.strerror}); "
                               "give a directory in a writable place") from None


def check_writable_file(flag: str, path: str | os.PathLike) -> None:
    """``path`` is a writable file, or one that can be created (its folder may not exist yet)."""
    target = Path(path).expanduser().absolute()
    if target.is_dir():
        raise InvalidFlagError(f"{flag} {path}: is a directory; give a file path (e.g. results/bench.jsonl)")
    if target.exists():
        if not os.access(target, os.W_OK):
            raise InvalidFlagError(f"{flag} {path}: the file is not writable")
        return
    check_writable_dir(flag, target.parent)


def check_data_dir(flag: str, data_dir: str | os.PathLike | None) -> None:
    """An explicit dataset directory must exist (it is never silently replaced by $CREDITLAB_DATA)."""
    if data_dir is None:
        return
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        state = "is not a directory" if path.exists() else "does not exist"
        raise InvalidFlagError(f"{flag} {data_dir}: {state}; give the folder that holds the datasets "
                               "(mnist/, cifar-10/, ...), or omit it to search $CREDITLAB_DATA, then "
                               "~/.cache/creditlab")


# -- names and options --------------------------------------------------------------------------

def lookup(flag: str, registry: Any, name: str) -> Any:
    """``registry.get(name)``, with an unknown name reported against ``flag``."""
    try:
        return registry.get(name)
    except UnknownNameError as error:
        raise InvalidFlagError(f"{flag}: {error}") from None


def _type_name(annotation: Any, plural: bool = False) -> str:
    origin = typing.get_origin(annotation)
    simple = {int: ("an integer", "integers"), float: ("a number", "numbers"), bool: ("true or false", "booleans"),
              str: ("a string", "strings")}
    if annotation in simple:
        return simple[annotation][plural]
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        names = [_type_name(a, plural) for a in args if a is not type(None)]
        return " or ".join(names) + (" or null" if type(None) in args else "")
    args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
    if origin in (tuple, list, _SEQUENCE) or annotation in (tuple, list):
        return ("lists" if plural else "a list") + (f" [..] of {_type_name(args[0], True)}" if args else " [..]")
    return getattr(annotation, "__name__", str(annotation))


_SEQUENCE = typing.get_origin(typing.Sequence[int])


def _matches(value: Any, annotation: Any) -> bool | None:
    """Whether ``value`` (as parsed from the command line) fits ``annotation``; None: cannot tell."""
    origin = typing.get_origin(annotation)
    if annotation is Any or annotation is inspect.Parameter.empty:
        return None
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        results = [_matches(value, a) for a in typing.get_args(annotation)]
        return True if any(r for r in results) else (None if None in results else False)
    if origin in (tuple, list, _SEQUENCE) or annotation in (tuple, list):
        if not isinstance(value, (tuple, list)):
            return False
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        if not args:
            return True
        results = [_matches(item, args[0]) for item in value]
        return False if False in results else (None if None in results else True)
    if isinstance(annotation, type) and annotation.__module__ == "builtins":
        return isinstance(value, annotation)
    return None


def _settable_parameters(function: Any, skip: int) -> dict[str, tuple[inspect.Parameter, Any]]:
    """Keyword parameters of ``function`` after the first ``skip`` ones, with resolved annotations."""
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # noqa: BLE001 - an unresolvable annotation only means no type check
        hints = {}
    parameters = list(inspect.signature(function).parameters.values())[skip:]
    return {p.name: (p, hints.get(p.name, p.annotation)) for p in parameters
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def check_options(flag: str, owner: str, function: Any, skip: int, options: Mapping[str, Any]) -> None:
    """Every key of ``options`` is a parameter of ``function`` (past ``skip`` positional ones) and each
    value fits its annotation; callables cannot come from the command line."""
    parameters = _settable_parameters(function, skip)
    settable = {name: hint for name, (_, hint) in parameters.items() if not _is_callable_type(hint)}
    valid = ", ".join(f"{name} ({_type_name(hint)})" for name, hint in settable.items())
    for key, value in options.items():
        if key not in parameters:
            raise InvalidFlagError(f"{flag} {key}: {owner} has no option {key!r}; "
                                   + (f"valid: {valid}" if valid else f"{owner} takes no options"))
        if key not in settable:
            raise InvalidFlagError(f"{flag} {key}: {owner}'s option {key!r} is a function and cannot be set "
                                   f"from the command line; valid: {valid}")
        if _matches(value, settable[key]) is False:
            raise InvalidFlagError(f"{flag} {key}={_show(value)}: {owner}'s option {key!r} takes "
                                   f"{_type_name(settable[key])}")


def _is_callable_type(annotation: Any) -> bool:
    import collections.abc

    origin = typing.get_origin(annotation) or annotation
    return origin is collections.abc.Callable or origin is typing.Callable


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ",".join(_show(v) for v in value) + "]"
    return str(value).lower() if isinstance(value, bool) else str(value)


def check_rule_options(rule: str, options: Mapping[str, Any]) -> None:
    """``--rule-opt``: the rule exists and every option is a constructor argument of the right type."""
    from creditlab.rules import RULES

    cls = lookup("--rule", RULES, rule)
    check_options("--rule-opt", f"rule {rule}", cls.__init__, 2, options)  # self, model


def check_alignment_possible(rule: str) -> None:
    """``--track-alignment``: the rule has a true gradient to compare its updates with."""
    from creditlab.rules import RULES
    from creditlab.rules.base import require_true_gradient

    try:
        require_true_gradient(lookup("--rule", RULES, rule))
    except InvalidFlagError:
        raise
    except CreditlabError as error:
        raise InvalidFlagError(f"--track-alignment: {error}") from None


def check_model_options(model: str, dataset: str, options: Mapping[str, Any], flag: str = "--model-opt") -> None:
    """``--model-opt``: known keys of the right type, and values the builder accepts (it is built once,
    on the CPU, with the global RNG left as it was)."""
    from creditlab.data.specs import DATASETS
    from creditlab.models import MODELS

    entry = lookup("--model", MODELS, model)
    spec = lookup("--data", DATASETS, dataset)
    if entry.options is not None:  # a builder taking **options declares them as a typed schema
        from creditlab.options import OptionValueError, resolve

        try:
            resolve(entry.options, options, f"model {model}", flag=flag)
        except OptionValueError as error:
            raise InvalidFlagError(str(error)) from None
    else:
        check_options(flag, f"model {model}", entry.builder, 2, options)  # input_shape, num_classes
    with torch.random.fork_rng(devices=[]):
        try:
            entry.builder(tuple(spec.image_shape), spec.num_classes, **options)
        except (ValueError, TypeError) as error:
            given = " ".join(f"{k}={_show(v)}" for k, v in options.items())
            raise InvalidFlagError(f"{flag} {given}: {error}") from None


# -- per command --------------------------------------------------------------------------------

def check_train_flags(*, rule: str, model: str, data: str, device: str, out: str, data_dir: str | None,
                      train_limit: int | None, test_limit: int | None, epochs: int | None,
                      batch_size: int | None, lr: float | None, val_fraction: float,
                      rule_options: Mapping[str, Any], model_options: Mapping[str, Any],
                      track_alignment: bool = False) -> None:
    """Everything ``creditlab train`` can check before it loads data (see the module docstring)."""
    check_limit("--train-limit", train_limit)
    check_limit("--test-limit", test_limit)
    check_positive_int("--epochs", epochs)
    check_positive_int("--batch-size", batch_size)
    check_learning_rate(lr)
    check_fraction("--val-fraction", val_fraction)
    check_device("--device", device)
    check_data_dir("--data-dir", data_dir)
    check_writable_dir("--out", out)
    check_rule_options(rule, rule_options)
    if track_alignment:
        check_alignment_possible(rule)
    check_model_options(model, data, model_options,
                        flag="--model-opt/--mixed-sign" if "mixed_sign" in model_options else "--model-opt")


def check_demo_flags(*, out: str, epochs: int | None, train_limit: int | None, device: str, data_dir: str | None,
                     rules: list[str] | None) -> None:
    """What ``creditlab demo`` can check before it loads data (every chosen rule has a demo setting)."""
    from creditlab.bench.demo import demo_setting
    from creditlab.rules import RULES

    check_positive_int("--epochs", epochs)
    check_limit("--train-limit", train_limit)
    check_device("--device", device)
    check_data_dir("--data-dir", data_dir)
    check_writable_dir("--out", out)
    if rules is not None and not rules:
        raise InvalidFlagError("--rule was given no rule; omit it to run every rule")
    for rule in rules or []:
        lookup("--rule", RULES, rule)
    for rule in rules or RULES.names():
        demo_setting(rule)


def check_reproduce_flags(*, device: str, out: str, data_dir: str | None, threads: int | None) -> None:
    """What ``creditlab reproduce`` can check before the experiment starts (its options:
    :func:`creditlab.experiments.resolve_options`)."""
    check_positive_int("--threads", threads)
    check_device("--device", device)
    check_data_dir("--data-dir", data_dir)
    check_writable_dir("--out", out)


def check_bench_flags(*, device: str, out: str, data_dir: str | None) -> None:
    """What ``creditlab bench`` can check before it runs a unit (``--out`` is the results JSONL file)."""
    check_device("--device", device)
    check_data_dir("--data-dir", data_dir)
    check_writable_file("--out", out)


__all__ = ["InvalidFlagError", "check_alignment_possible", "check_bench_flags", "check_data_dir", "check_demo_flags",
           "check_device", "check_fraction", "check_learning_rate", "check_limit", "check_model_options",
           "check_options", "check_positive_int", "check_reproduce_flags", "check_rule_options", "check_train_flags",
           "check_writable_dir", "check_writable_file", "lookup"]
