"""parse_record and ProductRecord: feed dialects, tolerance, rejections with readable reasons."""

from __future__ import annotations

import csv
import html
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from prodcat.errors import InvalidRecord
from prodcat.limits import InputLimits
from prodcat.record import ProductRecord, canonical_field, parse_record

_T = datetime(2016, 3, 25, 22, 59, 23, tzinfo=timezone.utc)


def _event(**fields: Any) -> bytes:
    return json.dumps(fields, ensure_ascii=False).encode()


# --------------------------------------------------------------------------------------------
# rejections
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "stage", "reason_contains"),
    [
        (b"\xff\xfe{\"id\": 1}", "parse", "not valid UTF-8"),
        (b"Alisha Solid Women's Cycling Shorts", "parse", "not valid UTF-8 JSON"),
        (b'{"id": "x", "title": "truncated', "parse", "not valid UTF-8 JSON"),
        (b"", "parse", "not valid UTF-8 JSON"),
        (b'[{"id": "x", "title": "a list of products"}]', "parse", "received a JSON array"),
        (b'"just a string"', "parse", "received a JSON string"),
        (b"null", "parse", "received a JSON null"),
        (b"42", "parse", "received a JSON number"),
        (b'{"id": "x", "title": NaN}', "parse", "NaN"),
        (_event(title="Blue Shirt"), "validate", "missing id"),
        (_event(id="", title="Blue Shirt"), "validate", "missing id"),
        (_event(id="  \u00a0 ", title="Blue Shirt"), "validate", "missing id"),
        (_event(id=None, sku=None, title="Blue Shirt"), "validate", "missing id"),
        (_event(id=True, title="Blue Shirt"), "validate", "expected a string or an integer"),
            (_event(id=12.0, title="Blue Shirt"), "validate", "expected a string or an integer"),
            (_event(id={"x": "h49"}, title="Blue Shirt"), "validate", "expected a string or an integer"),
        (_event(id="x"), "validate", "nothing to classify"),
        (_event(id="x", title="", description="  ", category=None, brand="Acme"), "validate", "nothing to classify"),
        (_event(id="x", title="<p>&nbsp;</p>", category=" >> "), "validate", "nothing to classify"),
        (_event(id="x", title="ok", description="d" * 20_001), "validate", "'description' has 20,001 characters"),
        (_event(id="x", product_name="t" * 25_000), "validate", "'product_name' has 25,000 characters"),
        (_event(id="x", title="ok", specs=["s" * 20_000]), "validate", "'specs'"),
    ],
)
def test_rejections(raw: bytes, stage: str, reason_contains: str) -> None:
    with pytest.raises(InvalidRecord) as caught:
        parse_record(raw)
    assert caught.value.stage == stage
    assert reason_contains in caught.value.reason
    assert str(caught.value) == caught.value.reason


def test_oversized_reason_says_what_to_do() -> None:
    with pytest.raises(InvalidRecord) as caught:
        parse_record({"id": "x", "title": "é" * 101}, limits=InputLimits(field_chars=100))
    assert "max_field_chars=100" in caught.value.reason
    assert "PRODCAT_MAX_FIELD_CHARS" in caught.value.reason


def test_field_of_exactly_the_limit_passes() -> None:
    assert parse_record({"id": "x", "title": "a" * 100}, limits=InputLimits(field_chars=100)).title == "a" * 100


def test_missing_id_reason_lists_aliases_and_received_fields() -> None:
    with pytest.raises(InvalidRecord) as caught:
        parse_record({"product_name": "Shirt", "colour": "red"})
    assert "uniq_id" in caught.value.reason and "sku" in caught.value.reason
    assert "colour" in caught.value.reason


