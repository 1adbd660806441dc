"""The benchmarks' results log: machine facts, the command line of a run, and ``record``, which
prints a run's result and appends it to ``results.jsonl``."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_JSONL = BENCH_DIR / "results.jsonl"


def machine_facts() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load1, load5, load15 = os.getloadavg()
    return {
        "cpu": cpu,
        "cores": psutil.cpu_count(logical=True),
        "mem_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg_start": [round(load1, 2), round(load5, 2), round(load15, 2)],
        "python": platform.python_version(),
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
    }


def command_line() -> str:
    script = Path(sys.argv[0]).resolve()
    name = script.relative_to(REPO).as_posix() if script.is_relative_to(REPO) else sys.argv[0]
    argv = [name, *sys.argv[1:]]
    return ".venv/bin/python " + " ".join(argv)


def record(name: str, facts: dict[str, Any], result: dict[str, Any], body_md: str) -> None:
    """Print the JSON result line and the run's Markdown summary, and append the line to
    ``results.jsonl`` (the raw log). ``RESULTS.md`` is the current table, updated by hand from
    these lines when a number it shows changes."""
    line = {"bench": name, "command": command_line(), "machine": facts, **result}
    print(json.dumps(line, sort_keys=False))
    with RESULTS_JSONL.open("a") as f:
        f.write(json.dumps(line) + "\n")
    la = facts["load_avg_start"]
    print(
        f"\n## {name} — {facts['date_utc']} UTC\n\n`{line['command']}`\n\n"
        f"Machine: {facts['cpu']}, {facts['cores']} cores, {facts['mem_gb']} GB, "
        f"load average at start {la[0]} / {la[1]} / {la[2]} (1/5/15 min), "
        f"Python {facts['python']}."
        + (f" Code: {facts['code']}." if facts.get("code") else "")
        + "\n\n"
        + body_md.rstrip()
    )


def last_result(name: str, **match: Any) -> dict[str, Any] | None:
    """The newest recorded result of bench ``name`` whose top-level fields equal ``match``."""
    if not RESULTS_JSONL.exists():
        return None
    found = None
    for line in RESULTS_JSONL.read_text().splitlines():
        with contextlib.suppress(ValueError):
            row = json.loads(line)
            if row.get("bench") == name and all(row.get(k) == v for k, v in match.items()):
                found = row
    return found
