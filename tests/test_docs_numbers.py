"""Docs numbers come from records: a number typed into a paper or rule page's prose that equals a value
of a committed record (a measured number, not the paper's) is flagged; such numbers belong in a generated
section (``generated/headlines``, ``papers``, ``benchmarks``, ``fields/<experiment>/<field>``, ``rules``).

Pages written before this check still quote some record numbers in their prose; they are listed, page by
page, in ``tests/data/docs_typed_numbers.txt`` and may only shrink: a number not on the list fails. After
turning typed numbers into generated sections, rewrite the list with
``python tests/test_docs_numbers.py --write``.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KNOWN = REPO / "tests" / "data" / "docs_typed_numbers.txt"
PAPER_KEY = re.compile(r"paper|authors|biotorch", re.IGNORECASE)  # the papers' numbers, which prose may quote
#: a number as prose writes a measurement: decimals or thousands separators, three significant digits or more
NUMBER = re.compile(r"(?<![\w.\-/=@])(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+)(?![\w.]*\d)")


def _measured_values(value: object, key: str = "") -> list[float]:
    """Every finite number in a record's ``final``, except those under a paper's or the authors' key."""
    if PAPER_KEY.search(key):
        return []
    if isinstance(value, dict):
        return [v for k, item in value.items() for v in _measured_values(item, str(k))]
    if isinstance(value, list):
        return [v for item in value for v in _measured_values(item, key)]
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return [float(value)]
    return []


def record_numbers(results: Path) -> dict[int, set[float]]:
    """decimals -> the committed records' measured values (as they are, in %, and as 100 − %) rounded so."""
    values = set()
    for path in sorted(results.rglob("*.jsonl")):
        if "checkpoints" in path.parts:
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line) if line.strip() else {}
            if "kind" in record:
                values.update(_measured_values(record.get("final")))
    forms = {f for v in values for f in (v, 100 * v, 100 - 100 * v)}
    return {d: {round(f, d) for f in forms} for d in range(5)}


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, text) of a page's prose: code blocks, inline code, math, link targets, image
    lines and snippet includes left out."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip().startswith("```"):
            fenced = not fenced
            continue
        if fenced or line.startswith("--8<--") or line.lstrip().startswith("!["):
            continue
        line = re.sub(r"`[^`]*`|\$[^$]*\$|\]\([^)]*\)", " ", line)
        lines.append((number, line))
    return lines


def typed_record_numbers(text: str, numbers: dict[int, set[float]]) -> list[str]:
    """The numbers of ``text``'s prose that equal a measured record value at the precision written."""
    found = []
    for _, line in prose_lines(text):
        for match in NUMBER.finditer(line):
            written = match.group(1)
            digits = re.sub(r"\D", "", written).lstrip("0")
            if len(digits) < 3:
                continue
            decimals = len(written.split(".", 1)[1]) if "." in written else 0
            if decimals < 5 and float(written.replace(",", "")) in numbers[decimals]:
                found.append(written)
    return found


def pages() -> list[Path]:
    return sorted([*(REPO / "docs" / "papers").glob("*.md"), *(REPO / "docs" / "rules").glob("*.md")])


def current() -> dict[str, list[str]]:
    numbers = record_numbers(REPO / "results")
    return {p.relative_to(REPO).as_posix(): typed_record_numbers(p.read_text(encoding="utf-8"), numbers)
            for p in pages()}


def known() -> dict[str, set[str]]:
    listed: dict[str, set[str]] = {}
    for line in KNOWN.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            page, number = line.split()
            listed.setdefault(page, set()).add(number)
    return listed


def test_the_check_finds_a_typed_record_number(tmp_path: Path) -> None:
    """A hand-made record and page: its measured value typed in prose is found at the precision written
    (also as a percentage), settings, the paper's value and numbers in code are not."""
    record = {"kind": "reproduce", "final": {"test_accuracy": 0.98765, "paper_pct": 91.25, "width": 784}}
    (tmp_path / "r.jsonl").write_text(json.dumps(record) + "\n")
    numbers = record_numbers(tmp_path)
    page = ("We reach 98.77% (the paper: 91.25) at width 784.\n\n```bash\ncreditlab x  # 98.77\n```\n"
            "Error `1.23` in code; error 1.23 in prose; 0.9877 as a fraction.\n")
    assert typed_record_numbers(page, numbers) == ["98.77", "1.23", "0.9877"]


def test_no_new_record_number_is_typed_into_the_docs() -> None:
    listed = known()
    new = [f"{page}: {number}" for page, found in current().items() for number in found
           if number not in listed.get(page, set())]
    assert not new, ("numbers from the records typed into docs prose (generate them: a generated section, "
                     "see this module's docstring):\n" + "\n".join(new))


def test_ncg_cost_numbers_are_generated() -> None:
    """Issue 26's example: ncg.md's cost per inference comes from the records' ``cost_per_inference``."""
    text = (REPO / "docs" / "papers" / "ncg.md").read_text(encoding="utf-8")
    assert '--8<-- "generated/fields/ncg-fmnist/cost_per_inference.md"' in text
    assert "49,992" not in text and "49.7 output spikes" not in text


if __name__ == "__main__" and "--write" in sys.argv:
    lines = ["# page number: record numbers still typed into docs prose (may only shrink; see test_docs_numbers.py)"]
    lines += [f"{page} {number}" for page, found in current().items() for number in sorted(set(found))]
    KNOWN.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(lines) - 1} entries written to {KNOWN.relative_to(REPO)}")
