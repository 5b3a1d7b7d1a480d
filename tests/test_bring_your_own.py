"""The README's "Bring your own catalogue" example, run exactly as written on a header-less CSV.

The commands, the mapping file and the first rows of the CSV are read from the README itself,
so the documentation cannot drift from what works. The CSV gets more rows of the same shape
(enough products per category to train on) and a few photos, all under ``tmp_path``. The real
``prodcat`` script runs every command; rules, training, evaluation and prediction need no
stack, embedding uses Milvus Lite in ``tmp_path``. The one command that needs Kafka
(``feed``) runs against the test stack in the integration test.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prodcat.catalogue import read_catalogue
from prodcat.mapping import load_mapping_file
from prodcat.taxonomy import path_id
from tests.helpers import drain, free_port

ROOT = Path(__file__).resolve().parents[1]
NEEDS_STACK = "needs the stack"
# more products like the README's: category -> words their titles are made of
KINDS = {
    "Clothing > Shirts": (["shirt", "oxford shirt", "linen shirt", "flannel shirt"], ["Acme", "Northwind"]),
    "Clothing > Jeans": (["jeans", "denim jeans", "skinny jeans", "bootcut jeans"], ["Denimco", "Blueline"]),
    "Footwear > Running Shoes": (["running shoe", "trail runner", "road running shoe"], ["Fleet", "Stride"]),
    "Footwear > Sandals": (["sandal", "flip flop sandal", "strap sandal"], ["Sunny", "Fleet"]),
    "Home > Lamps": (["desk lamp", "floor lamp", "bedside lamp"], ["Glow", "Lumen"]),
}
ADJECTIVES = ["classic", "slim", "soft", "light", "premium", "everyday", "organic", "vintage"]


def readme_blocks() -> list[tuple[str, str]]:
    """The fenced blocks of the README's section, in order: (language, text)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Bring your own catalogue", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S)
    assert [language for language, _ in blocks] == ["csv", "yaml", "bash", "bash"], \
        "the README section's blocks changed: expected the CSV, the mapping, the commands and the benchmark"
    return blocks


def readme_section() -> tuple[str, str, list[str]]:
    """The example's CSV rows, mapping file and shell commands, as the README shows them."""
    (_, rows), (_, mapping), (_, commands), _ = readme_blocks()
    return rows, mapping, [line for line in commands.splitlines() if line.strip()]


def write_example(folder: Path) -> list[str]:
    """shop.csv (the README's rows + generated ones), shop-mapping.yaml and photos/; the ids with a photo."""
    rows, mapping, _ = readme_section()
    rng = random.Random(15)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for n in range(120):
        category = list(KINDS)[n % len(KINDS)]
        words, brands = KINDS[category]
        title = f"{rng.choice(ADJECTIVES).capitalize()} {rng.choice(words)} {rng.choice(['', 'for men', 'for women', 'XL'])}"
        writer.writerow([f"G-{n:04d}", title.strip(), category, rng.choice(brands), f"{rng.uniform(5, 200):.2f}",
                         ""])
    (folder / "shop.csv").write_text(rows + out.getvalue(), encoding="utf-8")
    (folder / "shop-mapping.yaml").write_text(mapping, encoding="utf-8")
    photos = folder / "photos"
    photos.mkdir()
    with_photo = {"SH-1002": "SH-1002-front.jpg"}  # by the README row's file-name column
    with_photo.update({f"G-{n:04d}": f"G-{n:04d}.png" for n in range(0, 10, 3)})  # by product id
    for i, name in enumerate(with_photo.values()):
        Image.new("RGB", (48, 48), (40 * i % 256, 90, 200 - 20 * i)).save(photos / name)
    return sorted(with_photo)


