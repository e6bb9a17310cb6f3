"""Exceptions with messages a user can act on."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name if it has none), for short messages."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class CreditlabError(Exception):
    """Base class of every error creditlab raises on purpose."""


class UnknownNameError(CreditlabError, KeyError):
    """A rule, model, dataset or experiment name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0]) if self.args else ""


class IncompatibleModelError(CreditlabError, TypeError):
    """A rule was given a model it cannot train."""


class DatasetError(CreditlabError):
    """A dataset is missing, corrupt or truncated."""


class DivergenceError(CreditlabError):
    """Training produced a non-finite loss or parameter."""


class FeedbackDivergenceError(DivergenceError):
    """A learned feedback update diverged (e.g. SAL's phase moved B ever farther from W)."""


class OptionError(CreditlabError, ValueError):
    """A setting outside what a method or experiment allows; the message names the valid values."""
