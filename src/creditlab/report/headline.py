"""README's results table: one row per paper claim, our measured number beside the paper's.

An experiment module registers a headline function with :func:`creditlab.experiments.register_headline`;
it gets every record and returns the :class:`Headline` rows its paper's claims support (none when no
record holds them). This module imports nothing of creditlab's experiments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from creditlab.report.render import Table, relative_link

#: the order of the statuses in a row that mixes several (the least sure one is shown)
STATUS_ORDER = ("not available", "unverified", "secondary", "verified")


@dataclass(frozen=True)
class Headline:
    """One claim of a paper: ``ours`` (measured, from records) beside ``theirs`` (the paper's number,
    with its ``status``), the ``budget`` ours ran at, and the docs ``page`` with the full result."""

    paper: str
    claim: str
    ours: str
    theirs: str
    status: str
    budget: str
    page: str


def newest_runs(records: Sequence[dict[str, Any]], prefix: str) -> dict[str, dict[str, Any]]:
    """The newest full-run (not ``--quick``) record of each name starting with ``prefix``, keyed by the rest
    of the name (``gaitprop-mnist/`` -> ``{"bp": ..., "gaitprop": ...}``)."""
    newest: dict[str, dict[str, Any]] = {}
    for record in sorted((r for r in records if str(r.get("name", "")).startswith(prefix)
                          and not (r.get("config") or {}).get("quick")), key=lambda r: str(r.get("timestamp", ""))):
        newest[str(record["name"])[len(prefix):]] = record
    return newest


def least_sure(statuses: Sequence[str]) -> str:
    """The least sure of several statuses (``not available`` < ``unverified`` < ``secondary`` < ``verified``)."""
    known = [s for s in statuses if s in STATUS_ORDER]
    return min(known, key=STATUS_ORDER.index) if known else "not available"


HEADLINE_NOTE = ("ours: measured, printed by `creditlab report` from the committed records; paper: the paper's or "
                 "the authors' released number, with its status (verified: read in the paper or the authors' code "
                 "or data; secondary: from another source; unverified: not checked; not available: none could be "
                 "read). budget: what ours ran at, where it is short of the paper's protocol.")


def headline_table(headlines: Sequence[Headline], base: Path) -> Table:
    """The README's table of claims; ``page`` links are made relative to ``base`` (the README's folder)."""
    rows = [[h.paper, h.claim, h.ours, h.theirs, h.status, h.budget,
             f"[{Path(h.page).stem}]({relative_link(Path(h.page), base)})"] for h in headlines]
    return Table(["paper", "claim", "ours", "paper's", "status", "budget", "more"], rows,
                 [HEADLINE_NOTE + " More: the page linked."])


def page_headline_table(headlines: Sequence[Headline]) -> Table:
    """The README's rows of one paper, as its docs page shows them (no paper or page column)."""
    rows = [[h.claim, h.ours, h.theirs, h.status, h.budget] for h in headlines]
    return Table(["claim", "ours", "paper's", "status", "budget"], rows, [HEADLINE_NOTE])


__all__ = ["HEADLINE_NOTE", "Headline", "STATUS_ORDER", "headline_table", "least_sure", "newest_runs",
           "page_headline_table"]
