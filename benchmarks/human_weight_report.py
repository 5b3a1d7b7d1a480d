"""The human-label weight and the rule-trust correction in the active-learning loop: one table and
one plot from several simulation runs that differ only in ``--human-weight`` and ``--correct-rules``.

    .venv/bin/python benchmarks/human_weight_report.py FOLDER... [--seeds 0] [--strategy stream]
        [--dataset flipkart] [--out benchmarks/results/human_weight.md]

Each FOLDER is the ``--out`` of a ``benchmarks/active_learning.py`` run; from a folder holding
several runs (the main report's) the runs of ``--seeds`` and ``--strategy`` are taken, and with
several seeds each column is their mean. Their other settings must be equal. The discussion is
added by hand.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.simulation_runs import read_run  # noqa: E402

VARIED = ("human_weight", "correct_rules")
LATE = 5  # the rounds from here on (1,000-2,000 labels at 200 a round) are the plateau the issue asks about


def label(settings: dict[str, Any]) -> str:
    corrected = "rules corrected" if settings["correct_rules"] else "rules as they are"
    return f"human x{settings['human_weight']:g}, {corrected}"


def mean_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The round-by-round mean of several seeds' runs (F1 and labels), as long as the shortest."""
    n = min(len(run["f1"]) for run in runs)
    return {"f1": [sum(run["f1"][k] for run in runs) / len(runs) for k in range(n)],
            "labels": [round(sum(run["labels"][k] for run in runs) / len(runs)) for k in range(n)],
            "per_seed": runs}


def late_mean(f1: list[float]) -> float:
    return sum(f1[LATE:]) / len(f1[LATE:])


def per_seed_table(columns: list[tuple[str, dict[str, Any]]], seeds: list[int]) -> list[str]:
    """Each seed's mean of the late rounds and final F1: whether an ordering holds seed by seed."""
    lines = [f"Per seed, mean of rounds {LATE}-{len(columns[0][1]['f1']) - 1} (final):", "",
             f"| seed | {' | '.join(name for name, _ in columns)} |", "|---|" + "---|" * len(columns)]
    for i, seed in enumerate(seeds):
        lines.append(f"| {seed} | " + " | ".join(
            f"{late_mean(run['per_seed'][i]['f1']):.4f} (final {run['per_seed'][i]['f1'][-1]:.4f})"
            for _, run in columns) + " |")
    return lines


def table(columns: list[tuple[str, dict[str, Any]]]) -> list[str]:
    lines = ["| round | labels | " + " | ".join(name for name, _ in columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for k in range(min(len(run["f1"]) for _, run in columns)):
        lines.append(f"| {k} | {columns[0][1]['labels'][k]} | "
                     + " | ".join(f"{run['f1'][k]:.4f}" for _, run in columns) + " |")
    late = [late_mean(run["f1"]) for _, run in columns]
    lines.append(f"| mean of rounds {LATE}-{len(columns[0][1]['f1']) - 1} | | "
                 + " | ".join(f"**{x:.4f}**" if x == max(late) else f"{x:.4f}" for x in late) + " |")
    return lines


def plot(columns: list[tuple[str, dict[str, Any]]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, run in columns:
        ax.plot(run["labels"], run["f1"], marker="o", markersize=3, label=name)
    ax.set_xlabel("human labels")
    ax.set_ylabel("test micro-F1")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds; each column is their mean")
    parser.add_argument("--strategy", default="stream")
    parser.add_argument("--dataset", default="flipkart")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "human_weight.md")
    args = parser.parse_args()
    try:
        seeds = [int(seed) for seed in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds expects comma-separated integers such as 0,1,2; received {args.seeds!r}")
    read = [[read_run(folder, args.dataset, seed=seed, strategy=args.strategy) for seed in seeds]
            for folder in args.folders]
    first = read[0][0][0] or {}  # without a log, read_run always returns the run's settings
    for folder, per_seed in zip(args.folders, read, strict=True):
        settings = per_seed[0][0] or {}
        differ = sorted(k for k in set(settings) | set(first)
                        if k not in VARIED and settings.get(k) != first.get(k))
        if differ:
            raise SystemExit(f"error: {folder} differs from {args.folders[0]} in more than {VARIED}: {differ}")
    columns = [(label(per_seed[0][0] or {}), mean_run([run for _, run, _ in per_seed])) for per_seed in read]
    commands = [per_seed[0][2] for per_seed in read]
    title = (f"{args.dataset}, seed {seeds[0]}" if len(seeds) == 1 else
             f"{args.dataset}, mean of seeds {', '.join(map(str, seeds))}") + f", strategy {args.strategy}"
    lines = [f"# The human-label weight and the rule-trust correction ({args.dataset})", "",
             f"Generated by `.venv/bin/python benchmarks/human_weight_report.py {' '.join(sys.argv[1:])}` from:", "",
             *[f"- {name}: `{command}`" for (name, _), command in zip(columns, commands, strict=True)], "",
             f"{title}; micro-F1 on the fixed test split after each round of labels. \"human xW\": every human-"
             "labelled product weighs W in training; \"rules corrected\": each rule label weighs the trust the "
             "human labels show in that rule (`retrain.job.training_weights(correct_rules=True)`, the "
             "retrain service's default).", "",
             *table(columns), "",
             *([*per_seed_table(columns, seeds), ""] if len(seeds) > 1 else []),
             f"![curves]({args.out.with_suffix('.png').name})", "",
             "## Discussion", "", "DISCUSSION_PLACEHOLDER", ""]
    plot(columns, args.out.with_suffix(".png"), title)
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
