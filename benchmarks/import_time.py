"""What does ``import openai_ws`` cost, next to ``import openai`` (the official package)?

Run from the repository root::

    python benchmarks/import_time.py [--runs 21] [--python PATH] [--json OUT]

Each snippet runs in ``--runs`` fresh interpreters, in alternating order, after
one warm-up run each (bytecode and page caches). A snippet's cost is the median
wall time of its process minus the median of ``python -c pass`` (interpreter
start and exit), and, to the side, the sum that ``python -X importtime``
reports for the imports the snippet adds to a bare start (no process noise).

* ``import openai_ws``: the package itself (the exceptions and the version;
  every other public name loads on first use). Goal: <= 0.12 of ``import openai``.
* ``from openai_ws import OpenAI``: what a program that names the client pays
  before its first request: the client, session, models and events, but still
  no websocket-client, ssl, requests, urllib3 or cattrs (those load on the
  first socket, HTTP call and event typed). Shown as an info row.
* ``import openai``: the official package, measured only if it imports with
  the interpreter used (``--python``). Install it only in a throw-away venv, with
  what openai_ws needs, and point ``--python`` at it::

      python -m venv /tmp/oaivenv
      /tmp/oaivenv/bin/pip install openai websocket-client attrs cattrs requests
      python benchmarks/import_time.py --python /tmp/oaivenv/bin/python

  (the checkout is put on ``PYTHONPATH``, so both packages are timed with the
  same interpreter). Never make it a dependency of this project.

It also prints the modules with the largest own import time under ``from
openai_ws import OpenAI`` (one ``-X importtime`` run): the floor, attrs and the
attrs classes of ``models``/``events``, shows there.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

from _common import REPO, Goal, load_note, machine_summary, print_goals, write_json

SCRIPT = "import_time"
GOAL = 0.12

SNIPPETS: Dict[str, str] = {
    "pass": "pass",
    "import openai_ws": "import openai_ws",
    "from openai_ws import OpenAI": "from openai_ws import OpenAI",
    "import openai": "import openai",
}


def _env() -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, env.get("PYTHONPATH")]))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # the warm-up run writes the bytecode caches
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env


def _run(
    python: str, code: str, env: Dict[str, str], importtime: bool = False
) -> Tuple[float, str]:
    """One fresh interpreter running ``code``: (wall seconds, stderr)."""
    command = [python, *(["-X", "importtime"] if importtime else []), "-c", code]
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{code!r} failed: {result.stderr.strip()[-300:]}")
    return elapsed, result.stderr


def parse_importtime(stderr: str) -> List[Tuple[str, int, int, int]]:
    """``(module, self us, cumulative us, depth)`` of each ``-X importtime`` line."""
    rows = []
    for line in stderr.splitlines():
        fields = line[len("import time:") :].split("|")
        if not line.startswith("import time:") or len(fields) != 3:
            continue
        self_us, cumulative, name = fields
        if not self_us.strip().isdigit():  # the header line
            continue
        stripped = name.lstrip(" ")
        depth = (len(name) - len(stripped) - 1) // 2
        rows.append((stripped, int(self_us), int(cumulative), depth))
    return rows


def top_level_us(stderr: str) -> int:
    """Microseconds of the top-level imports in one ``-X importtime`` report."""
    return sum(cumulative for _, _, cumulative, depth in parse_importtime(stderr) if depth == 0)


def importable(python: str, module: str, env: Dict[str, str]) -> bool:
    """Whether ``module`` imports with ``python``."""
    result = subprocess.run(
        [python, "-c", f"import {module}"], env=env, capture_output=True, check=False
    )
    return result.returncode == 0


def measure(
    python: str, snippets: Dict[str, str], runs: int, env: Dict[str, str]
) -> Tuple[Dict[str, List[float]], Dict[str, List[int]]]:
    """Wall seconds and ``-X importtime`` top-level microseconds of each snippet, ``runs`` each."""
    for code in snippets.values():  # warm-up: bytecode caches, page cache
        _run(python, code, env)
    wall: Dict[str, List[float]] = {name: [] for name in snippets}
    reported: Dict[str, List[int]] = {name: [] for name in snippets}
    names = list(snippets)
    for r in range(runs):
        for name in names if r % 2 == 0 else names[::-1]:
            wall[name].append(_run(python, snippets[name], env)[0])
            reported[name].append(top_level_us(_run(python, snippets[name], env, True)[1]))
    return wall, reported


def heaviest(python: str, code: str, env: Dict[str, str], count: int) -> List[Tuple[str, int]]:
    """The ``count`` modules with the largest own import time under ``code`` (one run)."""
    base = {name for name, *_ in parse_importtime(_run(python, "pass", env, True)[1])}
    rows = parse_importtime(_run(python, code, env, True)[1])
    own = sorted(((s, n) for n, s, _, _ in rows if n not in base), reverse=True)
    return [(name, us) for us, name in own[:count]]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="fresh processes per snippet")
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter for every snippet (one with `openai` installed, to compare)",
    )
    parser.add_argument("--json", metavar="OUT", help="write the goal rows here (run_all.py)")
    args = parser.parse_args(argv)
    env = _env()

    print(f"Machine: {machine_summary()}")
    print(f"Before: {load_note()}")
    print(f"Interpreter: {args.python}")
    snippets = dict(SNIPPETS)
    with_openai = importable(args.python, "openai", env)
    if not with_openai:
        del snippets["import openai"]
        print(
            "`import openai` is skipped: the official package does not import with this "
            "interpreter (install it in a throw-away venv and pass --python, see --help)"
        )
    wall, reported = measure(args.python, snippets, args.runs, env)
    base = statistics.median(wall["pass"])
    cost = {name: statistics.median(t) - base for name, t in wall.items() if name != "pass"}
    base_us = statistics.median(reported["pass"])
    print(
        f"\nms per snippet, median of {args.runs} fresh processes, minus `python -c pass` "
        f"({base * 1e3:.1f} ms); -X importtime: its top-level imports beyond a bare start"
    )
    print(f"{'snippet':<32} {'wall - pass':>12} {'-X importtime':>14}")
    for name, seconds in cost.items():
        imports_ms = (statistics.median(reported[name]) - base_us) / 1e3
        print(f"{name:<32} {seconds * 1e3:>9.1f} ms {imports_ms:>11.1f} ms")

    print("\nlargest own import times under `from openai_ws import OpenAI` (us, one run):")
    for name, us in heaviest(args.python, SNIPPETS["from openai_ws import OpenAI"], env, 12):
        print(f"  {us:>7}  {name}")

    goals: List[Goal] = []
    official = cost.get("import openai")
    for name, op in (("import openai_ws", "<="), ("from openai_ws import OpenAI", "info")):
        ratio = cost[name] / official if official else None
        detail = f"{cost[name] * 1e3:.1f} ms"
        if official:
            detail += f" vs {official * 1e3:.0f} ms"
        else:
            detail += " (openai not installed: see --help)"
        goals.append(Goal(SCRIPT, f"{name} / import openai", ratio, op, GOAL, detail=detail))
        if ratio is not None:
            suffix = f" (goal <= {GOAL})" if op == "<=" else ""
            print(f"\n{name} / import openai = {ratio:.3f}{suffix}")
    print_goals(goals, title="Goals")
    write_json(args.json, goals)
    return 0


if __name__ == "__main__":
    sys.exit(main())
