"""README's generated results section is what ``creditlab report results --readme README.md`` prints
from the committed records: regenerated from a clean copy of HEAD, byte for byte."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _export_head(paths: list[str], target: Path) -> None:
    """The committed files at ``paths`` (as a clean clone has them) into ``target``."""
    archive = target / "head.tar"
    subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", "-o", str(archive), "HEAD", *paths],
                   check=True, capture_output=True, timeout=60)
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    archive.unlink()


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs the git checkout")
def test_committed_readme_is_regenerated_byte_for_byte(tmp_path: Path) -> None:
    _export_head(["README.md", "results"], tmp_path)
    committed = (tmp_path / "README.md").read_bytes()
    done = subprocess.run([sys.executable, "-m", "creditlab", "report", "results", "--readme", "README.md"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "README.md").read_bytes() == committed


def test_section_does_not_depend_on_where_the_checkout_lies(tmp_path: Path) -> None:
    """Same records and README in two different folders (and a run log that is not a record): same text."""
    from creditlab.report.readme import README_BEGIN, README_END, update_readme
    from creditlab.results import append_record, make_record

    texts = []
    for where in ("a", "b/c"):
        root = tmp_path / where
        store = root / "results" / "bench.jsonl"
        append_record(store, make_record("train", "bp/mlp/mnist", {"rule": "bp", "model": "mlp",
                                                                   "dataset": "mnist"}, {"test_accuracy": 0.9}))
        log = root / "results" / "gevb" / "checkpoints" / "run" / "metrics.jsonl"
        append_record(log, {"epoch": 1, "test_accuracy": 0.5})  # a per-epoch log, not a record
        (root / "README.md").write_text(f"# x\n{README_BEGIN}\n{README_END}\n")
        update_readme(root / "README.md", [root / "results"], root / "results" / "report")
        texts.append((root / "README.md").read_text())
    assert texts[0] == texts[1] and "from 1 records" in texts[0]
    assert "creditlab report results --readme README.md" in texts[0]
