"""The pytest plugin (``openai_ws.pytest_plugin``) as its users meet it: in their own test folder.

Each test writes a user's test files into a temporary directory, outside this
repository (so none of its conftest.py or settings apply), and runs
``python -m pytest`` there in a subprocess: the README's complete user test,
``tests/plugin_user/fixtures_check.py`` (every fixture), a run without aiohttp,
a misused marker, and, when the package is installed with its entry points, a
run that relies on pytest finding the plugin by itself. Every emulator those
runs start is stopped by the plugin before the subprocess exits.
"""

from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Dict, List

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
ENTRY_POINT = "openai_ws.pytest_plugin"
LOAD = ["-p", ENTRY_POINT]
"""Load the plugin explicitly: harmless when the entry point already loaded it."""

_USER_TEST = re.compile(
    r"<!-- pytest-file: (?P<path>\S+) -->\s*\n```python\n(?P<code>.*?)\n```", re.S
)


def readme_user_tests() -> Dict[str, str]:
    """The README's complete user test files: path -> code."""
    text = README.read_text(encoding="utf-8")
    return {m.group("path"): m.group("code") + "\n" for m in _USER_TEST.finditer(text)}


def run_user_tests(
    folder: Path, files: Dict[str, str], args: List[str]
) -> subprocess.CompletedProcess[str]:
    """Write ``files`` under ``folder`` and run ``python -m pytest`` there, as a user would."""
    for name, code in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PYTEST_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=folder,
        env=env,
        check=False,
    )


def entry_point_installed() -> bool:
    """Whether the installed openai-ws distribution declares the pytest11 entry point."""
    try:
        points = metadata.distribution("openai-ws").entry_points
    except metadata.PackageNotFoundError:
        return False
    return any(p.group == "pytest11" and p.name == ENTRY_POINT for p in points)


def test_readme_user_test_passes_in_its_own_folder(tmp_path: Path) -> None:
    """The README's `tests/test_my_agent.py` passes as written, in a folder of its own."""
    files = readme_user_tests()
    assert list(files) == ["tests/test_my_agent.py"]
    result = run_user_tests(tmp_path, files, LOAD)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b[3-9] passed", result.stdout), result.stdout


def test_every_fixture_works_from_a_user_folder(tmp_path: Path) -> None:
    """openai_emulator, its marker, openai_ws_client, the env and session fixtures all work."""
    code = (ROOT / "tests" / "plugin_user" / "fixtures_check.py").read_text(encoding="utf-8")
    result = run_user_tests(tmp_path, {"tests/test_fixtures.py": code}, LOAD)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "9 passed" in result.stdout, result.stdout


def test_setup_cfg_registers_the_entry_point() -> None:
    """setup.cfg declares `openai_ws.pytest_plugin = openai_ws.pytest_plugin` under pytest11."""
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg", encoding="utf-8")
    declared = parser.get("options.entry_points", "pytest11").strip().splitlines()
    assert f"{ENTRY_POINT} = openai_ws.pytest_plugin" in [line.strip() for line in declared]


@pytest.mark.skipif(
    not entry_point_installed(),
    reason="the installed openai-ws predates the pytest11 entry point (reinstall it)",
)
def test_pytest_finds_the_plugin_by_itself(tmp_path: Path) -> None:
    """Installed, the plugin needs no -p: pytest loads it through the entry point."""
    files = readme_user_tests()
    result = run_user_tests(tmp_path, files, [])
    assert result.returncode == 0, result.stdout + result.stderr
    result = run_user_tests(tmp_path, files, ["-p", f"no:{ENTRY_POINT}"])
    assert "fixture 'openai_ws_client' not found" in result.stdout


def test_without_aiohttp_the_fixtures_say_what_to_install(tmp_path: Path) -> None:
    """Without aiohttp pytest still runs; a test using a fixture errors with the pip command."""
    files = {
        # Makes `import aiohttp` fail, as on a machine without the emulator extra.
        "conftest.py": "import sys\n\nsys.modules['aiohttp'] = None\n",
        "test_user.py": (
            "def test_plain():\n"
            "    assert True\n\n\n"
            "def test_with_the_emulator(openai_emulator):\n"
            "    raise AssertionError('never reached')\n"
        ),
    }
    result = run_user_tests(tmp_path, files, LOAD)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 passed, 1 error" in result.stdout
    assert "pip install 'openai-ws[emulator]'" in result.stdout
    assert "never reached" not in result.stdout


def test_a_misspelt_marker_option_is_a_clear_error(tmp_path: Path) -> None:
    """An unknown option in @pytest.mark.openai_emulator(...) names the option; no traceback."""
    files = {
        "test_user.py": (
            "import pytest\n\n\n"
            "@pytest.mark.openai_emulator(tttf=0.1)\n"
            "def test_typo(openai_emulator):\n"
            "    raise AssertionError('never reached')\n"
        ),
    }
    result = run_user_tests(tmp_path, files, [*LOAD, "--strict-markers"])
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 error" in result.stdout
    assert "@pytest.mark.openai_emulator: " in result.stdout
    assert "'tttf'" in result.stdout


def test_fixture_names_do_not_clash_with_this_suites() -> None:
    """The plugin's fixtures are all named openai_*; tests/conftest.py defines none of them."""
    plugin = (ROOT / "openai_ws" / "pytest_plugin.py").read_text(encoding="utf-8")
    names = re.findall(r"@pytest\.fixture(?:\([^)]*\))?\ndef (\w+)", plugin)
    assert sorted(names) == [
        "openai_emulator",
        "openai_emulator_env",
        "openai_emulator_session",
        "openai_ws_client",
    ]
    conftest = (ROOT / "tests" / "conftest.py").read_text(encoding="utf-8")
    assert not set(re.findall(r"\ndef (\w+)", conftest)) & set(names)
