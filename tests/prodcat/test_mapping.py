"""Column mappings (--columns, --mapping, --no-header) and the catalogue reader applying them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prodcat.catalogue import read_catalogue
from prodcat.errors import ConfigError, DataError
from prodcat.mapping import ColumnMapping, load_mapping_file, mapping_from_options, parse_columns
from prodcat.record import parse_record

HEADERLESS = ('A1,Red cotton shirt,Clothing > Shirts,Acme,19.99,a1.jpg\n'
              'A2,Blue jeans,Clothing > Jeans,Denimco,49,\n'
              ',,,,,\n'
              'A3,"Running shoe, white",Shoes > Sneakers,Fleet,"1,299.00",https://cdn.example/a3.jpg\n')


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    (tmp_path / "shop.csv").write_text(HEADERLESS, encoding="utf-8")
    return tmp_path / "shop.csv"


def test_columns_in_order_read_a_headerless_csv(shop):
    mapping = mapping_from_options("id,title,category,brand,price,-", no_header=True)
    rows = list(read_catalogue(shop, mapping=mapping))
    assert [r["id"] for r in rows] == ["A1", "A2", "A3"]  # the first row is a product, the blank one skipped
    assert rows[0] == {"id": "A1", "title": "Red cotton shirt", "category": "Clothing > Shirts", "brand": "Acme",
                       "price": "19.99", "column_5": "a1.jpg"}  # the skipped column is kept as an extra
    record = parse_record(rows[2])
    assert (record.title, record.category_path, record.price) == ("Running shoe, white", ["Shoes", "Sneakers"], 1299.0)


def test_positions_and_aliases(shop):
    mapping = mapping_from_options("0=id,1=name,3=manufacturer,2=category", no_header=True)
    assert mapping.columns == {0: "id", 1: "title", 3: "brand", 2: "category"}
    record = parse_record(next(read_catalogue(shop, "csv", mapping=mapping)))
    assert (record.id, record.brand, record.extras) == ("A1", "Acme", {"column_4": "19.99", "column_5": "a1.jpg"})


def test_header_names_win_over_prodcat_aliases(tmp_path):
    (tmp_path / "feed.csv").write_text("sku,name,Product Title,cat\n7,short,The long title,Toys > Cars\n")
    mapping = mapping_from_options("sku=id,Product Title=title,cat=category")
    raw = next(read_catalogue(tmp_path / "feed.csv", mapping=mapping))
    record = parse_record(raw)
    assert (record.id, record.title, record.category_path) == ("7", "The long title", ["Toys", "Cars"])
    assert record.extras == {"name (unmapped)": "short"}  # 'name' would have been read as the title


def test_mapping_file_yaml_and_json(tmp_path, shop):
    (tmp_path / "m.yaml").write_text("header: false\ncolumns:\n  0: id\n  1: title\n  2: category\n")
    (tmp_path / "m.json").write_text(json.dumps({"header": False, "columns": ["id", "title", "category"]}))
    for name in ("m.yaml", "m.json"):
        mapping = mapping_from_options(mapping_file=tmp_path / name)
        assert mapping.columns == {0: "id", 1: "title", 2: "category"} and not mapping.header
        assert [r["category"] for r in read_catalogue(shop, mapping=mapping)][0] == "Clothing > Shirts"
    # --columns on top of the file: another column for a field is refused, the same column is replaced
    with pytest.raises(ConfigError, match="field 'title' is mapped twice"):
        mapping_from_options("4=title", tmp_path / "m.yaml")
    assert mapping_from_options("1=description,4=price", tmp_path / "m.yaml").columns == {
        0: "id", 1: "description", 2: "category", 4: "price"}


def test_semicolons_and_no_header_override(tmp_path):
    (tmp_path / "m.yaml").write_text("delimiter: ';'\ncolumns: [id, title]\n")
    (tmp_path / "f.csv").write_text("1;Lamp\n2;Chair\n")
    mapping = mapping_from_options(mapping_file=tmp_path / "m.yaml", no_header=True)
    assert [r["title"] for r in read_catalogue(tmp_path / "f.csv", mapping=mapping)] == ["Lamp", "Chair"]


def test_jsonl_keys_are_renamed(tmp_path):
    (tmp_path / "f.jsonl").write_text('{"ref": "9", "label": "Desk lamp", "tree": "Home > Lamps"}\n')
    mapping = mapping_from_options("ref=id,label=title,tree=category")
    record = parse_record(next(read_catalogue(tmp_path / "f.jsonl", mapping=mapping)))
    assert (record.id, record.title, record.category_path) == ("9", "Desk lamp", ["Home", "Lamps"])


@pytest.mark.parametrize(("columns", "no_header", "message"), [
    ("id,title,maker", True, "unknown field 'maker'; expected one of id, network, retailer, title"),
    ("0=id,x", True, "not both"),
    ("0=id,0=title", True, "column 0 is mapped twice"),
    ("title,name", True, "field 'title' is mapped twice (columns 0 and 1)"),
    ("-3=id", True, "column positions count from 0"),
    (",,", True, "expected fields in column order"),
    ("title,category", True, "needs a column mapped to 'id'"),
    ("sku=id", True, "a file without a header has no column names"),
])
def test_bad_columns_are_one_line_config_errors(columns, no_header, message):
    with pytest.raises(ConfigError) as caught:
        mapping_from_options(columns, no_header=no_header)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert str(caught.value).startswith("--columns")


def test_no_header_alone_is_an_error():
    with pytest.raises(ConfigError, match="--no-header: a CSV without a header needs --columns or --mapping"):
        mapping_from_options(no_header=True)
    assert mapping_from_options() is None


@pytest.mark.parametrize(("text", "message"), [
    ("columns: {0: id, 1: colour}\n", "unknown field 'colour'"),
    ("header: maybe\ncolumns: [id]\n", "header: Input should be a valid boolean"),
    ("delimiter: ';;'\ncolumns: [id]\n", "delimiter: String should have at most 1 character"),
    ("columns: [id]\nsep: ';'\n", "unknown key 'sep'; expected header, delimiter and columns"),
    ("- id\n- title\n", "expected a mapping with a 'columns' key"),
    ("columns: [id\n", "not valid YAML/JSON"),
])
def test_bad_mapping_files_are_one_line_data_errors(tmp_path, text, message):
    (tmp_path / "m.yaml").write_text(text)
    with pytest.raises(DataError) as caught:
        load_mapping_file(tmp_path / "m.yaml")
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert str(caught.value).startswith(f"mapping file {tmp_path / 'm.yaml'}")


def test_mapping_checked_against_the_file(shop, tmp_path):
    with pytest.raises(DataError, match=r"column 9 \(title\) is out of range: shop.csv has 6 column\(s\) "
                                        r"\(positions 0-5\)"):
        list(read_catalogue(shop, mapping=mapping_from_options("0=id,9=title", no_header=True)))
    (tmp_path / "h.csv").write_text("sku,name\n1,x\n")
    with pytest.raises(DataError, match="no column named 'id' in the header of h.csv; expected one of 'sku', 'name'"):
        list(read_catalogue(tmp_path / "h.csv", mapping=mapping_from_options("id=id")))
    with pytest.raises(ConfigError, match="applies to generic catalogues"):
        list(read_catalogue(shop, "flipkart", mapping=mapping_from_options("id", no_header=True)))
    (tmp_path / "f.jsonl").write_text('{"id": 1}\n')
    with pytest.raises(ConfigError, match="column 0 is a position, but f.jsonl is JSONL"):
        list(read_catalogue(tmp_path / "f.jsonl", mapping=mapping_from_options("0=id")))
    with pytest.raises(ConfigError, match="applies to CSV"):
        list(read_catalogue(tmp_path / "f.jsonl", mapping=mapping_from_options("0=id", no_header=True)))


def test_photos_by_file_name_column_or_by_id(tmp_path, shop):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a1.jpg").write_bytes(b"x")
    (photos / "A2.png").write_bytes(b"x")
    mapping = mapping_from_options("id,title,category,brand,price,image_url", no_header=True)
    urls = [r.get("image_url") for r in read_catalogue(shop, mapping=mapping, images_dir=photos)]
    assert urls == [(photos / "a1.jpg").as_uri(), (photos / "A2.png").as_uri(), "https://cdn.example/a3.jpg"]
    with pytest.raises(DataError, match="--images-dir: .* is not a folder"):
        list(read_catalogue(shop, mapping=mapping, images_dir=tmp_path / "nope"))


def test_columns_text_is_split_only():
    assert parse_columns("id, title ,-,brand") == {0: "id", 1: "title", 2: "-", 3: "brand"}
    assert parse_columns("0=id,Product Name=title") == {0: "id", "Product Name": "title"}
    assert ColumnMapping.build({"columns": {"0": "id"}}, "x").columns == {0: "id"}  # JSON's string keys
