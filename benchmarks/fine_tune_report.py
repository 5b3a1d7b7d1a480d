"""Fine-tuning vs retraining from scratch in the active-learning loop: one table from two simulation runs.

    .venv/bin/python benchmarks/fine_tune_report.py --scratch /tmp/ft_scratch --fine-tune /tmp/ft_finetune
        [--scratch-log FILE] [--fine-tune-log FILE] [--dataset flipkart] [--out benchmarks/results/fine_tune.md]

Each folder is the ``--out`` of a ``benchmarks/active_learning.py`` run (one seed, one strategy), the second
with ``--fine-tune EPOCHS``; this reads their ``.runs.json`` (F1 and training seconds per round) and
their report's first line (the command), and writes the table. A run stopped before its last round
has no ``.runs.json``: pass its log (the simulation's stdout) with ``--scratch-log``/``--fine-tune-log``
and the rounds it logged are read from there. Only the rounds both runs finished are compared. The
discussion is added by hand.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


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


def read_run(folder: Path, dataset: str, log: Path | None) -> tuple[dict[str, Any] | None, dict[str, Any], str]:
    """(settings or None when read from a log, the one run, the command line) of a simulation's output folder."""
    first = (folder / f"active_learning_{dataset}.md").read_text().splitlines()[2]
    command = first.split("`")[1] if first.count("`") >= 2 else "?"
    saved = folder / f"active_learning_{dataset}.runs.json"
    if log is not None:
        return None, run_from_log(log), command
    if not saved.is_file():
        raise SystemExit(f"error: {saved} not found; pass the --out folder of a benchmarks/active_learning.py run "
                         "(or, for a run stopped early, its log)")
    kept = json.loads(saved.read_text())
    runs = [r for r in kept["runs"] if r["strategy"] != "ceiling"]
    if len(runs) != 1:
        raise SystemExit(f"error: expected one (seed, strategy) run in {saved}, found {len(runs)}")
    return kept["settings"], runs[0], command


def table(scratch: dict[str, Any], tuned: dict[str, Any]) -> list[str]:
    lines = ["| round | labels (scratch / fine-tune) | F1 scratch | F1 fine-tune | difference | seconds scratch "
             "| seconds fine-tune |", "|---|---|---|---|---|---|---|"]
    shared = min(len(scratch["f1"]), len(tuned["f1"]))
    scratch = {**scratch, "f1": scratch["f1"][:shared], "seconds": scratch["seconds"][:shared - 1]}
    tuned = {**tuned, "f1": tuned["f1"][:shared], "seconds": tuned["seconds"][:shared - 1]}
    for k, (f_s, f_t) in enumerate(zip(scratch["f1"], tuned["f1"])):
        s_s = "start model" if k == 0 else f"{scratch['seconds'][k - 1]:.0f}"
        s_t = "(same)" if k == 0 else f"{tuned['seconds'][k - 1]:.0f}" + (" (from scratch)" if k == 1 else "")
        lines.append(f"| {k} | {scratch['labels'][k]} / {tuned['labels'][k]} | {f_s:.4f} | {f_t:.4f} | "
                     f"{round(f_t - f_s, 4) or 0.0:+.4f} | {s_s} | {s_t} |")
    later_s, later_t = scratch["seconds"][1:], tuned["seconds"][1:]
    if later_s and later_t:
        mean_s, mean_t = sum(later_s) / len(later_s), sum(later_t) / len(later_t)
        lines += ["", f"Rounds 2-{len(scratch['seconds'])}: mean training time {mean_s:.0f} s from scratch, "
                      f"{mean_t:.0f} s fine-tuned ({mean_t / mean_s:.0%}; {mean_t / tuned['seconds'][0]:.0%} of the "
                      f"fine-tune run's own round 1 from scratch, {tuned['seconds'][0]:.0f} s); total over all rounds "
                      f"{sum(scratch['seconds']) / 60:.1f} vs {sum(tuned['seconds']) / 60:.1f} min. Final F1 "
                      f"{scratch['f1'][-1]:.4f} vs {tuned['f1'][-1]:.4f} ({tuned['f1'][-1] - scratch['f1'][-1]:+.4f})."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scratch", type=Path, required=True)
    parser.add_argument("--fine-tune", type=Path, required=True)
    parser.add_argument("--scratch-log", type=Path, default=None)
    parser.add_argument("--fine-tune-log", type=Path, default=None)
    parser.add_argument("--dataset", default="flipkart")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fine_tune.md")
    args = parser.parse_args()
    s_settings, scratch, s_cmd = read_run(args.scratch, args.dataset, args.scratch_log)
    t_settings, tuned, t_cmd = read_run(args.fine_tune, args.dataset, args.fine_tune_log)
    # settings are compared when both runs finished; a logged run is checked by its command line instead
    differ = [] if s_settings is None or t_settings is None else sorted(
        k for k in set(s_settings) | set(t_settings) if k != "fine_tune" and s_settings.get(k) != t_settings.get(k))
    strip = re.compile(r" --(fine-tune \d+|out \S+|rounds \d+)")
    if strip.sub("", s_cmd) != strip.sub("", t_cmd):
        differ.append("command line (beyond --fine-tune, --out, --rounds)")
    epochs = re.search(r"--fine-tune (\d+)", t_cmd)
    if differ or scratch["seed"] != tuned["seed"] or scratch["strategy"] != tuned["strategy"]:
        raise SystemExit(f"error: the two runs differ in more than --fine-tune: {differ}, seed/strategy "
                         f"{scratch['seed']}/{scratch['strategy']} vs {tuned['seed']}/{tuned['strategy']}")
    lines = [f"# Fine-tuning vs retraining from scratch in the active-learning loop ({args.dataset})", "",
             f"Generated by `.venv/bin/python benchmarks/fine_tune_report.py {' '.join(sys.argv[1:])}` from:", "",
             f"- scratch: `{s_cmd}`", f"- fine-tune: `{t_cmd}`", "",
             f"Seed {scratch['seed']}, strategy `{scratch['strategy']}`; round 1 of the fine-tune run trains from "
             f"scratch, every later round fine-tunes the previous round's model for {epochs[1] if epochs else '?'} "
             "epoch(s) per member (`train_ensemble(init=previous)`). Seconds: `train_ensemble` only (featurising, "
             "out-of-fold copies, combiner, thresholds, refit), on 2 shared CPU cores under `nice -n 15`.", "",
             *([f"The scratch run was stopped after round {len(scratch['f1']) - 1} (its rounds read from its log); "
                "the table compares the rounds both runs finished.", ""] if scratch.get("from_log") else []),
             *([f"The fine-tune run was stopped after round {len(tuned['f1']) - 1} (its rounds read from its log).",
                ""] if tuned.get("from_log") else []),
             *table(scratch, tuned), "", "## Discussion", "", "DISCUSSION_PLACEHOLDER", ""]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
