"""Document blocks (Heading, Paragraph, Table, Image) and their Markdown and HTML renderings.

This module imports nothing of creditlab: experiments build their tables from it without pulling in
the report (``creditlab.report.build``) or the experiment registry.
"""

from __future__ import annotations

import html
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Heading:
    """A section heading (level 1-4)."""

    level: int
    text: str


@dataclass
class Paragraph:
    """A paragraph of plain text (Markdown inline code with backticks is kept as is)."""

    text: str


@dataclass
class Table:
    """A table: column names and rows of already formatted cells, an optional title above it and
    optional notes below it."""

    columns: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    title: str = ""


@dataclass
class Image:
    """A PNG written by the report."""

    path: Path
    alt: str


Block = Heading | Paragraph | Table | Image


def relative_link(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()


def render_markdown(blocks: Sequence[Block], base: Path) -> str:
    """Markdown text of ``blocks``; image links are relative to the directory ``base``."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}\n")
        elif isinstance(block, Paragraph):
            out.append(block.text + "\n")
        elif isinstance(block, Table):
            def cell(text: str) -> str:
                return str(text).replace("|", "\\|").replace("\n", " ")

            if block.title:
                out += [f"**{block.title}**", ""]
            out.append("| " + " | ".join(cell(c) for c in block.columns) + " |")
            out.append("|" + "|".join("---" for _ in block.columns) + "|")
            out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in block.rows]
            out.append("")
            out += [f"{note}  " for note in block.notes]
            if block.notes:
                out.append("")
        else:
            out.append(f"![{block.alt}]({relative_link(block.path, base)})\n")
    return "\n".join(out).rstrip() + "\n"


def render_html(blocks: Sequence[Block], base: Path, title: str = "creditlab results") -> str:
    """A standalone HTML page of ``blocks``; image sources are relative to the directory ``base``."""
    def inline(text: str) -> str:
        return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))

    body: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{inline(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{inline(block.text)}</p>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{inline(c)}</th>" for c in block.columns)
            rows = "".join("<tr>" + "".join(f"<td>{inline(str(c))}</td>" for c in row) + "</tr>"
                           for row in block.rows)
            caption = f"<caption>{inline(block.title)}</caption>" if block.title else ""
            body.append(f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            body += [f"<p class=note>{inline(note)}</p>" for note in block.notes]
        else:
            source, alt = html.escape(relative_link(block.path, base)), html.escape(block.alt)
            body.append(f'<p><img src="{source}" alt="{alt}" style="max-width:100%"></p>')
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto}table{border-collapse:collapse;"
             "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
             "th{background:#eee}.note{font-size:85%;color:#444;margin:0.2em 0}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def fmt(value: Any, digits: int = 4) -> str:
    """A compact cell: floats to ``digits`` significant digits, None as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf"
        return f"{value:.{digits}g}"
    return str(value)



__all__ = ["Block", "Heading", "Image", "Paragraph", "Table", "fmt", "relative_link", "render_html",
           "render_markdown"]
