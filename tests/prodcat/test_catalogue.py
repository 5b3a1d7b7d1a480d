"""Catalogue presets over the real shared datasets and the shipped sample feed; the noise injector."""

from __future__ import annotations

import csv
import itertools
import json
import random
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import pytest

from prodcat.catalogue import NOISE_KINDS, add_noise, detect_preset, read_catalogue
from prodcat.errors import DataError
from prodcat.record import parse_record

SAMPLE_FEED = Path(__file__).resolve().parents[2] / "prodcat" / "data" / "sample_feed.jsonl"


def _path_of(uri: str) -> Path:
    return Path(url2pathname(urlparse(uri).path))


# --------------------------------------------------------------------------------------------
# errors and detection (no shared data needed)
# --------------------------------------------------------------------------------------------


def test_missing_file_is_a_data_error_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataError, match="catalogue file not found: .*nope.csv"):
        list(read_catalogue(missing, "csv"))


def test_unknown_preset_lists_the_valid_ones(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("id,title\n1,x\n")
    with pytest.raises(DataError, match="unknown catalogue preset 'amazon'.*flipkart-names"):
        list(read_catalogue(tmp_path / "a.csv", "amazon"))  # type: ignore[arg-type]


def test_unknown_extension_needs_an_explicit_preset(tmp_path: Path) -> None:
    (tmp_path / "feed.xml").write_text("<products/>")
    with pytest.raises(DataError, match="preset='jsonl' or 'csv'"):
        list(read_catalogue(tmp_path / "feed.xml"))


def test_preset_columns_are_checked(tmp_path: Path) -> None:
    (tmp_path / "styles.csv").write_text("id,name\n1,x\n")
    with pytest.raises(DataError, match="lacks the column\\(s\\) articleType, gender, masterCategory"):
        list(read_catalogue(tmp_path / "styles.csv", "myntra"))


def test_malformed_jsonl_line_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "f.jsonl").write_text('{"id": "1", "title": "a"}\n\n{"id": 2,\n')
    reader = read_catalogue(tmp_path / "f.jsonl")
    assert next(reader) == {"id": "1", "title": "a"}
    with pytest.raises(DataError, match="f.jsonl:3: not valid JSON"):
        next(reader)


def test_jsonl_lines_must_be_objects(tmp_path: Path) -> None:
    (tmp_path / "f.ndjson").write_text('["a"]\n')
    with pytest.raises(DataError, match=":1: expected a JSON object per line, found list"):
        list(read_catalogue(tmp_path / "f.ndjson"))


def test_generic_csv_skips_blank_rows_and_keeps_empty_cells(tmp_path: Path) -> None:
    (tmp_path / "feed.csv").write_text("\ufeffid,title,brand\n1,Shirt,\n,,\n2,Shoe,Acme\n", encoding="utf-8")
    assert detect_preset(tmp_path / "feed.csv") == "csv"
    assert list(read_catalogue(tmp_path / "feed.csv")) == [
        {"id": "1", "title": "Shirt", "brand": ""}, {"id": "2", "title": "Shoe", "brand": "Acme"}]


@pytest.mark.parametrize(
    ("name", "header", "expected"),
    [("whatever.csv", "uniq_id,crawl_timestamp,product_url,product_name,product_category_tree", "flipkart"),
     ("styles.csv", "id,gender,masterCategory,subCategory,articleType,productDisplayName", "myntra"),
     ("images.csv", "id,filename,gender,masterCategory,subCategory,articleType", "myntra-images"),
     ("images.csv", "id,filename,level1,level2,level3,product_category_tree,brand,product_name", "flipkart-images"),
     ("products_20k_name_tree.csv", "c2d7,Alisha,[]", "flipkart-names"),
     ("feed.jsonl", "{}", "jsonl"), ("feed.ndjson", "{}", "jsonl"), ("feed.csv", "sku,name", "csv")],
)
def test_detect_preset_from_name_and_header(tmp_path: Path, name: str, header: str, expected: str) -> None:
    (tmp_path / name).write_text(header + "\n")
    assert detect_preset(tmp_path / name) == expected


# --------------------------------------------------------------------------------------------
# the shipped sample feed
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_raw() -> list[dict]:
    return list(read_catalogue(SAMPLE_FEED))


def test_sample_feed_parses_completely(sample_raw: list[dict]) -> None:
    records = [parse_record(raw) for raw in sample_raw]
    assert [r.id for r in records] == [f"demo-{i:04d}" for i in range(1, 61)]
    tops = Counter(r.category_path[0] for r in records)
    assert set(tops) == {"Clothing", "Footwear", "Watches", "Kitchen & Dining", "Computers",
                         "Beauty and Personal Care", "Baby Care", "Home Decor"}
    assert min(tops.values()) >= 6
    assert {len(r.category_path) for r in records} == {2, 3}
    assert all(r.title or r.description for r in records)
    assert {r.currency for r in records} >= {"EUR", "INR", "USD", "GBP"}


