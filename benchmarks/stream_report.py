"""The stream benchmark's report: benchmarks/results/stream.md and stream.png from measured results.

benchmarks/stream.py measures and calls :func:`write_report`; nothing here touches the stack.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from prodcat.settings import Settings  # noqa: E402

STAGES = ("parse", "dedup", "embed", "model", "documents", "elasticsearch", "milvus", "kafka")


def _range(r: dict) -> str:
    return f"**{r['eps']:.0f}** ({min(r['all_eps']):.0f}–{max(r['all_eps']):.0f})"


def _plot(out: Path, results: dict[str, dict], scaling: dict[str, dict[int, dict]], partitions: int,
          mode_partitions: int) -> None:
    """Left: the backlog drained over time per mode; right: events/s against the limit, 1 vs 2 workers."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [1.2, 1]})
    for mode, r in results.items():
        left.plot([t for t, _ in r["samples"]], [c for _, c in r["samples"]],
                  label="no-Faust limit" if mode == "limit" else mode, linestyle="--" if mode == "limit" else "-")
    left.set(xlabel="seconds since worker start", ylabel="products in Elasticsearch",
             title="Backlog drained by one process")
    left.legend()
    limit = results["limit"]["eps"]
    names = [m for m in results if m != "limit"]
    bars = right.bar(names, [results[m]["eps"] for m in names], color="tab:blue",
                     label=f"1 worker, {mode_partitions} partitions")
    for bar, mode in zip(bars, names):
        right.annotate(f"{results[mode]['eps'] / limit:.2f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                       ha="center", va="bottom", fontsize=8)
    for i, (mode, by_n) in enumerate(scaling.items()):
        x = len(names) + i
        first = i == 0  # one legend entry per colour
        right.bar([x - 0.2], [by_n[1]["eps"]], width=0.4, color="tab:cyan",
                  label=f"1 worker, {partitions} partitions" if first else None)
        right.bar([x + 0.2], [by_n[2]["eps"]], width=0.4, color="tab:green",
                  label=f"2 workers, {partitions} partitions" if first else None)
        right.annotate(f"x{by_n[2]['eps'] / by_n[1]['eps']:.2f}", (x + 0.2, by_n[2]["eps"]),
                       ha="center", va="bottom", fontsize=8)
    right.set_xticks(range(len(names) + len(scaling)),
                     names + [f"{m}\n{partitions} partitions" for m in scaling], fontsize=8)
    right.axhline(limit, color="black", linestyle="--", label=f"no-Faust limit ({limit:.0f})")
    right.set(ylabel="events/s (median)", title="Throughput; labels: ratio to the limit, 2/1 workers")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=100)