# --------------------------------------------------------------------------------------------
# tolerance
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "attr", "expected"),
    [
        ({"id": 98765, "title": "x"}, "id", "98765"),
        ({"id": 12, "title": "x"}, "id", "12"),
        ({"sku": "  SKU-1\n", "title": "x"}, "id", "SKU-1"),
        ({"uniq_id": "u1", "product_id": "p1", "title": "x"}, "id", "p1"),  # product_id ranks above uniq_id
        ({"title": ["Blue", "Cotton", "Shirt"]}, "title", "Blue Cotton Shirt"),
        ({"title": 501}, "title", "501"),
        ({"title": "Sneakers 👟✨"}, "title", "Sneakers 👟✨"),
        ({"title": "<b>Ｔ-Ｓｈｉｒｔ</b>&nbsp;&amp; Cap"}, "title", "T-Shirt & Cap"),
        ({"title": "x", "brand": ""}, "brand", None),
        ({"title": "x", "brand": "   "}, "brand", None),
        ({"title": "x", "size": 42}, "size", "42"),
        ({"name": "Shirt"}, "title", "Shirt"),
        ({"productDisplayName": "Shirt"}, "title", "Shirt"),
        ({"title": "x", "Product-Category-Tree": "A >> B"}, "category_path", ["A", "B"]),
        ({"categories": ["Shoes", "Boots"]}, "category_path", ["Shoes", "Boots"]),
        ({"category_path": "Shoes // Boots"}, "category", "Shoes // Boots"),
        ({"title": "x", "imageUrl": "http://x/a.jpg"}, "image_url", "http://x/a.jpg"),
        ({"title": "x", "image": '["http://x/a.jpg", "http://x/b.jpg"]'}, "image_url", "http://x/a.jpg"),
        ({"title": "x", "images": ["", "http://x/b.jpg"]}, "image_url", "http://x/b.jpg"),
        ({"title": "x", "image_link": "[]"}, "image_url", None),
        ({"title": "x", "link": " http://shop/p/1 "}, "url", "http://shop/p/1"),
        ({"title": "x", "product_url": "http://shop/p/1"}, "url", "http://shop/p/1"),
        ({"title": "x", "retail_price": "999", "discounted_price": "379"}, "price", 379.0),
        ({"title": "x", "retail_price": "999", "discounted_price": ""}, "price", 999.0),
        ({"title": "x", "retail_price": "999", "discounted_price": "N/A"}, "price", 999.0),
        ({"title": "x", "price": "1.299,00 €"}, "currency", "EUR"),
        ({"title": "x", "price": 10, "currency": "usd"}, "currency", "USD"),
        ({"title": "x", "price": 10, "currency": "dollars"}, "currency", "USD"),
        ({"title": "x", "price": 10, "currency": "XX"}, "currency", None),
        ({"title": "x", "price": "free"}, "price", None),
        ({"title": "x", "ideal_for": "Women's"}, "gender", "women"),
        ({"title": "x", "gender": "Herren"}, "gender", "men"),
        ({"title": "x", "gender": "n/a"}, "gender", None),
        ({"title": "x", "crawl_timestamp": "2016-03-25 22:59:23 +0000"}, "updated_at", _T),
        ({"title": "x", "last_updated": 1458946763}, "updated_at", _T),
        ({"title": "x", "updated_at": 1458946763000}, "updated_at", _T),
        ({"title": "x", "updated_at": "2016-03-26T00:59:23+02:00"}, "updated_at", _T),
    ],
)
def test_parse_record_tolerance(fields: dict[str, Any], attr: str, expected: Any) -> None:
    fields = {"id": "p-1", **fields} if not {"id", "sku", "uniq_id", "product_id"} & set(fields) else fields
    record = parse_record(_event(**fields))
    assert getattr(record, attr) == expected


def test_accepts_bytes_str_dict_and_bom_identically() -> None:
    fields = {"id": "p-1", "title": "Blue Shirt", "price": "$5"}
    text = json.dumps(fields)
    records = [parse_record(text), parse_record(text.encode()), parse_record(fields),
               parse_record(b"\xef\xbb\xbf" + text.encode()), parse_record(bytearray(text.encode()))]
    assert all(r == records[0] for r in records)
    assert records[0].price == 5.0