def test_sample_feed_is_deliberately_noisy(sample_raw: list[dict]) -> None:
    texts = [json.dumps(raw, ensure_ascii=False) for raw in sample_raw]
    assert sum("<" in t for t in texts) >= 10  # HTML
    assert sum("&amp;" in t or "&lt;" in t for t in texts) >= 5  # entities
    assert sum(any(d in t for d in (" // ", " | ", " » ", " › ")) for t in texts) >= 10  # mixed delimiters
    assert len({frozenset(raw) for raw in sample_raw}) >= 3  # several feed dialects
    assert sum(isinstance(v, str) and v[:1] in "$£€₹R" for raw in sample_raw for v in raw.values()) >= 10
    assert any(v in ("", None) for raw in sample_raw for v in raw.values())


# --------------------------------------------------------------------------------------------
# the real shared datasets
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("relative", "preset"),
    [("flipkart/products_1k_allfields.csv", "flipkart"), ("flipkart/products_20k_name_tree.csv", "flipkart-names"),
     ("flipkart/images.csv", "flipkart-images"), ("myntra/styles.csv", "myntra"),
     ("myntra/images.csv", "myntra-images")],
)
def test_auto_detects_every_shared_file(datasets: Path, relative: str, preset: str) -> None:
    assert detect_preset(datasets / relative) == preset


def test_flipkart_preset(datasets: Path) -> None:
    path = datasets / "flipkart" / "products_1k_allfields.csv"
    rows = list(read_catalogue(path, "flipkart"))
    assert len(rows) == 999  # the file's thousands of all-empty rows are skipped
    assert len({r["uniq_id"] for r in rows}) == 999
    assert set(rows[0]) == {"uniq_id", "product_name", "product_category_tree", "brand", "description",
                            "retail_price", "discounted_price", "image", "product_url", "crawl_timestamp", "network"}
    with path.open(encoding="utf-8", newline="") as fh:
        truth = next(r for r in csv.DictReader(fh) if r["uniq_id"] == "f449ec65dcbc041b6ae5e6a32717d01b")
    row = next(r for r in rows if r["uniq_id"] == "f449ec65dcbc041b6ae5e6a32717d01b")
    assert row["product_category_tree"] == truth["product_category_tree"]  # ground truth, unchanged
    assert (row["network"], row["discounted_price"]) == ("flipkart-feed", truth["discounted_price"])
    record = parse_record(row)
    assert record.category_path == ["Footwear", "Women's Footwear", "Ballerinas", "AW Bellies"]
    assert record.network == "flipkart-feed"


def test_flipkart_names_preset(datasets: Path) -> None:
    rows = list(read_catalogue(datasets / "flipkart" / "products_20k_name_tree.csv"))
    assert len(rows) == 20_000
    assert rows[2] == {"uniq_id": "f449ec65dcbc041b6ae5e6a32717d01b", "product_name": "AW Bellies",
                       "product_category_tree": '["Footwear >> Women\'s Footwear >> Ballerinas >> AW Bellies"]',
                       "network": "flipkart-feed"}


