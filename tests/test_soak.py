"""The soak script of benchmarks/ on a small scale: it must exit 0 (no wrong, duplicated,
untyped or unanswered answer among requests without a fault of their own)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_small_soak_answers_every_unfaulted_request() -> None:
    """8 threads x 40 requests, 10 % faults, sends and streams: every count is right."""
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "soak.py"),
            "--threads",
            "8",
            "--requests",
            "40",
            "--fault-rate",
            "0.1",
            "--seed",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    counts = dict(
        line.split() for line in result.stdout.splitlines()[1:8] if len(line.split()) == 2
    )
    assert counts["requests"] == "320"
    for name in ("wrong", "duplicates", "untyped", "unfaulted_failed", "unfaulted_stream_cut"):
        assert counts[name] == "0", result.stdout