def environment(tmp: Path) -> dict[str, str]:
    """The real CLI on PATH; state, models and Milvus Lite under ``tmp``; no stack (unused ports)."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PRODCAT_STATE_DIR": str(tmp / "state"), "PRODCAT_MILVUS_URI": str(tmp / "milvus" / "prodcat.db"),
            "PRODCAT_KAFKA_BROKERS": f"127.0.0.1:{free_port()}", "PRODCAT_ES_URL": f"http://127.0.0.1:{free_port()}",
            "PRODCAT_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}


def run_script(lines: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    script = "set -euo pipefail\n" + "\n".join(lines) + "\n"
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_the_readme_mapping_reads_the_readme_rows(tmp_path):
    write_example(tmp_path)
    mapping = load_mapping_file(tmp_path / "shop-mapping.yaml")
    first = next(read_catalogue(tmp_path / "shop.csv", mapping=mapping))  # the first row is a product
    assert first["id"] == "SH-1001" and first["category"] == "Clothing > Shirts" and first["brand"] == "Acme"


def test_bring_your_own_catalogue_example_end_to_end(tmp_path):
    with_photo = write_example(tmp_path)
    commands = [line for line in readme_section()[2] if NEEDS_STACK not in line]
    assert [c.split()[1] for c in commands if c.startswith("prodcat ")] == [
        "rules", "train", "evaluate", "embed"] and any("| prodcat predict" in c for c in commands)
    proc = run_script(commands, tmp_path, environment(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr

    taxonomy = json.loads((tmp_path / "shop-taxonomy.json").read_text())
    assert "Running Shoes" in json.dumps(taxonomy) and (tmp_path / "shop-rules.yaml").stat().st_size > 0
    (model,) = sorted((tmp_path / "shop-models").glob("model-*"))
    assert f"registered {model.name}" in proc.stdout
    assert "micro f1" in proc.stdout and "per-level F1" in proc.stdout  # evaluate's table on shop.csv

    (line,) = (tmp_path / "predictions.jsonl").read_text().splitlines()  # JSONL out: one line per product
    prediction = json.loads(line)
    assert prediction["id"] == "N-1" and prediction["version"] == model.name
    assert set(prediction) == {"id", "version", "categories", "scores", "uncertainty", "disagreement"}
    # 120 products and one linear member: a sanity check, not a quality bar
    assert max(prediction["scores"], key=prediction["scores"].get).startswith("Clothing"), prediction

    exported = np.load(tmp_path / "shop-vectors.npz")
    assert sorted(exported["ids"].tolist()) == with_photo  # the file-name column and the photos named by id
    assert exported["vectors"].shape == (len(with_photo), 1280) and exported["vectors"].dtype == np.float32
    assert np.allclose(np.linalg.norm(exported["vectors"], axis=1), 1.0, atol=1e-4)
    assert set(exported["level1"].tolist()) <= {path_id([name]) for name in ("Clothing", "Footwear", "Home")}  # ids
    assert f"exported {len(with_photo)} vectors" in proc.stdout
    assert f"embedded {len(with_photo)}, from cache 0, failed {123 - len(with_photo)}" in proc.stdout


@pytest.mark.integration
def test_bring_your_own_catalogue_feed_on_the_real_stack(isolated, tmp_path):
    """The README's feed line: the header-less rows reach products.raw under prodcat's field names."""
    from streams.topics import ensure_topics

    write_example(tmp_path)
    (feed,) = [line for line in readme_section()[2] if NEEDS_STACK in line]
    ensure_topics(isolated)
    proc = run_script([feed], tmp_path, {**environment(tmp_path), **isolated.to_env()})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"sent 123 events to {isolated.topic_raw}" in proc.stdout
    events = {json.loads(m.value())["id"]: json.loads(m.value()) for m in drain(isolated, isolated.topic_raw)}
    assert len(events) == 123
    assert events["SH-1003"] == {"id": "SH-1003", "title": "Trail running shoe", "category": "Footwear > Running Shoes",
                                 "brand": "Fleet", "price": "1,299.00", "image_url": ""}


def test_models_benchmark_on_the_readme_catalogue(tmp_path):
    """benchmarks/models.py takes the catalogue with the same mapping and writes only where --out says."""
    write_example(tmp_path)
    (command,) = [line for line in readme_blocks()[3][1].splitlines() if line.strip()]
    results = ROOT / "benchmarks" / "results"
    before = {p.name: p.stat().st_mtime for p in results.iterdir()}
    proc = run_script([command], ROOT, {**environment(tmp_path), "SHOP": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = (tmp_path / "report" / "models.md").read_text()
    assert "## shop" in report and "truth (ceiling)" in report
    assert set(json.loads((tmp_path / "report" / "models.json").read_text())) == {"shop"}
    assert {p.name: p.stat().st_mtime for p in results.iterdir()} == before  # the committed report untouched


def test_models_benchmark_mapping_mistake_is_one_line(tmp_path):
    write_example(tmp_path)
    proc = subprocess.run([sys.executable, "benchmarks/models.py", "--dataset", str(tmp_path / "shop.csv"),
                           "--columns", "id,title,maker", "--no-header", "--report-only"],
                          cwd=ROOT, env=environment(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "--report-only rewrites the report in --out DIR" in proc.stderr
    proc = subprocess.run([sys.executable, "benchmarks/models.py", "--dataset", str(tmp_path / "shop.csv"),
                           "--columns", "id,title,maker", "--no-header", "--out", str(tmp_path / "r")],
                          cwd=ROOT, env=environment(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: --columns with --no-header: column 2: unknown "
                                                          "field 'maker'")
