"""README, the docs and the results summaries say only what is true of the code.

- Every ``creditlab`` command quoted in a code block parses with the real CLI (the subcommand and
  every option exist and take the value given). Commands not marked ``# long-running`` are also run
  (in a temporary folder) and must exit 0.
- Every relative link in README.md, docs/ and results/*/SUMMARY.md points at a file that exists.
- No command or link names a path of the machine it was first run on.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LONG_MARK = "# long-running"
SHELL_FENCES = ("```bash", "```sh", "```console", "```shell", "```")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
MACHINE_PATHS = ("/work/", "/root/", "/home/")


def documents() -> list[Path]:
    """README.md, every docs page and every results summary."""
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md")), *sorted(REPO.glob("results/*/SUMMARY.md"))]


def shell_blocks(text: str) -> list[str]:
    """The contents of the shell (or untyped) fenced code blocks of a markdown text."""
    blocks, current, inside, shell = [], [], False, False
    for line in text.splitlines():
        fence = line.strip()
        if fence.startswith("```"):
            if inside:
                if shell:
                    blocks.append("\n".join(current))
                inside, current = False, []
            else:
                inside, shell = True, fence in SHELL_FENCES
            continue
        if inside:
            current.append(line)
    return blocks


def _logical_lines(block: str) -> list[str]:
    lines, current = [], ""
    for raw in block.splitlines():
        current += raw.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        lines.append(current.strip())
        current = ""
    return [line for line in lines if line]


def quoted_commands() -> list[tuple[str, str, bool]]:
    """(document, creditlab argument string, long-running?) for every quoted creditlab command."""
    found = []
    for path in documents():
        for block in shell_blocks(path.read_text(encoding="utf-8")):
            for line in _logical_lines(block):
                long_running = LONG_MARK in line
                code = line.split(" #", 1)[0].strip()
                if "creditlab" not in code:
                    continue
                for part in re.split(r"&&|;|\|", code):
                    words = shlex.split(part)
                    if "creditlab" in words and (words[0] == "creditlab" or "-m" in words):
                        args = words[words.index("creditlab") + 1:]
                        found.append((str(path.relative_to(REPO)), shlex.join(args), long_running))
    return found


COMMANDS = quoted_commands()


def test_commands_were_found() -> None:
    assert len(COMMANDS) >= 10


@pytest.mark.parametrize(("where", "args", "long_running"), COMMANDS, ids=[f"{w}: {a}" for w, a, _ in COMMANDS])
def test_quoted_command_parses(where: str, args: str, long_running: bool) -> None:
    """The subcommand and options exist and accept their values (click parses without running)."""
    import typer.main

    from creditlab.cli import app

    command = typer.main.get_command(app)
    words = shlex.split(args)
    assert not any(p in args for p in MACHINE_PATHS), f"{where}: machine-specific path in `creditlab {args}`"
    with command.make_context("creditlab", [words[0]]) as ctx:
        sub = command.get_command(ctx, words[0])
        assert sub is not None, f"{where}: no subcommand {words[0]!r} in `creditlab {args}`"
        with sub.make_context(words[0], words[1:], parent=ctx) as sub_ctx:
            params = sub_ctx.params
    if words[0] == "reproduce" and params.get("name"):
        from creditlab.experiments import load_all

        experiment = load_all().get(params["name"])
        keys = {pair.split("=", 1)[0].replace("-", "_") for pair in params.get("opt") or []}
        assert keys <= set(experiment.options), f"{where}: unknown --opt {keys - set(experiment.options)} in {args}"


RUNNABLE = [(w, a) for w, a, long_running in COMMANDS if not long_running]


@pytest.mark.parametrize(("where", "args"), RUNNABLE, ids=[f"{w}: {a}" for w, a in RUNNABLE])
def test_quoted_command_runs(where: str, args: str, tmp_path: Path) -> None:
    """Commands not marked long-running run as written and exit 0 (in a copy of README and results/)."""
    shutil.copy(REPO / "README.md", tmp_path / "README.md")
    shutil.copytree(REPO / "results", tmp_path / "results", ignore=shutil.ignore_patterns("checkpoints"))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, "-m", "creditlab", *shlex.split(args)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{where}: `creditlab {args}` exited {proc.returncode}:\n{proc.stderr[-2000:]}"


def test_relative_links_resolve(tmp_path: Path) -> None:
    """Links of README, results summaries and docs pages (the pages beside their generated sections,
    written from the committed records as `make docs` writes them) point at files that exist."""
    from creditlab.report.docs import write_docs_sections

    docs = tmp_path / "docs"
    shutil.copytree(REPO / "docs", docs, ignore=shutil.ignore_patterns("generated"))
    write_docs_sections([REPO / "results"], docs)
    pages = [p for p in documents() if "docs" not in p.relative_to(REPO).parts]
    pages += sorted(p for p in docs.rglob("*.md") if "generated" not in p.relative_to(docs).parts)
    broken = []
    for path in pages:
        text = path.read_text(encoding="utf-8")
        for snippet in re.findall(r'^--8<-- "([^"]+)"', text, re.M):
            found = [f for f in (docs / snippet, REPO / snippet) if f.exists()]
            if not found:
                broken.append(f"{path.name}: snippet {snippet}")
            elif "generated" in Path(snippet).parts:  # included text: its links are the page's
                text += "\n" + found[0].read_text(encoding="utf-8")
        for target in LINK.findall(text):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            file_part = target.split("#", 1)[0]
            if file_part and not (path.parent / file_part).exists():
                broken.append(f"{path.name} -> {target}")
    assert not broken, "broken links:\n" + "\n".join(broken)
