"""Equations of the documentation site rendered to MathML when the site is built, so a page needs no
JavaScript, no font download and no network to show them (browsers draw MathML natively).

``pymdownx.arithmatex`` (``generic: true``) keeps the TeX of ``$...$`` and ``$$...$$`` away from the
Markdown parser and wraps it as ``<span class="arithmatex">\\(...\\)</span>`` or
``<div class="arithmatex">\\[...\\]</div>``; :func:`render_math` replaces each wrapper by the MathML
that ``latex2mathml`` makes of it. ``mkdocs.yml`` names this file as a hook (``on_page_content``).
"""

from __future__ import annotations

import html
import re
from typing import Any

INLINE = re.compile(r'<span class="arithmatex">\\\((.*?)\\\)</span>', re.S)
DISPLAY = re.compile(r'<div class="arithmatex">\\\[(.*?)\\\]</div>', re.S)
#: TeX delimiters that must not survive in a built page's text (outside code)
UNRENDERED = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$")


class MathError(ValueError):
    """An equation latex2mathml cannot convert (the page and the TeX are named)."""


def tex_to_mathml(tex: str, display: bool) -> str:
    """MathML of one TeX formula (``display``: a block equation, else inline)."""
    from latex2mathml.converter import convert

    try:
        return convert(tex.strip(), display="block" if display else "inline")
    except Exception as error:  # latex2mathml raises many types; name the formula instead
        raise MathError(f"cannot render {tex.strip()!r}: {error}") from error


def render_math(page_html: str) -> str:
    """``page_html`` with every arithmatex wrapper replaced by MathML (display blocks centred)."""

    def display(match: re.Match[str]) -> str:
        return f'<div class="arithmatex">{tex_to_mathml(html.unescape(match.group(1)), True)}</div>'

    def inline(match: re.Match[str]) -> str:
        return f'<span class="arithmatex">{tex_to_mathml(html.unescape(match.group(1)), False)}</span>'

    return INLINE.sub(inline, DISPLAY.sub(display, page_html))


def unrendered_math(page_html: str) -> list[str]:
    """What of a page's math did not render, each with some context: TeX delimiters left in its text
    outside ``<code>``/``<pre>``, and TeX commands latex2mathml did not know (kept as ``\\name``)."""
    text = re.sub(r"<(pre|code|script|style)\b.*?</\1>", "", page_html, flags=re.S)
    found = [text[max(0, m.start() - 30):m.end() + 30] for m in UNRENDERED.finditer(text)]
    for formula in re.findall(r"<math\b.*?</math>", text, re.S):
        found += [f"unknown TeX command {name}" for name in re.findall(r">(\\[A-Za-z]+)<", formula)]
    return found


def on_page_content(html: str, page: Any = None, **_: Any) -> str:
    """mkdocs hook: the page's HTML with its equations rendered (a formula that fails names the page)."""
    try:
        return render_math(html)
    except MathError as error:
        where = getattr(getattr(page, "file", None), "src_path", "?")
        raise MathError(f"{where}: {error}") from error


__all__ = ["MathError", "on_page_content", "render_math", "tex_to_mathml", "unrendered_math"]
