"""A regular (non-editable) install carries everything the CLI needs: build the wheel, install it into
an empty folder, and run the CLI from another directory with no source tree importable."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# runs a module with only the installed copy of creditlab importable: every other sys.path entry that
# holds a creditlab package (the checkout's src/, an editable install's .pth entry) is dropped
LAUNCHER = """\
import runpy, sys
from pathlib import Path
site = sys.argv.pop(1)
sys.path[:] = [site] + [p for p in sys.path if p != site and not (Path(p or ".") / "creditlab").is_dir()]
target = sys.argv.pop(1)
sys.argv[0] = target
if target.endswith(".py"):
    runpy.run_path(target, run_name="__main__")
else:
    runpy.run_module(target, run_name="__main__", alter_sys=True)
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(site folder holding only the installed wheel, launcher script)."""
    pytest.importorskip("setuptools", minversion="77")
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # a copy, so the build leaves nothing in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(root / "dist"),
                    str(source)], check=True, capture_output=True, text=True, timeout=120)
    wheels = list((root / "dist").glob("creditlab-*.whl"))
    assert len(wheels) == 1, wheels
    site = root / "site"
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheels[0])],
                   check=True, capture_output=True, text=True, timeout=120)
    launcher = root / "launch.py"
    launcher.write_text(LAUNCHER)
    return site, launcher


def run_installed(installed: tuple[Path, Path], cwd: Path, module: str, *args: str) -> subprocess.CompletedProcess:
    site, launcher = installed
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CREDITLAB_BENCH_CONFIGS")}
    return subprocess.run([sys.executable, str(launcher), str(site), module, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_wheel_ships_the_suites_and_runs_from_elsewhere(installed, tmp_path):
    site, _ = installed
    assert sorted(p.name for p in (site / "creditlab" / "configs" / "bench").glob("*.yaml")) == [
        "paper.yaml", "perf.yaml", "quick.yaml"]
    probe = tmp_path / "probe.py"
    probe.write_text("import creditlab\nfrom creditlab.bench.runner import find_suite, load_suite\n"
                     "print(creditlab.__file__)\nprint(find_suite('quick'))\n"
                     "print(len(load_suite('paper').entries))\n")
    found = run_installed(installed, tmp_path, str(probe))
    assert found.returncode == 0, found.stderr
    package_file, quick_path, paper_entries = found.stdout.split()
    assert Path(package_file).is_relative_to(site) and Path(quick_path).is_relative_to(site)
    assert int(paper_entries) > 0

    bench_help = run_installed(installed, tmp_path, "creditlab", "bench", "--help")
    assert bench_help.returncode == 0 and "suite" in bench_help.stdout, bench_help.stderr
    listing = run_installed(installed, tmp_path, "creditlab", "reproduce", "--list")
    assert listing.returncode == 0 and "gevb" in listing.stdout, listing.stderr
    unknown = run_installed(installed, tmp_path, "creditlab", "bench", "no-such-suite")
    assert unknown.returncode == 2
    assert "known suites: paper, perf, quick" in unknown.stderr, unknown.stderr
