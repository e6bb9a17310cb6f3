"""One number from a paper, with where it comes from and how sure we are of it."""

from __future__ import annotations

from dataclasses import dataclass

#: how a paper's number was obtained: read from the authors' own code/data or paper (verified), copied
#: from someone else's account of it (secondary), written down without a check (unverified), or absent
STATUSES = ("verified", "secondary", "unverified", "not available")


@dataclass(frozen=True)
class PaperValue:
    """A paper's number: ``value`` (None when not available), its spread ``sd`` where reported, its
    ``status`` (one of :data:`STATUSES`), the ``source`` it was read from and a short ``note``.

    ``setting`` (the paper's training setting) and ``runs`` (how many runs the mean is over) are
    optional details some tables need.
    """

    value: float | None
    sd: float | None = None
    status: str = "verified"
    source: str = ""
    note: str = ""
    setting: str = ""
    runs: int | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}; valid: {', '.join(STATUSES)}")
        if (self.value is None) != (self.status == "not available"):
            raise ValueError("a value is None exactly when its status is 'not available'")


__all__ = ["STATUSES", "PaperValue"]
