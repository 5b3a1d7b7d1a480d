"""Reading the runs of ``benchmarks/active_learning.py`` back: its ``.runs.json``, or the log of a run
stopped early. The reports that compare simulation runs (fine-tuning, the human-label weight) share it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

_START = re.compile(r"seed (\d+): start model .* test micro-F1 ([\d.]+) \((\d+)s\)")
_ROUND = re.compile(r"seed (\d+) (\w+) +round +(\d+): +(\d+) labels, F1 ([\d.]+) \((\d+)s")


def run_from_log(log: Path) -> dict[str, Any]:
    """The run as ``.runs.json`` holds it, from the rounds a (possibly cut-short) simulation logged."""
    start, rounds = None, []
    for line in log.read_text().splitlines():
        if (m := _START.search(line)) is not None:
            start = m
        elif (m := _ROUND.search(line)) is not None:
            rounds.append(m)
    if start is None or not rounds:
        raise SystemExit(f"error: no start model or round lines in {log}; pass the stdout of "
                         "benchmarks/active_learning.py")
    return {"seed": int(start[1]), "strategy": rounds[0][2], "f1": [float(start[2])] + [float(m[5]) for m in rounds],
            "labels": [0] + [int(m[4]) for m in rounds], "seconds": [float(m[6]) for m in rounds],
            "start_seconds": float(start[3]), "from_log": True}


def read_run(folder: Path, dataset: str, log: Path | None = None, *, seed: int | None = None,
             strategy: str | None = None) -> tuple[dict[str, Any] | None, dict[str, Any], str]:
    """(settings or None when read from a log, the one run, the command line) of a simulation's output
    folder; ``seed``/``strategy`` pick one run of a folder that holds several."""
    first = (folder / f"active_learning_{dataset}.md").read_text().splitlines()[2]
    command = first.split("`")[1] if first.count("`") >= 2 else "?"
    saved = folder / f"active_learning_{dataset}.runs.json"
    if log is not None:
        return None, run_from_log(log), command
    if not saved.is_file():
        raise SystemExit(f"error: {saved} not found; pass the --out folder of a benchmarks/active_learning.py run "
                         "(or, for a run stopped early, its log)")
    kept = json.loads(saved.read_text())
    runs = [r for r in kept["runs"] if r["strategy"] != "ceiling" and seed in (None, r["seed"])
            and strategy in (None, r["strategy"])]
    if len(runs) != 1:
        raise SystemExit(f"error: expected one (seed, strategy) run in {saved}, found {len(runs)}; "
                         "pick one with a seed and a strategy")
    return kept["settings"], runs[0], command
