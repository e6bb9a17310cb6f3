"""The docs site's equations render when the site is built, with no network: every page's math
becomes MathML (no TeX delimiter or unknown TeX command is left in the HTML), and a small site built by
mkdocs with the project's configuration carries MathML, not raw TeX."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from creditlab.report.mathml import render_math, tex_to_mathml, unrendered_math

REPO = Path(__file__).resolve().parents[1]
HOOK = "src/creditlab/report/mathml.py"


def _mkdocs_config() -> dict:
    return yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))


def _markdown():
    """Python-Markdown with mkdocs.yml's extensions (snippets without path checks: no generated/)."""
    import markdown

    names, configs = [], {}
    for entry in _mkdocs_config()["markdown_extensions"]:
        name, options = (next(iter(entry.items())) if isinstance(entry, dict) else (entry, {}))
        names.append(name)
        configs[name] = dict(options or {})
    configs.get("pymdownx.snippets", {}).update(check_paths=False, base_path=[str(REPO / "docs"), str(REPO)])
    return markdown.Markdown(extensions=names, extension_configs=configs)


def test_formula_becomes_mathml() -> None:
    """A hand-solved case: x^2 / 2 is a fraction of a superscript and a number."""
    out = tex_to_mathml(r"\frac{x^2}{2}", display=True)
    assert 'display="block"' in out
    assert "<mfrac>" in out and "<msup><mi>x</mi><mn>2</mn></msup>" in out


def test_unrendered_math_is_found() -> None:
    """The check itself: raw delimiters and unknown commands are flagged, code is not."""
    assert unrendered_math(r"<p>\(t_i\)</p>")
    assert unrendered_math(tex_to_mathml(r"\notacommand x", display=False))
    assert not unrendered_math(r"<p>see <code>\(x\)</code></p>" + tex_to_mathml("x", display=False))


def test_mkdocs_names_the_hook() -> None:
    config = _mkdocs_config()
    assert HOOK in (config.get("hooks") or []), "mkdocs.yml must run the MathML hook"
    assert not any("mathjax" in str(s).lower() or "katex" in str(s).lower()
                   for s in (config.get("extra_javascript") or [])), "no script from a CDN"


@pytest.mark.parametrize("page", sorted(p.relative_to(REPO / "docs").as_posix() for p in (REPO / "docs").rglob("*.md")
                                        if "generated" not in p.parts))
def test_every_page_renders_its_math(page: str) -> None:
    """Each docs page, converted as mkdocs converts it and passed through the hook, has no raw TeX."""
    html = render_math(_markdown().convert((REPO / "docs" / page).read_text(encoding="utf-8")))
    assert not unrendered_math(html), f"{page}: {unrendered_math(html)[:5]}"


def test_small_site_builds_with_mathml(tmp_path: Path) -> None:
    """mkdocs itself, with the project's math settings and hook, writes MathML into the page."""
    docs = tmp_path / "docs"
    docs.mkdir()
    page = "Inline $t_i \\in [0,1]$ and a block:\n\n$$\\Delta W = -\\eta\\, \\delta^\\top h$$\n"
    (docs / "index.md").write_text(page, encoding="utf-8")
    config = {"site_name": "math", "docs_dir": str(docs), "site_dir": str(tmp_path / "site"),
              "hooks": [str(REPO / HOOK)], "theme": {"name": "mkdocs"},
              "markdown_extensions": [{"pymdownx.arithmatex": {"generic": True}}]}
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-f",
                           str(tmp_path / "mkdocs.yml")], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    html = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert html.count("<math") == 2 and not unrendered_math(html)
