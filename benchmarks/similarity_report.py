"""The similarity benchmark's report: the contact sheet and per-type chart, and similarity.md.

Reads only what was measured (a :class:`Run`); run by ``benchmarks/similarity.py``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import platform
import statistics
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from similarity_measure import (
    BATCH,
    SEARCH_CALLS,
    TIMING_SUBSET,
    Dataset,
    EmbedTiming,
    Evaluation,
    Quality,
    StoreResult,
    confusions,
    duplicate_groups,
    per_type,
    percentile,
    short,
)

from embedder.base import letterbox


def contact_sheet(rows: list[tuple[Dataset, int, list[tuple[int, float]]]], path: Path, per_row: int = 8) -> None:
    """Each row: the query photo, then its neighbours with their leaf category and cosine score."""
    cols = per_row + 1
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.75 * cols, 2.25 * len(rows)), squeeze=False)
    for r, (ds, q, hits) in enumerate(rows):
        cells = [(q, None)] + hits[:per_row]
        for c in range(cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(cells):
                ax.axis("off")
                continue
            i, score = cells[c]
            ax.imshow(letterbox(ds.images[i], 160))
            label = "\n".join(textwrap.wrap(short(ds.level3[i]), 20)[:2])
            if score is None:
                ax.set_title(f"{ds.name} QUERY\n{label}\n[{short(ds.level2[i])}]", fontsize=8, fontweight="bold")
                for spine in ax.spines.values():
                    spine.set_edgecolor("tab:blue")
                    spine.set_linewidth(3)
            else:
                ok = ds.level3[i] == ds.level3[q]
                ax.set_title(f"{label}\ncos {score:.3f}", fontsize=8, color="black" if ok else "tab:red")
                for spine in ax.spines.values():
                    spine.set_edgecolor("tab:green" if ok else "tab:red")
                    spine.set_linewidth(2)
    fig.suptitle("Top-8 neighbours within the query's level-2 category (Milvus Lite, ImageIndex.similar); "
                 "green = same leaf category, red = different", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def per_type_chart(rows: list[tuple[str, int, float, float, float]], path: Path, title: str) -> None:
    rows = sorted(rows, key=lambda r: r[2])
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(9, 0.22 * len(rows) + 1.5))
    ax.barh(y + 0.27, [r[2] for r in rows], height=0.27, label="CNN", color="tab:blue")
    ax.barh(y, [r[3] for r in rows], height=0.27, label="colour histogram", color="tab:orange")
    ax.barh(y - 0.27, [r[4] for r in rows], height=0.27, label="random", color="tab:gray")
    ax.set_yticks(y, [f"{short(r[0])} ({r[1]})" for r in rows], fontsize=7)
    ax.axvline(0.8, color="tab:red", linestyle="--", linewidth=1, label="goal 0.8")
    ax.set_xlim(0, 1)
    ax.set_xlabel("precision@10, same leaf category, searched within level 2")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def fmt(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def find(rows: Sequence[Quality], method: str, setting: str) -> Quality:
    return next(r for r in rows if r.method.startswith(method) and r.setting == setting)


def quality_section(ev: Evaluation) -> str:
    ds = ev.ds
    rows = [(r.method, r.setting, r.p_leaf, r.p_leaf_macro, r.p_level2, r.queries) for r in ev.rows]
    head = (f"{ds.name}: {len(ds)} photos, {len(set(ds.level1))} level-1, {len(set(ds.level2))} level-2 "
            f"({ds.level2_name}), {len(set(ds.level3))} leaf ({ds.leaf_name}) categories.")
    out = [head, "", table(["method", "searched", f"P@10 same {ds.leaf_name}", f"macro P@10 {ds.leaf_name}",
                            f"P@10 same {ds.level2_name}", "queries"], rows)]
    if ev.recalls:
        out += ["", f"Milvus against exact search ({ds.name}): ANN recall@10 (tie-aware, see notes) and the "
                "precision the Milvus results give:", "",
                table(["Milvus", "searched", "queries", "recall@10", "queries with a full top-10",
                       f"P@10 {ds.leaf_name} via Milvus", "exact P@10 on the same queries"],
                      [(a, b, n, c, f"{d:.1%}", e, f) for a, b, n, c, d, e, f in ev.recalls])]
    return "\n".join(out)


def machine_facts() -> list[str]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    versions = []
    for pkg in ("tensorflow", "keras", "pymilvus", "milvus-lite", "milvus", "numpy", "pillow"):
        try:
            versions.append(f"{pkg} {importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{pkg} (not installed)")
    return [f"- CPU: {cpu}; `nproc` = {os.cpu_count()}; Python {platform.python_version()}",
            f"- {', '.join(versions)}"]


@dataclass
class Run:
    args: argparse.Namespace
    version: str
    timing: EmbedTiming
    myntra: Evaluation
    flipkart: Evaluation | None
    stores: list[StoreResult]
    server_note: str
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    seconds: float = 0.0
    flipkart_img_s: float = 0.0


def speed_section(run: Run) -> str:
    t = run.timing
    passes = ", ".join(f"{v:.1f}" for v in t.passes_img_s)
    embed_ms = statistics.median(t.split_embed_ms)
    rows = [
        ("decode (read file, check, Pillow decode; ImageFetcher)", f"{t.decode_ms:.2f}"),
        ("preprocess (letterbox to the input size + normalise)", f"{statistics.median(t.preprocess_ms):.2f}"),
        ("model (EfficientNet-Lite0 forward pass, batch 32; = embed() - preprocess in the same pass)",
         f"{statistics.median(t.model_ms):.2f}"),
        ("embed() = preprocess + model (same passes)", f"{embed_ms:.2f}"),
    ]
    return "\n".join([
        table(["measure", "value"], [
            (f"images/s, embed() at batch {BATCH}, median of {len(t.passes_img_s)} timed passes of "
             f"{min(TIMING_SUBSET, len(run.myntra.ds))} decoded photos (the consecutive chunks the whole catalogue "
             "was embedded in)", f"**{t.median_img_s:.1f}** (min {min(t.passes_img_s):.1f}, max "
             f"{max(t.passes_img_s):.1f}; passes: {passes})"),
            ("images/s including decode from disk (derived: 1 / (embed + decode per image))",
             f"{t.with_decode_img_s:.1f}"),
            ("images/s, Flipkart (originals up to 256 px, so letterboxing costs more), median of its passes",
             f"{run.flipkart_img_s:.1f}" if run.flipkart_img_s else "n/a"),
            (f"single image latency p50 / p90 (batch of 1, {len(t.single_ms)} calls), ms",
             f"{statistics.median(t.single_ms):.1f} / {percentile(t.single_ms, 90):.1f}"),
            ("model load (build + convert torch weights + trace), s", f"{t.load_s:.1f}"),
        ]),
        "", f"Per-image time split (medians over the first {len(t.preprocess_ms)} passes, whose preprocessing was "
        f"also timed on its own; ms per image at batch {BATCH}):", "",
        table(["stage", "ms / image"], rows),
    ])


def store_section(run: Run) -> str:
    if not run.stores:
        return run.server_note
    rows = []
    for s in run.stores:
        rows.append((s.name, s.index_type, s.rows, f"{s.insert_rows_s:.0f}", f"{s.flush_s:.1f}",
                     f"{s.insert_indexed_rows_s:.0f}",
                     f"{percentile(s.lat_filtered_ms, 50):.1f} / {percentile(s.lat_filtered_ms, 99):.1f}",
                     f"{percentile(s.lat_global_ms, 50):.1f} / {percentile(s.lat_global_ms, 99):.1f}"))
    return "\n".join([
        table(["Milvus", "index", "rows", "upsert rows/s", "flush + index build s", "rows/s incl. index",
               "search k=100 with level-2 filter p50 / p99 ms", "search k=100 global p50 / p99 ms"], rows),
        "", run.server_note])


def goals_section(run: Run) -> str:
    ev = run.myntra
    within = find(ev.rows, "CNN EfficientNet", "within level 2")
    glob = find(ev.rows, "CNN EfficientNet", "global")
    dedup = find(ev.rows, "CNN, byte-identical", "within level 2")

    def mark(ok: bool) -> str:
        return "**met**" if ok else "**not met**"

    speed = run.timing.median_img_s
    return "\n".join([
        f"- Precision@10 (same articleType) >= 0.8 on the Myntra photos: within level 2 (subCategory filter, "
        f"the product's setting) {within.p_leaf:.3f} -> {mark(within.p_leaf >= 0.8)}; globally "
        f"{glob.p_leaf:.3f} -> {mark(glob.p_leaf >= 0.8)}; within level 2 with byte-identical duplicates "
        f"of the query excluded {dedup.p_leaf:.3f} -> {mark(dedup.p_leaf >= 0.8)}; macro average over "
        f"articleTypes (within level 2) {within.p_leaf_macro:.3f}.",
        f"- Embedding >= 50 images/s on {os.cpu_count()} cores: {speed:.1f} images/s at batch {BATCH} "
        f"(embed() from decoded images) -> {mark(speed >= 50)}; {run.timing.with_decode_img_s:.1f} images/s "
        f"including decode -> {mark(run.timing.with_decode_img_s >= 50)}. Load average during the run: "
        f"{run.load_before[0]:.1f} at start, {run.load_after[0]:.1f} at end (1-min), on {os.cpu_count()} cores.",
    ])


def discussion(run: Run) -> str:
    ev = run.myntra
    within = find(ev.rows, "CNN EfficientNet", "within level 2")
    glob = find(ev.rows, "CNN EfficientNet", "global")
    colour = find(ev.rows, "colour", "within level 2")
    rand = find(ev.rows, "random", "within level 2")
    dedup = find(ev.rows, "CNN, byte-identical", "within level 2")
    types = per_type(ev, 20)
    worst = sorted(types, key=lambda r: r[2])[:6]
    mixed_types = [r for r in types if r[4] < 0.5]  # chance within their subCategory is low
    best = sorted(mixed_types, key=lambda r: -r[2])[:5]
    reaching = sum(1 for r in types if r[2] >= 0.8)
    # queries whose subCategory holds only their articleType score 1.0 with any method once filtered
    trivial = ev.random_per_query_leaf >= 0.999
    mixed = np.isfinite(ev.random_per_query_leaf) & ~trivial
    alone = [short(r[0]) for r in types if r[4] >= 0.999][:3]
    mixed_cnn = float(np.nanmean(ev.per_query_leaf[mixed])) if mixed.any() else float("nan")
    total_ms = statistics.median(run.timing.split_embed_ms)
    tshirts = next((r for r in types if short(r[0]) == "Tshirts"), None)
    conf = confusions(ev, 8)
    groups, files = duplicate_groups(ev.ds.hashes)
    lines = [
        f"- Within level 2 the CNN neighbours share the query's articleType {within.p_leaf:.3f} of the time, "
        f"against {rand.p_leaf:.3f} for random products of the same subCategory and {colour.p_leaf:.3f} for the "
        f"colour histogram; the level-2 filter itself is worth {within.p_leaf - glob.p_leaf:+.3f} over global "
        f"search ({glob.p_leaf:.3f}). Same-subCategory precision is 1.0 by construction when the filter is on.",
        f"- Part of that is the filter alone: {trivial.mean():.0%} of the photos belong to an articleType that is "
        f"the only one of its subCategory (e.g. {', '.join(alone) or 'none here'}), where every method scores 1.0 "
        f"within level 2. Over the other {mixed.sum()} queries the CNN reaches {mixed_cnn:.3f} "
        f"(colour {np.nanmean(ev.colour_per_query_leaf[mixed]):.3f}, random "
        f"{np.nanmean(ev.random_per_query_leaf[mixed]):.3f}).",
        f"- The micro average is carried by large types: the macro average over articleTypes is "
        f"{within.p_leaf_macro:.3f}; {reaching} of the {len(types)} articleTypes with >= 20 photos reach 0.8."
        + (f" Tshirts ({tshirts[1]} photos, {tshirts[1] / len(ev.ds):.0%}) alone reach {tshirts[2]:.3f}, and their "
           f"random baseline within Topwear is {tshirts[4]:.3f}." if tshirts else ""),
        "- Weakest articleTypes (>= 20 photos; P@10 CNN / colour / random): "
        + "; ".join(f"{short(n)} ({c}) {p:.2f} / {col:.2f} / {r:.2f}" for n, c, p, col, r in worst) + ".",
        "- Strongest articleTypes where chance is low (random baseline < 0.5): "
        + "; ".join(f"{short(n)} ({c}) {p:.2f} (random {r:.2f})" for n, c, p, _, r in best) + ".",
        "- Most frequent confusions (query articleType -> neighbour articleType, neighbours within level 2, "
        "share of that type's neighbour slots): "
        + "; ".join(f"{a} -> {b} {n} ({s:.0%})" for a, b, n, s in conf) + ".",
        f"- Duplicates: {groups} groups of byte-identical files ({files} photos); {ev.dup_queries_with_dup_in_top} "
        f"queries have a byte-identical copy among their top-10. Excluding such copies changes within-level-2 "
        f"P@10 from {within.p_leaf:.3f} to {dedup.p_leaf:.3f} "
        f"({'a negligible' if abs(within.p_leaf - dedup.p_leaf) < 0.005 else 'a noticeable'} effect: the copies "
        f"are {files / max(len(ev.ds), 1):.1%} of the photos, and {ev.dup_pairs_same_leaf:.0%} of the identical "
        "pairs carry the same articleType; a copy in the top-10 is a free hit when the labels agree). "
        "Ids whose photo does not match the label (e.g. 11343) are not removed; they lower the numbers a little.",
    ]
    if run.flipkart is not None:
        fk = run.flipkart
        fw, fg = find(fk.rows, "CNN EfficientNet", "within level 2"), find(fk.rows, "CNN EfficientNet", "global")
        fr, fc = find(fk.rows, "random", "within level 2"), find(fk.rows, "colour", "within level 2")
        fconf = confusions(fk, 4)
        lines.append(
            f"- Flipkart: within level 2 P@10 (same level 3) is {fw.p_leaf:.3f} "
            f"(random {fr.p_leaf:.3f}, colour {fc.p_leaf:.3f}); globally the same-level-2 precision is "
            f"{fg.p_level2:.3f}. Its level 2/3 nodes are partly brand-named (\"JMD Home Furnishing\", "
            f"\"palito Wrist Watches\"), which no image model can separate; frequent confusions: "
            + "; ".join(f"{a} -> {b} {n}" for a, b, n, _ in fconf) + ".")
    lines.append(f"- Speed: the model forward pass is {statistics.median(run.timing.model_ms) / total_ms:.0%} of "
                 f"embed() time, letterboxing the 60x80 thumbnails up to {run.args.image_size} px the rest; decoding "
                 f"adds {run.timing.decode_ms:.2f} ms per photo. The 2 cores are shared with other jobs (see the load "
                 "averages), so throughput is noisy; the per-pass values show the spread. When other jobs load the "
                 "cores, expect proportionally lower images/s.")
    return "\n".join(lines)


def write_report(run: Run, path: Path) -> None:
    args = run.args
    options = [f"--limit {args.limit}" if args.limit else "", f"--image-size {args.image_size}",
               f"--repeat {args.repeat}", f"--milvus-queries {args.milvus_queries}",
               "--no-server" if args.no_server else ""]
    cmd = "`.venv/bin/python benchmarks/similarity.py " + " ".join(o for o in options if o) + "`"
    parts = [
        "# Image similarity: embedding speed, Milvus, precision@10",
        "",
        f"Command: {cmd} (total runtime {run.seconds / 60:.1f} min).",
        "",
        "Machine and model:",
        "",
        *machine_facts(),
        f"- Model: `{run.version}` (EfficientNet-Lite0, ImageNet weights, 1280-d L2-normalised), "
        f"input {args.image_size} px letterboxed on white, batch {BATCH}.",
        f"- Load average (1/5/15 min) at start {run.load_before[0]:.1f}/{run.load_before[1]:.1f}/"
        f"{run.load_before[2]:.1f}, at end {run.load_after[0]:.1f}/{run.load_after[1]:.1f}/{run.load_after[2]:.1f}: "
        "other jobs share the cores, so speed numbers are medians of repeated passes and still noisy.",
        "",
        "## Goals",
        "",
        goals_section(run),
        "",
        "## Embedding speed (Myntra photos, 60x80 JPEG)",
        "",
        speed_section(run),
        "",
        "## Milvus insert and search (Myntra vectors)",
        "",
        store_section(run),
        "",
        "## Quality: Myntra",
        "",
        quality_section(run.myntra),
        "",
        "![per articleType](similarity_per_type.png)",
        "",
    ]
    if run.flipkart is not None:
        parts += ["## Quality: Flipkart", "", quality_section(run.flipkart), ""]
    parts += [
        "## Contact sheet",
        "",
        "![contact sheet](similarity_contact_sheet.png)",
        "",
        "## Discussion",
        "",
        discussion(run),
        "",
        "## How the numbers are computed",
        "",
        "- Every product is a query (leave-one-out: the query itself is excluded; other photos, including "
        "byte-identical copies, count unless the row says otherwise). P@10 = share of the returned neighbours "
        "(10, or fewer when the level-2 category has fewer other products) with the query's label, averaged "
        "over queries (micro); macro = mean over leaf categories of their mean. Queries alone in their level-2 "
        "category have no neighbours and are left out of the within-level-2 rows.",
        "- Categories come from the records as the feed would publish them (read_catalogue -> parse_record -> "
        "true_category_path); level 2 is the path's first two elements, the leaf the first three "
        "(Myntra: masterCategory > subCategory > articleType; a Flipkart path of depth 2 is its own leaf).",
        "- Random baseline: the exact expected precision of neighbours drawn uniformly from the same scope "
        "(same level 2, or all products), without the query. Colour histogram: 8x8x8 RGB bins of the "
        "original photo, L2-normalised, cosine, same filters and leave-one-out.",
        "- The quality tables use exact numpy cosine search over all products (what a FLAT index returns). "
        "The recall tables check Milvus against it: batched searches (many query vectors per request, k=11, "
        "then the query dropped) on the collection ImageIndex created, for a seeded random sample of products "
        "(`--milvus-queries`; Milvus Lite's brute-force global search costs ~10 ms per query here); HNSW searches use the ef ImageIndex uses for k=100. Recall@10: "
        "share of the exact numpy top-10 matched by the Milvus top-10, where a returned product counts when its "
        "exact cosine reaches the exact 10th-best score (ties between identical photos make id-based recall "
        "ambiguous). Latencies are single ImageIndex.search(k=100) calls (query excluded by id) on "
        f"{SEARCH_CALLS} random products.",
    ]
    path.write_text("\n".join(parts) + "\n")