def write_report(out: Path, *, command: str, base: Settings, repeats: int, results: dict[str, dict],
                 scaling: dict[str, dict[int, dict]], partitions: int, loads: list[float], note: str = "") -> None:
    """Write ``out``.md and ``out``.png from the medians of one run.

    ``results``: per mode (``limit`` included) the median run's eps, all_eps, samples, rss_mb,
    ms_per_event and events, and for the worker modes the latency at half load; ``scaling``: per
    mode, per number of workers (1, 2), eps, all_eps and rss_mb; ``loads``: the 1-min load
    average before each throughput run; ``note``: a sentence of the operator's, printed as is.
    """
    _plot(out, results, scaling, partitions, base.topic_partitions)
    modes = [m for m in results if m != "limit"]
    limit = results["limit"]
    rows = "\n".join(
        f"| {m} | {r['events']} | {_range(r)} | {r['latency']['rate']:.0f} | {r['latency']['p50_ms']:.0f} | "
        f"{r['latency']['p99_ms']:.0f} | {r['latency']['done']}/{r['latency']['sent']} | "
        f"{max(r['rss_mb'], r['latency']['rss_mb']):.0f} | "
        + " | ".join(f"{r['ms_per_event'].get(s, 0):.2f}" for s in STAGES) + " |" for m, r in
        ((m, results[m]) for m in modes))
    ratio = ""
    if "passthrough" in results and "text" in results:
        ratio = (f"\nText pipeline / passthrough ceiling, medians of the same run: "
                 f"**{results['text']['eps'] / results['passthrough']['eps']:.2f}** (goal >= 0.6).\n")
    limit_rows = "\n".join(
        [f"| no-Faust limit | {limit['events']} | {_range(limit)} | 1.00 | {limit['rss_mb']:.0f} |"]
        + [f"| {m} | {results[m]['events']} | {_range(results[m])} | **{results[m]['eps'] / limit['eps']:.2f}** | "
           f"{max(results[m]['rss_mb'], results[m]['latency']['rss_mb']):.0f} |" for m in modes])
    scale_rows = "\n".join(
        f"| {m} | {_range(by_n[1])} | {_range(by_n[2])} | **{by_n[2]['eps'] / by_n[1]['eps']:.2f}** | "
        f"{by_n[1]['eps'] / limit['eps']:.2f} / {by_n[2]['eps'] / limit['eps']:.2f} |"
        for m, by_n in scaling.items())
    scale_section = f"""
## One vs two workers in one consumer group

A topic of {partitions} partitions, {limit['events']} Flipkart events; the workers are started first
and the backlog is published once the group is stable with every partition assigned (no rebalance
inside the timing); timed like above, median of {repeats} runs (range in brackets). Both workers
share the machine's {os.cpu_count()} cores with Kafka and Elasticsearch.

| mode | 1 worker events/s | 2 workers events/s | 2 workers / 1 worker | ratio to the limit (1 / 2 workers) |
|---|---|---|---|---|
{scale_rows}
""" if scaling else ""
    out.with_suffix(".md").write_text(f"""# Streaming throughput and latency

Command: `.venv/bin/python benchmarks/stream.py {command}`

One worker (batch {base.batch_size}, within {base.batch_within_s}s, topics of {base.topic_partitions} partitions) on this {os.cpu_count()}-core machine, sharing it
with Kafka {base.kafka_version} and Elasticsearch {base.es_version} run as local processes. Text modes
replay Flipkart products (30% dirtied); the image mode replays Myntra products with their photos
read from local files (fetch, EfficientNet-Lite0 embedding, Redis vector cache, Milvus Lite upsert;
the model is the text model, so the vectors go to Milvus, not into the decision). The vector cache
is emptied before every run: each photo is embedded (cold cache; the catalogue's repeated photos
still hit it). Throughput = a
backlog drained (from the first batch's output to the last, by the products.categorised
timestamps), median of {repeats} runs (range in brackets);
latency = producer timestamp of the raw event to that of its products.categorised message, at a
fixed offered load of half the median maximum. Stage times come from the worker's
/metrics histograms of the median run.

1-min load average before each throughput run: {min(loads):.1f}–{max(loads):.1f} (median
{sorted(loads)[len(loads) // 2]:.1f}, on {os.cpu_count()} cores; it counts this run's own processes too). The numbers are noisy; the ratios, measured in one run with the modes
alternating, are what to compare.{(" " + note) if note else ""}

| mode | events | events/s (max) | offered load (events/s) | p50 ms | p99 ms | delivered | peak RSS MB | {' | '.join(f'{s} ms/event' for s in STAGES)} |
|---|---|---|---|---|---|---|---|{'---|' * len(STAGES)}
{rows}
{ratio}
## Against the no-Faust limit

The limit (`benchmarks/stream_limit.py`, measured in the same run, on the same Flipkart events and
stack, alternating with the modes): one process, no Faust: a confluent-kafka consumer takes up to
{base.batch_size} events, orjson decodes them, `elasticsearch.helpers.bulk` writes them to an index
with the worker's mapping (doc id = product id, external_gte versions, the feed's field names mapped
to the index's, no cleaning), one products.categorised message per event goes out through a
confluent-kafka producer (acks=all, idempotent, like the worker's) and is awaited, then the offsets
are committed. One batch at a time (the worker overlaps two). It is the physical limit of this
machine for this work: every mode does at least this. The images mode replays other events
(Myntra, with photos): its ratio is to the Flipkart limit.

| mode | events | events/s (max) | ratio to the limit | peak RSS MB |
|---|---|---|---|---|
{limit_rows}
{scale_section}
![backlog drained, throughput against the limit](stream.png)
""")
