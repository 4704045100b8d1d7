"""The benchmark scripts as a user meets them: ``--help``, where results go, what the plot says.

No benchmark is measured here (that takes minutes and belongs to
``benchmarks/run_all.py``): the scripts are run as subprocesses with ``--help``,
``run_all.py`` runs only its quickest member (``parse_events.py``, in-process
timing of a few parses, no server) into a temporary folder, and the plot's
wording is read from ``peers.py`` without drawing it.
"""

from __future__ import annotations

import hashlib
import json
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
    for name in ("emulator_throughput", "session_vs_bare", "fallback_cost", "peers", "network"):
        skip += ["--skip", name]
    for name in (
        "import_time",
        "cpu_per_event",
        "memory",
        "pool_throughput",
        "spill_stall",
        "telemetry_cost",
    ):
        # minutes or tens of seconds each: tiny runs below
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


# -- network.py and netproxy.py (issue 13 section 1) -----------------------------------------

COMMITTED_RTT_PLOT = BENCH / "per_turn_latency_rtt.png"


def test_the_help_test_sees_the_network_benchmark_and_its_proxy() -> None:
    """network.py and netproxy.py are among the scripts whose --help is checked."""
    assert {"network.py", "netproxy.py"} <= set(SCRIPTS)


def test_network_draws_into_the_output_folder_and_run_all_can_update_its_plot() -> None:
    """network.py draws into benchmarks/out/ by default; run_all --update-plot names its copy."""
    text = " ".join(run_script("network.py", "--help", timeout=30).stdout.split())
    assert "benchmarks/out/per_turn_latency_rtt.png" in text
    assert "--quick" in text
    text = " ".join(run_script("run_all.py", "--help", timeout=30).stdout.split())
    assert "benchmarks/per_turn_latency_rtt.png" in text
    assert COMMITTED_RTT_PLOT.is_file(), "the README shows benchmarks/per_turn_latency_rtt.png"


