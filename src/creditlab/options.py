"""Typed options: one declaration per option (type, range, choices), one check for every value.

Experiments (``creditlab reproduce NAME --opt KEY=VALUE``) and models (``creditlab train --model-opt``)
declare their options as :class:`Option`::

    Option(10, "epochs per rule", minimum=1)                       # an integer >= 1 (type from the default)
    Option(None, "train on the first N images", type=int, minimum=1)   # None: the protocol's own choice
    Option("cpu", "protocol", choices=("cpu", "paper"))
    Option(["bp", "fa"], "rules to run", choices=("bp", "fa", "kp"))  # a non-empty list of those names
    Option([1], "ensemble sizes", minimum=1, non_empty=False)        # [] allowed here

The type comes from ``type=`` or, when not given, from a default that is not None: a bool default
takes only true/false, an int default only whole numbers (never 1.5, "abc" or true), a float default
any number, a str default a string, a list default a list of the default items' type. A list option
refuses ``[]`` unless ``non_empty=False`` (an empty list never means "all"); ``single=True`` also
accepts one item given alone. ``minimum``/``maximum`` (inclusive) and ``above``/``below`` (exclusive)
bound a number or every item of a list; ``choices`` lists the valid strings; ``check`` runs a further test
(it raises ValueError with the reason), and ``what`` says in words what is valid where the fields
cannot (``type=object`` with a ``check``). None is accepted where the default is None (``nullable``).

:func:`resolve` checks every given value against its option before any work starts and raises
:class:`OptionValueError` naming the option, the value and what is valid.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from creditlab.errors import OptionError

#: the option types the command line can give (YAML scalars and lists)
SCALAR_TYPES = (bool, int, float, str)


class OptionValueError(OptionError):
    """A value an option does not take; the message names the option, the value and what is valid."""


@dataclass(frozen=True)
class Option:
    """One option: its default, a help line, and what values it takes (module docstring)."""

    default: Any
    help: str = ""
    type: Any = None
    item: Any = None
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    below: float | None = None
    choices: tuple[Any, ...] | None = None
    nullable: bool | None = None
    non_empty: bool = True
    single: bool = False
    unbounded: bool = False
    check: Callable[[Any], None] | None = None
    what: str | None = None

    # -- what the option is -----------------------------------------------------------------------

    @property
    def kind(self) -> Any:
        """The option's type (bool, int, float, str or list); None when it can not be known (untyped)."""
        if self.type is not None:
            return list if self.type in (list, tuple) else self.type
        if self.default is None:
            return None
        if isinstance(self.default, list | tuple):
            return list
        return next((t for t in SCALAR_TYPES if type(self.default) is t), None)

    @property
    def item_kind(self) -> Any:
        """A list option's item type (from ``item=`` or the default's items); None otherwise."""
        if self.kind is not list:
            return None
        if self.item is not None:
            return self.item
        items = list(self.default) if isinstance(self.default, list | tuple) else []
        if self.choices is not None:
            return str
        kinds = {next((t for t in SCALAR_TYPES if type(v) is t), None) for v in items}
        if kinds == {int, float}:
            return float
        return kinds.pop() if len(kinds) == 1 else None

    @property
    def accepts_none(self) -> bool:
        """Whether None (YAML ``null``: the default's own meaning) is a valid value."""
        return self.default is None if self.nullable is None else self.nullable

    @property
    def bounded(self) -> bool:
        """Whether a number (or a list of numbers) has a declared range (or is unbounded on purpose)."""
        return self.unbounded or any(b is not None for b in (self.minimum, self.maximum, self.above, self.below))

    # -- checking a value -------------------------------------------------------------------------

    def describe(self, null: bool = True) -> str:
        """What the option takes, in words (``a whole number >= 1``, ``one of 'cpu', 'paper'``, ...);
        ``null``: say that null (the default) is taken too, where it is."""
        kind = self.kind
        if self.what is not None:
            return self.what + (", or null (the default)" if null and self.accepts_none else "")
        if kind is list:
            listed = "a list" if not self.non_empty else "a non-empty list"
            if self.single:
                text = f"{_describe_scalar(self.item_kind, self, plural=False)}, or {listed} of them"
            else:
                text = f"{listed} of {_describe_scalar(self.item_kind, self, plural=True)}"
        else:
            text = _describe_scalar(kind, self, plural=False)
        return text + (", or null (the default)" if null and self.accepts_none else "")

    def validate(self, value: Any) -> Any:
        """``value`` as the option holds it (lists as lists, ints given to a float option as floats);
        ValueError with what is valid when the option does not take it."""
        if value is None:
            if self.accepts_none:
                return None
            raise ValueError("null is not allowed")
        kind = self.kind
        if kind is None:
            return value  # an untyped option (see the schema test): taken as given
        if kind is list:
            if isinstance(value, list | tuple):
                if not value and self.non_empty:
                    raise ValueError("an empty list is not allowed (it never means 'all'; omit the option for the "
                                     "default)")
                result: Any = [_validate_item(self.item_kind, self, v) for v in value]
            elif self.single:
                result = _validate_scalar(self.item_kind, self, value)
            else:
                raise ValueError("a list [...] is needed")
        else:
            result = _validate_scalar(kind, self, value)
        if self.check is not None:
            self.check(result)
        return result


