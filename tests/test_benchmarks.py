"""The benchmark scripts as a user meets them: ``--help``, where results go, what the plot says.

No benchmark is measured here (that takes minutes and belongs to
``benchmarks/run_all.py``): the scripts are run as subprocesses with ``--help``,
``run_all.py`` runs only its quickest member (``parse_events.py``, in-process
timing of a few parses, no server) into a temporary folder, and the plot's
wording is read from ``peers.py`` without drawing it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if not p.name.startswith("_"))
COMMITTED_PLOT = BENCH / "per_turn_latency.png"


def bench_env() -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_script(name: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=bench_env(),
        cwd=ROOT,
        check=False,
    )


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_help_test_sees_the_benchmark_scripts() -> None:
    """The --help test below is parametrized over every script, the known ones included."""
    assert {
        "emulator_throughput.py",
        "fallback_cost.py",
        "parse_events.py",
        "peers.py",
        "run_all.py",
        "session_vs_bare.py",
    } <= set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_answers_help_without_running(name: str) -> None:
    """`--help` prints a usage and exits 0 before any measurement starts."""
    result = run_script(name, "--help", timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {name} ")
    for sign_of_a_run in ("Machine:", "goal <=", "==="):
        assert sign_of_a_run not in result.stdout


def test_run_all_writes_to_its_output_folder_and_keeps_the_committed_plot(
    tmp_path: Path,
) -> None:
    """run_all.py --out DIR puts the table and each script's rows in DIR; the tracked plot stays."""
    before = digest(COMMITTED_PLOT)
    skip: List[str] = []
    for name in ("emulator_throughput", "session_vs_bare", "fallback_cost", "peers"):
        skip += ["--skip", name]
    out = tmp_path / "results"
    result = run_script("run_all.py", *skip, "--quiet", "--out", str(out), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (out / "parse_events.txt").is_file()
    table = (out / "results.txt").read_text(encoding="utf-8")
    assert "structure / json.loads (text delta)" in table
    assert f"Results: {out}" in result.stdout
    assert digest(COMMITTED_PLOT) == before


def test_run_all_defaults_to_a_gitignored_folder() -> None:
    """The default output folder is benchmarks/out/, which git ignores; --update-plot exists."""
    result = run_script("run_all.py", "--help", timeout=30)
    text = " ".join(result.stdout.split())
    assert "benchmarks/out" in text
    assert "--update-plot" in text
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "benchmarks/out/" in ignored


def test_peers_plot_goes_to_the_output_folder_by_default() -> None:
    """peers.py draws into benchmarks/out/ unless told --plot PATH."""
    result = run_script("peers.py", "--help", timeout=30)
    text = " ".join(result.stdout.split())
    assert "--plot PATH" in text
    assert "benchmarks/out/per_turn_latency.png" in text


def test_the_plot_names_the_official_clients_and_how_to_read_it() -> None:
    """Labels say "openai SDK ..." for the official clients; the title says lower is better."""
    code = (
        "import peers\n"
        "print(peers.OFFICIAL_WS)\n"
        "print(peers.OFFICIAL_SESSION)\n"
        "print(peers.OFFICIAL_HTTP)\n"
        "print(peers.plot_title(20, 9, 'a machine'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        env=bench_env(),
        cwd=BENCH,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    ws, session, http, *title = result.stdout.splitlines()
    assert ws == "openai SDK WebSocket connection"
    assert session == "openai SDK session helper"
    assert http == "openai SDK HTTP"
    heading = " ".join(title)
    assert "lower is better" in heading
    assert "9 rounds" in heading
    assert "20-turn" in heading