def test_unknown_fields_and_unused_aliases_are_kept_as_extras() -> None:
    record = parse_record(_event(
        uniq_id="u1", product_name="Shirt", retail_price="999", discounted_price="379", pid="SRTEH2",
        product_specifications={"k": "v"}, colour=["red", "blue"], rating=None,
    ))
    assert record.extras == {"pid": "SRTEH2", "product_specifications": {"k": "v"}, "colour": ["red", "blue"],
                             "rating": None, "retail_price": "999"}
    assert record.price == 379.0


def test_canonical_field_folds_case_and_separators() -> None:
    assert canonical_field("Image URL") == "image_url"
    assert canonical_field("PRODUCT_NAME") == "title"
    assert canonical_field("crawl-timestamp") == "updated_at"
    assert canonical_field("colour") is None


def test_parse_record_does_not_mutate_a_dict_input() -> None:
    raw = {"id": " p-1 ", "title": "<b>x</b>", "colour": "red"}
    parse_record(raw)
    assert raw == {"id": " p-1 ", "title": "<b>x</b>", "colour": "red"}


# --------------------------------------------------------------------------------------------
# the model and its document
# --------------------------------------------------------------------------------------------


def test_to_document_is_json_with_iso_dates_and_round_trips() -> None:
    record = parse_record(_event(
        uniq_id=7, product_name="<b>Blue</b> Shirt", product_category_tree='["Clothing >> Men >> Shirts"]',
        discounted_price="Rs. 379", crawl_timestamp="2016-03-25 22:59:23 +0000", pid="X", specs={"a": [1, 2]},
    ))
    doc = record.to_document()
    assert json.loads(json.dumps(doc)) == doc
    assert doc["updated_at"] in ("2016-03-25T22:59:23Z", "2016-03-25T22:59:23+00:00")
    assert doc["category_path"] == ["Clothing", "Men", "Shirts"]
    assert doc["extras"] == {"pid": "X", "specs": {"a": [1, 2]}}
    assert parse_record(doc) == record
    assert parse_record(json.dumps(doc)) == record


def test_direct_construction_coerces_types_and_converts_to_utc() -> None:
    record = ProductRecord(id=5, title=["a", "b"], price="$1,299.00", currency="€", category_path="A > B",
                           updated_at="2016-03-26T00:59:23+02:00", image_url=["http://x/1.jpg"])
    assert (record.id, record.title, record.price, record.currency) == ("5", "a b", 1299.0, "EUR")
    assert record.category_path == ["A", "B"]
    assert record.updated_at == _T and record.updated_at.tzinfo == timezone.utc
    assert record.image_url == "http://x/1.jpg"


def test_negative_or_garbage_price_becomes_none_not_an_error() -> None:
    assert ProductRecord(id="x", price=-1).price is None
    assert ProductRecord(id="x", price="call us").price is None


