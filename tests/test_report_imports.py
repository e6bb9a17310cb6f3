"""The report's pieces import one way: experiments -> report.render / papers, never back."""

from __future__ import annotations

import subprocess
import sys


def _modules_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    return set(done.stdout.split())


def test_render_tables_plots_and_papers_do_not_import_experiments() -> None:
    for module in ("creditlab.report.render", "creditlab.papers", "creditlab.report.tables",
                   "creditlab.report.plots"):
        loaded = _modules_after_import(module)
        assert not any(name.startswith("creditlab.experiments") for name in loaded), module
        assert "creditlab.report.build" not in loaded, module


def test_render_imports_nothing_of_creditlab() -> None:
    base = _modules_after_import("creditlab")  # what the package itself loads
    loaded = _modules_after_import("creditlab.report.render") - base
    assert {name for name in loaded if name.startswith("creditlab")} == {"creditlab.report",
                                                                          "creditlab.report.render"}
