"""The README as a new user meets it: every Python block runs, every link and file exists.

Each ```python block of README.md runs as a script in a fresh interpreter,
in a temporary directory, with this checkout importable and the environment a
user would have after ``export OPENAI_BASE_URL=<emulator> OPENAI_API_KEY=<its
key>``: a block written for the real API answers from the ``emulator`` fixture
instead, so none of them needs a key or the network. Exceptions are marked in
the README itself by an HTML comment on the line before the block:
``<!-- not-run: why -->`` (kept rare), or ``<!-- pytest-file: PATH -->`` for a
user's test file, which ``tests/test_plugin.py`` runs with pytest. A block
that imports Ray is skipped when Ray is not installed (the ``test`` extra
installs it wherever Ray has wheels), one that uses ``match`` on Python < 3.10.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Iterator, List, NamedTuple, Optional, Tuple

import pytest

if TYPE_CHECKING:
    from openai_ws.emulator import Emulator

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MAX_NOT_RUN = 2
"""Blocks the README may exempt with ``<!-- not-run: ... -->``: exceptions stay rare."""

_MARK = re.compile(r"<!--\s*(not-run|pytest-file):\s*(.*?)\s*-->")


class Block(NamedTuple):
    """One fenced code block of the README."""

    line: int
    language: str
    code: str
    mark: Optional[Tuple[str, str]]
    """``(kind, text)`` of the HTML comment just before the block, if any."""


def readme_blocks(text: str) -> List[Block]:
    """Every fenced block of ``text`` with its language and the mark before it."""
    blocks: List[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[index])
        if not fence:
            index += 1
            continue
        start = index
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        previous = next((lines[i] for i in range(start - 1, -1, -1) if lines[i].strip()), "")
        mark = _MARK.search(previous)
        blocks.append(
            Block(
                line=start + 1,
                language=fence.group(1),
                code="\n".join(lines[start + 1 : end]) + "\n",
                mark=(mark.group(1), mark.group(2)) if mark else None,
            )
        )
        index = end + 1
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))
PYTHON = [b for b in BLOCKS if b.language == "python"]
RUNNABLE = [b for b in PYTHON if b.mark is None]


@pytest.fixture
def user_env(emulator: Emulator) -> Iterator[Dict[str, str]]:
    """The environment of a user who pointed OPENAI_BASE_URL/OPENAI_API_KEY at the emulator."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["OPENAI_BASE_URL"] = emulator.base_url
    env["OPENAI_API_KEY"] = emulator.api_key
    yield env


def test_the_readme_has_python_blocks_to_run() -> None:
    """The extraction finds the README's Python blocks (the tour and the emulator at least)."""
    assert len(RUNNABLE) >= 3
    assert any("Emulator(" in b.code for b in RUNNABLE)
    assert any("ws_session()" in b.code for b in RUNNABLE)


@pytest.mark.parametrize("block", RUNNABLE, ids=[f"README.md:{b.line}" for b in RUNNABLE])
def test_readme_python_block_runs(block: Block, user_env: Dict[str, str], tmp_path: Path) -> None:
    """The block runs as written, against the emulator, and exits 0."""
    if sys.version_info < (3, 10) and re.search(r"^\s*match \w", block.code, re.M):
        pytest.skip("`match` needs Python 3.10")
    if re.search(r"^import ray$", block.code, re.M) and importlib.util.find_spec("ray") is None:
        pytest.skip("the block needs Ray, which the test extra installs where Ray has wheels")
    script = tmp_path / "readme_block.py"
    script.write_text(block.code, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=user_env,
        check=False,
    )
    assert result.returncode == 0, f"README.md line {block.line}:\n{result.stderr}"


def test_blocks_not_run_still_compile() -> None:
    """A block exempt from running is still valid Python of this version."""
    for block in PYTHON:
        if block.mark and block.mark[0] == "not-run":
            compile(block.code, f"README.md:{block.line}", "exec")