def test_naive_datetime_is_taken_as_utc() -> None:
    assert ProductRecord(id="x", updated_at=datetime(2016, 3, 25, 22, 59, 23)).updated_at == _T


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"id": ""}, "id"), ({"id": "x", "colour": "red"}, "colour"),
     ({"id": "x", "updated_at": "sometime"}, "updated_at"), ({"id": "x", "category_path": 5}, "category_path")],
)
def test_direct_construction_refuses_bad_values(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ProductRecord(**kwargs)
    assert caught.value.errors()[0]["loc"][0] == field


# --------------------------------------------------------------------------------------------
# real Flipkart rows, dirtied
# --------------------------------------------------------------------------------------------

PICKED = ("c2d766ca982eca8304150849735ffef9", "f449ec65dcbc041b6ae5e6a32717d01b", "a60ebb7803c6a31795de3f8949cb6f98",
          "e54bc0a7c3429da2ebef0b30331fe3d2")


@pytest.fixture(scope="module")
def flipkart_rows(datasets: Path) -> dict[str, dict[str, str]]:
    """Picked rows of the real 1k Flipkart export, every column, read with the csv module."""
    with (datasets / "flipkart" / "products_1k_allfields.csv").open(encoding="utf-8", newline="") as fh:
        rows = {row["uniq_id"]: row for row in csv.DictReader(fh) if row["uniq_id"] in PICKED}
    assert set(rows) == set(PICKED), "a picked uniq_id is missing from the shared dataset"
    return rows


def _as_feed(row: dict[str, str], dirt: str) -> dict[str, Any]:
    """The row as one network might publish it, made dirty in one way."""
    raw: dict[str, Any] = dict(row)
    if dirt == "html":
        raw["product_name"] = f"<b>{html.escape(row['product_name'])}</b>"
        raw["description"] = f"<div><p>{html.escape(row['description'])}</p><script>track()</script></div>"
        raw["product_category_tree"] = row["product_category_tree"].replace("&", "&amp;")
    elif dirt == "types":
        raw["discounted_price"] = float(row["discounted_price"])
        raw["image"] = json.loads(row["image"])  # a real list instead of a JSON string
        raw["crawl_timestamp"] = "2016-03-25T22:59:23Z"
    elif dirt == "euro-prices":
        raw["discounted_price"] = f"{int(row['discounted_price']):,}".replace(",", ".") + ",00 €"
        raw["retail_price"] = f"EUR {int(row['retail_price']):,}".replace(",", ".")
    elif dirt == "blank-optional":
        raw.update(brand="", description="   ", product_url=None, image="[]")
    return raw


@pytest.mark.parametrize("uniq_id", PICKED)
@pytest.mark.parametrize("dirt", ["none", "html", "types", "euro-prices", "blank-optional"])
def test_parse_real_dirtied_rows(flipkart_rows: dict[str, dict[str, str]], uniq_id: str, dirt: str) -> None:
    row = flipkart_rows[uniq_id]
    record = parse_record(json.dumps(_as_feed(row, dirt)).encode())

    assert record.id == uniq_id
    assert record.title == " ".join(row["product_name"].split())
    levels = json.loads(row["product_category_tree"])[0].split(">>")
    assert record.category_path == [" ".join(level.split()) for level in levels]
    assert record.price == float(row["discounted_price"])
    assert record.currency == ("EUR" if dirt == "euro-prices" else None)
    assert record.updated_at is not None and record.updated_at.tzinfo == timezone.utc
    if dirt == "blank-optional":
        assert (record.brand, record.description, record.url, record.image_url) == (None, None, None, None)
    else:
        assert record.description == " ".join(row["description"].split())
        assert record.image_url == json.loads(row["image"])[0]
        assert record.url == row["product_url"]
    # Flipkart columns we do not model stay available downstream.
    assert {"pid", "product_rating", "overall_rating", "product_specifications", "is_FK_Advantage_product",
            "retail_price"} <= set(record.extras)


def test_real_row_hard_coded_expectations(flipkart_rows: dict[str, dict[str, str]]) -> None:
    record = parse_record(_as_feed(flipkart_rows["c2d766ca982eca8304150849735ffef9"], "html"))
    assert record.title == "Alisha Solid Women's Cycling Shorts"
    assert record.brand == "Alisha"
    assert record.category_path[:4] == ["Clothing", "Women's Clothing", "Lingerie, Sleep & Swimwear", "Shorts"]
    assert (record.price, record.extras["retail_price"]) == (379.0, "999")
    assert record.updated_at == _T
    assert "track()" not in record.description


# --- issue 11: hostile input at the edge (each case once crash-looped, hung or corrupted data) ---


@pytest.mark.parametrize(
    ("raw", "stage", "reason_contains"),
    [
        (b"[" * 5000 + b"]" * 5000, "parse", "depth limit"),  # was a RecursionError
        (b'{"id": "x", "title": "t", "deep": ' + b'{"a":' * 40 + b"1" + b"}" * 40 + b"}", "parse",
         "PRODCAT_MAX_JSON_DEPTH"),
        (json.dumps({"id": "x", "title": "t", **{f"f{i}": i for i in range(1001)}}).encode(), "parse",
         "PRODCAT_MAX_FIELDS"),
        (json.dumps({"id": "x", "title": "t", "k" * 300: 1}).encode(), "parse", "PRODCAT_MAX_FIELD_NAME_CHARS"),
        (json.dumps({"id": "x", "title": "t" * (1 << 20)}).encode(), "parse", "PRODCAT_MAX_MESSAGE_BYTES"),
        (json.dumps({"id": "x" * 5000, "title": "t"}).encode(), "validate", "PRODCAT_MAX_ID_BYTES"),
        (json.dumps({"id": "€" * 200, "title": "t"}, ensure_ascii=False).encode(), "validate", "600 UTF-8 bytes"),
        (b'{"id": "a\\ud800", "title": "t"}', "parse", "surrogate"),
        (b'{"id": "a", "title": "Shorts \\ud800"}', "parse", "surrogate"),
        (b'{"id": "a", "title": "t", "colour": "\\udfff"}', "parse", "surrogate"),
        ('{"id": "a", "brand": "\ud800", "title": "t"}'.encode("utf-8", "surrogatepass"), "parse", "UTF-8"),
        (json.dumps({"id": {"x": "h49"}, "title": "t"}).encode(), "validate", "expected a string or an integer"),
        (json.dumps({"id": {"nested": 1}, "title": "t"}).encode(), "validate", "expected a string or an integer"),
        (json.dumps({"id": "a", "title": "t", "updated_at": "9999-01-01"}).encode(), "validate", "in the future"),
        (json.dumps({"id": "a", "title": "t", "updated_at": "2026-13-45"}).encode(), "validate", "is not a date"),
        (json.dumps({"id": "a", "title": "t", "updated_at": "10000-01-01"}).encode(), "validate", "is not a date"),
        (b'{"id": "a", "title": "t", "updated_at": 1e20}', "validate", "is not a date"),
        (json.dumps({"id": "a", "title": "t", "updated_at": True}).encode(), "validate", "is not a date"),
    ],
)
def test_issue11_hostile_input_is_refused_with_a_reason(raw: bytes, stage: str, reason_contains: str) -> None:
    with pytest.raises(InvalidRecord) as caught:
        parse_record(raw)
    assert caught.value.stage == stage
    assert reason_contains in caught.value.reason


def test_issue11_distinct_ids_stay_distinct() -> None:
    ids = [parse_record(json.dumps({"id": i, "title": "t"}, ensure_ascii=False).encode()).id
           for i in ("h49", "ｈ４９", "<b>h49</b>", " h49 ", 49, "49")]
    assert ids == ["h49", "ｈ４９", "<b>h49</b>", "h49", "49", "49"]  # padding is not part of an id; 49 is "49"


def test_issue11_prices_parse_strictly() -> None:
    for raw, price in ((json.dumps({"id": "a", "title": "t", "price": [1, 2]}), None),
                       (json.dumps({"id": "a", "title": "t", "price": "1e309"}), None),
                       (json.dumps({"id": "a", "title": "t", "price": ["12.50"]}), 12.5)):
        record = parse_record(raw.encode())
        assert record.price == price
        if price is None:
            assert "price" in record.extras  # the unreadable value is kept, not lost


def test_issue11_a_near_future_updated_at_is_accepted_within_the_skew() -> None:
    now = datetime(2026, 6, 1, tzinfo=timezone.utc)
    soon = json.dumps({"id": "a", "title": "t", "updated_at": "2026-06-01T12:00:00Z"}).encode()
    assert parse_record(soon, now=now).updated_at == datetime(2026, 6, 1, 12, tzinfo=timezone.utc)
    with pytest.raises(InvalidRecord, match="in the future"):
        parse_record(soon, now=now, limits=InputLimits(future_skew_s=3600))
