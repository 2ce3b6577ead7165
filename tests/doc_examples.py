"""The code blocks of README.md and docs/**/*.md, and how the tests run them.

A Python block runs unless the line before its fence says why not::

    <!-- example: not run (needs a collector at collector:4318) -->

Any other block can be put in the working folder before a page's Python runs, as a file the examples read::

    <!-- example: file auriko_obs.toml -->

The Python blocks of one page run in order, in one namespace (as cells of a notebook), in an empty folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).parent.parent
PYTHON = {"python", "py"}
_FENCE = re.compile(r"^```([\w+-]*)[^\n]*$")
_DIRECTIVE = re.compile(r"^<!-- example: (.*?) -->$")
_NOT_RUN = re.compile(r"^not run \((.+)\)$")
_FILE = re.compile(r"^file ([\w./-]+)$")


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language, its code and the directive before it, if any."""

    page: str  # path relative to the repository root
    line: int  # 1-based line of the first line of code
    language: str
    code: str
    directive: str | None

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def not_run_reason(self) -> str | None:
        match = _NOT_RUN.match(self.directive or "")
        return match.group(1).strip() if match else None

    @property
    def file_name(self) -> str | None:
        match = _FILE.match(self.directive or "")
        return match.group(1) if match else None

    @property
    def runs(self) -> bool:
        return self.language in PYTHON and self.directive is None


def doc_pages() -> list[Path]:
    """Returns README.md and every Markdown page under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(page: Path) -> list[Block]:
    """Returns the fenced code blocks of a page, each with the ``<!-- example: ... -->`` line before it."""
    lines = page.read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        before = next((line.strip() for line in reversed(lines[:i]) if line.strip()), "")
        directive = _DIRECTIVE.match(before)
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        found.append(
            Block(
                page=str(page.relative_to(ROOT)),
                line=i + 2,
                language=fence.group(1).lower(),
                code="\n".join(lines[i + 1 : end]) + "\n",
                directive=directive.group(1) if directive else None,
            )
        )
        i = end + 1
    return found


def directives(page: Path) -> list[tuple[int, str]]:
    """Returns every ``<!-- example: ... -->`` line of a page, with its line number."""
    return [
        (n, match.group(1))
        for n, line in enumerate(page.read_text().splitlines(), 1)
        if (match := _DIRECTIVE.match(line.strip()))
    ]


def run_page(page_blocks: list[Block], workdir: Path) -> dict:
    """Writes the page's ``file`` blocks into ``workdir``, then runs its Python blocks in order in one
    namespace; returns that namespace. A failing block raises, its traceback naming the page and line."""
    for block in page_blocks:
        if block.file_name:
            (workdir / block.file_name).write_text(block.code)
    namespace: dict = {"__name__": "__doc_example__"}
    for block in page_blocks:
        if block.runs:
            padded = "\n" * (block.line - 1) + block.code  # tracebacks give the line in the page
            exec(compile(padded, block.page, "exec"), namespace)
    return namespace