def _describe_scalar(kind: Any, option: Option, plural: bool) -> str:
    if option.choices is not None:
        return "one of " + ", ".join(map(repr, option.choices)) if not plural else (
            "names from " + ", ".join(map(repr, option.choices)))
    names = {bool: ("true or false", "booleans"), int: ("a whole number", "whole numbers"),
             float: ("a number", "numbers"), str: ("a string", "strings"), None: ("any value", "values")}
    text = names.get(kind, (getattr(kind, "__name__", str(kind)),) * 2)[plural]
    bounds = [f">= {_number(option.minimum)}" if option.minimum is not None else "",
              f"> {_number(option.above)}" if option.above is not None else "",
              f"<= {_number(option.maximum)}" if option.maximum is not None else "",
              f"< {_number(option.below)}" if option.below is not None else ""]
    bounds = [b for b in bounds if b]
    if bounds and kind in (int, float):
        text += " " + " and ".join(bounds)
    return text


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _validate_item(kind: Any, option: Option, value: Any) -> Any:
    try:
        return _validate_scalar(kind, option, value)
    except ValueError as error:
        raise ValueError(f"item {show(value)}: {error}") from None


def _validate_scalar(kind: Any, option: Option, value: Any) -> Any:
    if kind is None:
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError("true or false is needed")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("a whole number is needed")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError("a finite number is needed")
        value = float(value)
    elif kind is str:
        if not isinstance(value, str):
            raise ValueError("a string is needed")
    elif isinstance(kind, type) and not isinstance(value, kind):
        raise ValueError(f"a {kind.__name__} is needed")
    if option.choices is not None and value not in option.choices:
        raise ValueError("not one of the valid values")
    if kind in (int, float):
        if option.minimum is not None and value < option.minimum:
            raise ValueError(f"below the minimum {_number(option.minimum)}")
        if option.above is not None and not value > option.above:
            raise ValueError(f"must be above {_number(option.above)}")
        if option.maximum is not None and value > option.maximum:
            raise ValueError(f"above the maximum {_number(option.maximum)}")
        if option.below is not None and not value < option.below:
            raise ValueError(f"must be below {_number(option.below)}")
    return value


def show(value: Any) -> str:
    """A value as it would be typed on the command line (``[1,2]``, ``true``, ``null``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return "[" + ",".join(show(v) for v in value) + "]"
    return str(value)


def resolve(options: Mapping[str, Option], given: Mapping[str, Any], owner: str, flag: str = "--opt"
            ) -> dict[str, Any]:
    """Every option of ``options``: its default, or the checked value in ``given``. OptionValueError
    (naming ``flag``, the key, the value and what is valid) for an unknown key or a value the option
    does not take; nothing is run before every value has been checked."""
    unknown = sorted(set(given) - set(options))
    if unknown:
        valid = ", ".join(sorted(options)) or f"(none: {owner} takes no options)"
        raise OptionValueError(f"{owner} has no option {', '.join(map(repr, unknown))}; valid: {valid}")
    resolved = {}
    for key, option in options.items():
        if key not in given:
            resolved[key] = option.default
            continue
        try:
            resolved[key] = option.validate(given[key])
        except ValueError as error:
            raise OptionValueError(f"{flag} {key}={show(given[key])}: {owner}: option {key!r} takes "
                                   f"{option.describe()} ({error})") from None
    return resolved


__all__ = ["Option", "OptionValueError", "resolve", "show"]