def test_flipkart_images_preset_points_at_real_files(datasets: Path) -> None:
    rows = list(read_catalogue(datasets / "flipkart" / "images.csv"))
    assert len(rows) == 1047
    tops = Counter(parse_record(r).category_path[0] for r in rows)
    assert len(tops) == 7 and "Watches" in tops
    for row in rows[:: len(rows) // 20]:
        assert row["image_url"].startswith("file:///")
        assert _path_of(row["image_url"]) == (datasets / "flipkart" / "images" / f"{row['uniq_id']}.jpg").resolve()
        assert _path_of(row["image_url"]).is_file()


def test_myntra_preset(datasets: Path) -> None:
    rows = list(read_catalogue(datasets / "myntra" / "styles.csv"))
    assert len(rows) == 44_446
    first = rows[0]
    assert first == {"id": "15970", "title": "Turtle Check Men Navy Blue Shirt", "gender": "Men",
                     "category": "Apparel > Topwear > Shirts", "brand": None, "baseColour": "Navy Blue",
                     "season": "Fall", "year": "2011", "usage": "Casual", "network": "myntra-feed"}
    record = parse_record(first)
    assert (record.gender, record.category_path, record.brand) == ("men", ["Apparel", "Topwear", "Shirts"], None)
    assert record.extras == {"baseColour": "Navy Blue", "season": "Fall", "year": "2011", "usage": "Casual"}
    assert {parse_record(r).gender for r in rows[:2000]} == {"men", "women", "boys", "girls", "unisex"}


def test_bigbasket_preset(datasets: Path) -> None:
    path = datasets / "bigbasket" / "products_27k.csv"
    assert detect_preset(path) == "bigbasket"
    rows = list(read_catalogue(path))
    assert len(rows) == 27_555
    assert rows[1] == {"id": "2", "title": "Water Bottle - Orange", "brand": "Mastercook",
                       "category": "Kitchen, Garden & Pets > Storage & Accessories > Water & Fridge Bottles",
                       "price": "180", "currency": "INR", "network": "bigbasket-feed"}
    record = parse_record(rows[1])
    # the comma inside a level's name is not a path delimiter: three levels, as in the file
    assert record.category_path == ["Kitchen, Garden & Pets", "Storage & Accessories", "Water & Fridge Bottles"]
    assert record.price == 180.0 and record.brand == "Mastercook"
    assert sum(1 for r in rows if len(parse_record(r).category_path) == 3) > 27_000


def test_myntra_images_preset(datasets: Path) -> None:
    rows = list(read_catalogue(datasets / "myntra" / "images.csv", "myntra-images"))
    assert len(rows) == 10_000
    assert rows[0]["category"] == "Apparel > Topwear > Tshirts"
    assert _path_of(rows[0]["image_url"]) == (datasets / "myntra" / "images" / "1163.jpg").resolve()
    assert all(_path_of(r["image_url"]).is_file() for r in rows[:200])


# --------------------------------------------------------------------------------------------
# noise
# --------------------------------------------------------------------------------------------

_COMPARED = ("id", "title", "description", "brand", "category_path", "price", "gender", "updated_at", "image_url")


@pytest.fixture(scope="module")
def real_rows(datasets: Path) -> list[dict]:
    """Every Flipkart 1k row and a slice of Myntra: two dialects with different field names."""
    flipkart = list(read_catalogue(datasets / "flipkart" / "products_1k_allfields.csv"))
    myntra = list(itertools.islice(read_catalogue(datasets / "myntra" / "styles.csv"), 300))
    return flipkart + myntra


@pytest.mark.parametrize("kind", [k for k in NOISE_KINDS if k != "blank"])
def test_cleaning_undoes_each_kind_of_noise_on_real_rows(real_rows: list[dict], kind: str) -> None:
    rng = random.Random(kind)
    changed = 0
    for raw in real_rows:
        noisy = add_noise(raw, rng, 1.0, kinds=[kind])
        changed += noisy != raw
        clean, dirty = parse_record(raw), parse_record(json.dumps(noisy, ensure_ascii=False).encode())
        assert [getattr(dirty, f) for f in _COMPARED] == [getattr(clean, f) for f in _COMPARED], (kind, raw)
    assert changed > len(real_rows) // 2  # the noise really happened


def _filled(raw: dict) -> int:
    return sum(value not in ("", None) for value in raw.values())


def test_each_kind_leaves_its_mark(sample_raw: list[dict]) -> None:
    raw = next(r for r in sample_raw if r.get("uniq_id") == "demo-0002")
    marks = {
        "html": lambda n: n["product_name"].startswith("<b>") and n["description"].startswith("<p>"),
        "unicode": lambda n: "\u00a0" in n["product_name"] or n["product_name"].startswith("  \t"),
        "delimiter": lambda n: n["product_category_tree"] != raw["product_category_tree"],
        "price": lambda n: isinstance(n["discounted_price"], str) and any(s in n["discounted_price"] for s in "$£€₹R"),
        "blank": lambda n: _filled(n) == _filled(raw) - 1,
    }
    for kind, mark in marks.items():
        hits = sum(mark(add_noise(raw, random.Random(seed), 1.0, kinds=[kind])) for seed in range(20))
        assert hits >= 15, kind


def test_noise_never_touches_the_id_and_never_mutates_the_input(sample_raw: list[dict]) -> None:
    rng = random.Random(7)
    for raw in sample_raw:
        before = json.dumps(raw, sort_keys=True, ensure_ascii=False)
        id_key = next(k for k in ("id", "sku", "uniq_id") if k in raw)
        for _ in range(30):
            noisy = add_noise(raw, rng, 1.0)
            assert noisy[id_key] == raw[id_key]
        assert json.dumps(raw, sort_keys=True, ensure_ascii=False) == before


def test_noise_rate_zero_is_identity_and_seeds_are_reproducible(sample_raw: list[dict]) -> None:
    raw = sample_raw[0]
    assert add_noise(raw, random.Random(1), 0.0) == raw
    assert add_noise(raw, random.Random(3), 0.5) == add_noise(raw, random.Random(3), 0.5)
    noisy = [add_noise(raw, random.Random(s), 0.5) for s in range(40)]
    assert 3 < sum(n != raw for n in noisy) < 40


def test_noisy_sample_records_still_parse(sample_raw: list[dict]) -> None:
    rng = random.Random(11)
    records = [parse_record(add_noise(raw, rng, 0.8)) for raw in sample_raw]
    assert [r.id for r in records] == [parse_record(raw).id for raw in sample_raw]


@pytest.mark.parametrize(("rate", "kinds", "message"), [(1.5, NOISE_KINDS, "rate"), (-0.1, NOISE_KINDS, "rate"),
                                                         (0.5, ["typos"], "unknown noise kind")])
def test_noise_arguments_are_checked(rate: float, kinds: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        add_noise({"id": "x"}, random.Random(0), rate, kinds=kinds)  # type: ignore[arg-type]