def test_a_tiny_network_run_prints_one_row_per_client_and_a_goal_per_profile(
    tmp_path: Path,
) -> None:
    """--quick with 2 turns and a 50 ms TTFT: the table, the savings line and the goal rows."""
    out = tmp_path / "network.json"
    plot = tmp_path / "rtt.png"
    result = run_script(
        "network.py",
        "--quick",
        "--turns",
        "2",
        "--ttft",
        "50",
        "--clients",
        "session,new,pooled",
        "--no-official",
        "--json",
        str(out),
        "--plot",
        str(plot),
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Machine: ")
    header = next(line for line in lines if "loopback" in line and "80 ms" in line)
    assert "cross-continent" in header
    for row in ("openai_ws Session", "HTTP new conn/turn", "HTTP pooled (requests)"):
        line = next(line for line in lines if line.startswith(row))
        assert line.count("x)") == 2, line  # "ms (ratio x)" at both RTTs
    saving = next(line for line in lines if line.startswith("Session vs new conn/turn"))
    assert saving.count("% lower") == 2, saving
    assert "SKIPPED" not in result.stdout.replace("SKIPPED plot", "")
    rows = json.loads(out.read_text(encoding="utf-8"))["goals"]
    goals = {row["name"]: row for row in rows if row["op"] == "<="}
    assert set(goals) == {"[loopback] Session / ideal", "[80 ms (cross-continent)] Session / ideal"}
    for row in goals.values():
        assert row["bound"] == 1.03
        assert isinstance(row["value"], float) and row["value"] > 0.5
    if plot.exists():
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert "SKIPPED plot: matplotlib is not installed" in result.stdout


def test_the_network_plot_says_what_it_shows_and_how_to_read_it() -> None:
    """The title names the loop, TLS, the proxy, the rounds, and says lower is better."""
    code = "import network\nprint(network.plot_title(20, 3, 'a machine'))\n"
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
    heading = " ".join(result.stdout.split())
    for words in ("20-turn tool-calling loop", "TLS", "proxy", "3 rounds", "lower is better"):
        assert words in heading


# -- import_time.py, cpu_per_event.py, memory.py (issue 13 section 3) ------------------------


def test_the_help_test_sees_the_cost_benchmarks_and_run_all_runs_them() -> None:
    """The three cost scripts are checked for --help, and run_all.py lists each as a member."""
    assert {"import_time.py", "cpu_per_event.py", "memory.py"} <= set(SCRIPTS)
    text = " ".join(run_script("run_all.py", "--help", timeout=30).stdout.split())
    for name in ("import_time", "cpu_per_event", "memory"):
        assert name in text


def _rows(path: Path) -> Dict[str, Dict[str, object]]:
    return {row["name"]: row for row in json.loads(path.read_text(encoding="utf-8"))["goals"]}


def test_a_tiny_import_time_run_reports_the_package_and_the_client(tmp_path: Path) -> None:
    """--runs 1: both snippets timed; the ratio row is n/a without the official package."""
    out = tmp_path / "import_time.json"
    result = run_script("import_time.py", "--runs", "1", "--json", str(out), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    for snippet in ("import openai_ws ", "from openai_ws import OpenAI "):
        line = next(line for line in result.stdout.splitlines() if line.startswith(snippet))
        assert line.count(" ms") == 2, line
    assert "openai_ws.events" in result.stdout  # the heaviest modules are listed
    rows = _rows(out)
    goal = rows["import openai_ws / import openai"]
    assert goal["op"] == "<=" and goal["bound"] == 0.12
    official = "`import openai` is skipped" not in result.stdout
    assert isinstance(goal["value"], float) if official else goal["value"] is None
    assert rows["from openai_ws import OpenAI / import openai"]["op"] == "info"


def test_a_tiny_cpu_per_event_run_gives_both_ratios(tmp_path: Path) -> None:
    """200 deltas, 2 streams of 40, one round, no callgrind: two positive ratios, goal 1.5,
    and the same two against the stricter floor (information)."""
    out = tmp_path / "cpu.json"
    result = run_script(
        "cpu_per_event.py",
        "--events",
        "200",
        "--concurrent-events",
        "40",
        "--streams",
        "2",
        "--rounds",
        "1",
        "--no-callgrind",
        "--json",
        str(out),
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "us CPU per frame" in result.stdout
    rows = _rows(out)
    goals = {
        "CPU/event, 1 stream: client / (json.loads + typing)",
        "CPU/event, 2 streams: client / (json.loads + typing)",
    }
    stricter = {
        "CPU/event, 1 stream: client / (C scanner + typing)",
        "CPU/event, 2 streams: client / (C scanner + typing)",
    }
    assert set(rows) == goals | stricter
    for name in goals:
        assert rows[name]["bound"] == 1.5
    for name in stricter:  # information: the floor decoded as the client's reader does
        assert rows[name]["op"] == "info"
        # The stricter floor is cheaper, so the same client cost is a larger ratio.
        goal_name = name.replace("(C scanner + typing)", "(json.loads + typing)")
        assert rows[name]["value"] > rows[goal_name]["value"]
    for row in rows.values():
        assert isinstance(row["value"], float) and row["value"] > 0.5


def test_a_tiny_memory_run_reports_idle_and_per_request(tmp_path: Path) -> None:
    """1 and 2 requests held 1 s: an idle row, one row per N and the slope, all info."""
    out = tmp_path / "memory.json"
    result = run_script(
        "memory.py", "--inflight", "1,2", "--ttft", "1", "--json", str(out), timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = _rows(out)
    assert set(rows) == {
        "idle session RSS (MiB over a client)",
        "memory per in-flight request, N=1",
        "memory per in-flight request, N=2",
        "memory per extra in-flight request",
    }
    assert all(row["op"] == "info" for row in rows.values())
    assert "KiB" in str(rows["memory per in-flight request, N=2"]["detail"])


def test_a_tiny_pool_run_gives_both_throughput_ratios(tmp_path: Path) -> None:
    """34 requests at concurrency 32 (two sockets' worth): both ratios, with their goals."""
    out = tmp_path / "pool.json"
    result = run_script(
        "pool_throughput.py",
        "--requests", "34",
        "--concurrency", "32",
        "--ttft", "0.05",
        "--tokens", "2",
        "--rounds", "1",
        "--json", str(out),
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    rows = _rows(out)
    pool = rows["map(concurrency=32) over 4 sockets / ideal"]
    single = rows["4 sockets / 1 socket (same map)"]
    assert (pool["op"], pool["bound"], single["op"], single["bound"]) == (">=", 0.9, ">=", 3.5)
    assert isinstance(pool["value"], float) and pool["value"] > 0
    assert isinstance(single["value"], float) and single["value"] > 0
    assert "max_sockets=4: " in result.stdout and "2 socket(s) opened" in result.stdout


def test_a_tiny_spill_stall_run_gives_its_ratio(tmp_path: Path) -> None:
    """One round at 40 ms RTT: the ratio of a turn during an extra socket's handshake."""
    out = tmp_path / "spill.json"
    result = run_script(
        "spill_stall.py", "--rtt", "0.04", "--rounds", "1", "--json", str(out), timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = _rows(out)
    (row,) = rows.values()
    assert (row["op"], row["bound"]) == ("<=", 1.1)
    assert row["value"] is not None and row["value"] > 0


def test_a_tiny_fallback_cost_run_times_the_silent_close_path(tmp_path: Path) -> None:
    """Two samples over plain HTTP: the silent-close path is timed (its close is seen in
    the package's log), not skipped as "another recovery path"."""
    out = tmp_path / "fallback.json"
    result = run_script(
        "fallback_cost.py", "--samples", "2", "--no-tls", "--json", str(out), timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "another recovery path" not in result.stdout, result.stdout
    rows = _rows(out)
    row = rows["[http] silent close -> answer / plain HTTP"]
    assert row["value"] is not None and (row["op"], row["bound"]) == ("<=", 1.5)