def test_exceptions_are_marked_and_rare() -> None:
    """Blocks not run here carry a reason; at most MAX_NOT_RUN are exempt."""
    not_run = [b for b in PYTHON if b.mark and b.mark[0] == "not-run"]
    assert len(not_run) <= MAX_NOT_RUN
    for block in not_run:
        assert block.mark is not None and len(block.mark[1]) > 10, block.line
    pytest_files = [b for b in PYTHON if b.mark and b.mark[0] == "pytest-file"]
    assert [b.mark[1] for b in pytest_files if b.mark] == ["tests/test_my_agent.py"]


# -- install commands (mypy must find the package) -------------------------------------


def _marked_commands(name: str) -> List[str]:
    text = README.read_text(encoding="utf-8")
    found = re.search(rf"<!-- {name} -->\n```\n(.*?)\n```\n<!-- /{name} -->", text, re.S)
    assert found, f"no <!-- {name} --> block"
    return found.group(1).splitlines()


@pytest.mark.parametrize("name", ["example-command", "test-command"])
def test_install_commands_are_ones_mypy_can_follow(name: str) -> None:
    """Each marked command is one line whose editable install mypy can follow (not the hook)."""
    lines = _marked_commands(name)
    assert len(lines) == 1
    assert "pip install -e " in lines[0]
    assert "--config-settings editable_mode=strict" in lines[0]
    assert "python3 -m venv --upgrade-deps .venv" in lines[0]


def test_example_command_forces_the_emulator() -> None:
    """The README's example command runs the example with --emulator (no real API by mistake)."""
    (line,) = _marked_commands("example-command")
    assert line.endswith("examples/websocket_session.py --emulator")


def test_ci_type_checks_a_user_script_against_the_installed_package() -> None:
    """.ci/run runs mypy --strict on tests/typecheck/user_script.py from outside the checkout."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "tests/typecheck/user_script.py" in ci
    assert "mypy --strict" in ci
    assert (ROOT / "tests" / "typecheck" / "user_script.py").is_file()


# -- links, files, stale references --------------------------------------------------------

# Spelt in pieces so that this file does not match itself.
STALE = ("DESIGN" + ".md", "PROTOCOL" + ".md", "the resilience" + " issue", "(" + 'issue "')
"""Names of documents that are not in the repository, and pointers into issue threads."""

_TEXT_SUFFIXES = (".py", ".md", ".cfg", ".toml", ".txt")


def stale_references(root: Path) -> List[str]:
    """``path:line: text`` of every stale reference under ``root`` (README, docs, code, tests)."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".") and d not in ("build", "dist") and not d.endswith("egg-info")
        )
        for name in sorted(files):
            if not name.endswith(_TEXT_SUFFIXES):
                continue
            path = Path(folder) / name
            relative = path.relative_to(root).as_posix()
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if any(stale in line for stale in STALE):
                    found.append(f"{relative}:{number}: {line.strip()}")
    return found


def test_the_stale_reference_check_finds_them(tmp_path: Path) -> None:
    """The scanner reports a planted reference to a missing document and to an issue title."""
    planted = '"""Done (' + 'issue "Session")."""'
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "x.md").write_text("see " + "DESIGN" + ".md\nfine\n", encoding="utf-8")
    (tmp_path / "m.py").write_text(planted + "\n", encoding="utf-8")
    assert sorted(stale_references(tmp_path)) == [
        "docs/x.md:1: see " + "DESIGN" + ".md",
        f"m.py:1: {planted}",
    ]


def test_no_stale_references() -> None:
    """No file points at DESIGN/PROTOCOL documents or issue threads: docs/ holds the facts."""
    assert stale_references(ROOT) == []


def test_relative_links_of_the_readme_and_docs_exist() -> None:
    """Every relative link and image of README.md and docs/*.md names a file that exists."""
    missing = []
    for page in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            if not (page.parent / target.split("#")[0]).exists():
                missing.append(f"{page.relative_to(ROOT)}: {target}")
    assert missing == []


def test_license_is_mit_as_the_metadata_says() -> None:
    """LICENSE is the MIT text with the project's copyright line; setup.cfg ships it."""
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert "Copyright (c) the openai_ws authors" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS"' in text
    cfg = (ROOT / "setup.cfg").read_text(encoding="utf-8")
    assert "license = MIT" in cfg
    assert "license_files = LICENSE" in cfg
