"""Public catalogues read as the raw affiliate records a feed would publish, plus a noise injector.

Each preset yields plain dicts in feed form (what goes onto ``products.raw``), not cleaned
records: run them through :func:`prodcat.record.parse_record` like any event. The category-
bearing field of every dict (``category``, or Flipkart's ``product_category_tree``) holds the
dataset's own path string unchanged: that is the ground truth for evaluation.

A catalogue prodcat does not know (a header-less CSV, its own column names) is read with a
:class:`~prodcat.mapping.ColumnMapping` (``--columns``/``--mapping``/``--no-header`` on the
command line): this module is the one place a mapping is applied, for every command.

The shared datasets are referenced by path (``../shared/datasets`` beside the repository) and
never copied into it; see that folder's README for provenance and licences.
"""

from __future__ import annotations

import csv
import html
import itertools
import json
import random
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any, Literal, get_args

from prodcat.cleaning import parse_price, split_category_path
from prodcat.errors import ConfigError, DataError
from prodcat.mapping import ColumnKey, ColumnMapping
from prodcat.record import ProductRecord, canonical_field
from prodcat.taxonomy import normalise_name

__all__ = ["Preset", "NoiseKind", "NOISE_KINDS", "IMAGE_SUFFIXES", "read_catalogue", "detect_preset", "add_noise"]

Preset = Literal["auto", "jsonl", "csv", "flipkart", "flipkart-names", "flipkart-images", "myntra", "myntra-images",
                 "bigbasket"]
# Applied in this order: Unicode noise inside words first so HTML tags stay intact.
NoiseKind = Literal["unicode", "delimiter", "html", "price", "blank"]
NOISE_KINDS: tuple[NoiseKind, ...] = get_args(NoiseKind)

_FLIPKART_NETWORK = "flipkart-feed"
_MYNTRA_NETWORK = "myntra-feed"
_BIGBASKET_NETWORK = "bigbasket-feed"
_BIGBASKET_COLUMNS = ("index", "product", "category", "sub_category", "brand", "sale_price", "type")
_FLIPKART_FIELDS = ("uniq_id", "product_name", "product_category_tree", "brand", "description", "retail_price",
                    "discounted_price", "image", "product_url", "crawl_timestamp")
_MYNTRA_EXTRAS = ("baseColour", "season", "year", "usage")
# the presets a column mapping applies to: the others know their columns already
_MAPPABLE_PRESETS = ("auto", "csv", "jsonl")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp")  # photos found by product id in --images-dir


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def read_catalogue(path: Path, preset: Preset = "auto", *, mapping: ColumnMapping | None = None,
                   images_dir: Path | None = None) -> Iterator[dict[str, Any]]:
    """Yield the products of a catalogue file as raw affiliate-style dicts.

    ``preset`` picks the column mapping; "auto" chooses from the file's name and header (see
    :func:`detect_preset`). ``mapping`` says which column holds which field instead (generic
    CSV/JSONL only: preset "auto", "csv" or "jsonl"): mapped columns come out under prodcat's
    field names. ``images_dir`` is where the photos are: a record's image file name (a value
    without "://") is looked up there, and a record without one gets the photo named after its
    id (``<id>.jpg``, ``.png``...) if the folder has it; the presets with photos look there
    instead of ``images/`` beside the file. Fully blank rows are skipped (the Flipkart 1k file
    has thousands). Raises :class:`DataError` for a missing file, an unknown preset, missing
    columns, a mapping that does not fit the file or a malformed line.
    """
    path = Path(path)
    if preset not in _READERS and preset != "auto":
        raise DataError(f"unknown catalogue preset {preset!r}; expected one of {', '.join(get_args(Preset))}")
    if not path.is_file():
        raise DataError(
            f"catalogue file not found: {path}; pass an existing file (the shared datasets live in "
            "../shared/datasets beside the repository, see its README)"
        )
    if images_dir is not None and not Path(images_dir).is_dir():
        raise DataError(f"--images-dir: {images_dir} is not a folder; pass the folder holding the photos")
    if mapping is not None:
        if preset not in _MAPPABLE_PRESETS:
            raise ConfigError(f"{mapping.source}: a column mapping applies to generic catalogues (preset auto, csv or jsonl), "
                              f"received preset {preset!r}: that preset knows its columns already")
        chosen = _format_of(path) if preset == "auto" else preset
        rows = _read_mapped_csv(path, mapping) if chosen == "csv" else _read_mapped_jsonl(path, mapping)
    else:
        chosen = detect_preset(path) if preset == "auto" else preset
        rows = _READERS[chosen](path, Path(images_dir) if images_dir is not None else path.parent / "images")
    if images_dir is None or chosen not in _MAPPABLE_PRESETS:
        yield from rows
        return
    photos = _photos_by_stem(Path(images_dir))
    for raw in rows:
        yield _with_photo(raw, Path(images_dir), photos)


def _format_of(path: Path) -> Literal["csv", "jsonl"]:
    """csv or jsonl, from the extension only: a mapped file's header cannot tell a preset."""
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".ndjson", ".json"}:
        return "jsonl"
    if suffix in {".csv", ".tsv", ".txt"}:
        return "csv"
    raise DataError(f"cannot tell the format of {path.name!r}; pass --preset jsonl or --preset csv explicitly")


def detect_preset(path: Path) -> Preset:
    """The preset for a file, from its extension, name and (for CSV) its header line."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".ndjson", ".json"}:
        return "jsonl"
    if suffix != ".csv":
        raise DataError(f"cannot tell the format of {path.name!r}; pass preset='jsonl' or 'csv' explicitly "
                        "(--preset on the command line)")
    if path.name == "products_20k_name_tree.csv":
        return "flipkart-names"  # headerless, so the header cannot tell
    with path.open(encoding="utf-8-sig", newline="") as fh:
        header = set(next(csv.reader(fh), []))
    if {"uniq_id", "product_category_tree", "product_name"} <= header:
        return "flipkart"
    if {"masterCategory", "articleType"} <= header:
        return "myntra-images" if "filename" in header else "myntra"
    if {"level1", "product_category_tree", "filename"} <= header:
        return "flipkart-images"
    if {"product", "sub_category", "type", "sale_price"} <= header:
        return "bigbasket"
    return "csv"


def _rows(path: Path, *, fieldnames: list[str] | None = None,
          required: Collection[str] = ()) -> Iterator[dict[str, str]]:
    """CSV rows as dicts, blank rows skipped, with the line number in any error."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh, fieldnames=fieldnames)
        missing = set(required) - set(reader.fieldnames or [])
        if missing:
            raise DataError(
                f"{path} lacks the column(s) {', '.join(sorted(missing))} this preset needs; "
                f"found {reader.fieldnames}. Pick the preset matching the file"
            )
        try:
            for row in reader:
                if any(v and v.strip() for v in row.values() if isinstance(v, str)):
                    row.pop(None, None)  # surplus cells of a ragged line; csv keys them under None
                    yield row
        except csv.Error as exc:
            raise DataError(f"{path}:{reader.line_num}: malformed CSV ({exc})") from exc


def _read_jsonl(path: Path, images: Path | None = None) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8-sig") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError as exc:
                raise DataError(f"{path}:{number}: not valid JSON ({exc})") from exc
            if not isinstance(value, dict):
                raise DataError(f"{path}:{number}: expected a JSON object per line, found {type(value).__name__}")
            yield value


def _read_csv(path: Path, images: Path) -> Iterator[dict[str, Any]]:
    yield from _rows(path)


def _read_flipkart(path: Path, images: Path) -> Iterator[dict[str, Any]]:
    for row in _rows(path, required=_FLIPKART_FIELDS):
        yield {**{name: row[name] for name in _FLIPKART_FIELDS}, "network": _FLIPKART_NETWORK}


def _read_flipkart_names(path: Path, images: Path) -> Iterator[dict[str, Any]]:
    for row in _rows(path, fieldnames=["uniq_id", "product_name", "product_category_tree"]):
        yield {**row, "network": _FLIPKART_NETWORK}


def _image_uri(images: Path, filename: str) -> str | None:
    # Images sit in images/ beside the CSV unless --images-dir says otherwise; a file:// URI keeps
    # image_url a URL like any other.
    return (images / filename).resolve().as_uri() if filename else None


def _read_flipkart_images(path: Path, images: Path) -> Iterator[dict[str, Any]]:
    for row in _rows(path, required=("id", "filename", "product_name", "product_category_tree", "brand")):
        yield {
            "uniq_id": row["id"],
            "product_name": row["product_name"],
            "product_category_tree": row["product_category_tree"],
            "brand": row["brand"],
            "image_url": _image_uri(images, row["filename"]),
            "network": _FLIPKART_NETWORK,
        }


def _myntra(row: dict[str, str]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "title": row["productDisplayName"],
        "gender": row["gender"],
        "category": " > ".join(row[c] for c in ("masterCategory", "subCategory", "articleType")),
        "brand": None,  # Myntra has no brand column; it is usually the name's first word(s)
        **{name: row.get(name) for name in _MYNTRA_EXTRAS},
        "network": _MYNTRA_NETWORK,
    }


_MYNTRA_COLUMNS = ("id", "gender", "masterCategory", "subCategory", "articleType", "productDisplayName")


def _read_myntra(path: Path, images: Path) -> Iterator[dict[str, Any]]:
    for row in _rows(path, required=_MYNTRA_COLUMNS):
        yield _myntra(row)


def _read_myntra_images(path: Path, images: Path) -> Iterator[dict[str, Any]]:
    for row in _rows(path, required=(*_MYNTRA_COLUMNS, "filename")):
        yield {**_myntra(row), "image_url": _image_uri(images, row["filename"])}


def _read_bigbasket(path: Path, images: Path) -> Iterator[dict[str, Any]]:
    for row in _rows(path, required=_BIGBASKET_COLUMNS):
        yield {
            "id": row["index"],
            "title": row["product"],
            "brand": row["brand"],
            "category": " > ".join(row[c] for c in ("category", "sub_category", "type")),  # its three levels
            "price": row["sale_price"],
            "currency": "INR",
            "network": _BIGBASKET_NETWORK,
        }


_READERS: dict[str, Callable[[Path, Path], Iterator[dict[str, Any]]]] = {
    "jsonl": _read_jsonl,
    "csv": _read_csv,
    "flipkart": _read_flipkart,
    "flipkart-names": _read_flipkart_names,
    "flipkart-images": _read_flipkart_images,
    "myntra": _read_myntra,
    "myntra-images": _read_myntra_images,
    "bigbasket": _read_bigbasket,
}


# --------------------------------------------------------------------------------------------
# Mapped catalogues and photos by id
# --------------------------------------------------------------------------------------------


def _unmapped_name(name: str, mapped: Collection[str]) -> str:
    """The key an unmapped column keeps: its own name, unless prodcat would read it as a mapped field.

    E.g. "name" when another column is mapped to title: kept as "name (unmapped)" (an extra),
    so the mapping decides and nothing is dropped.
    """
    return f"{name} (unmapped)" if canonical_field(name) in mapped else name


def _positions(mapping: ColumnMapping, header: list[str] | None, width: int, path: Path) -> dict[int, str]:
    """The mapping as position -> key of the output dict, checked against the file's columns."""
    columns = f"(positions 0-{width - 1})" if width else "(none)"
    by_name = {name.strip(): i for i, name in reversed(list(enumerate(header or [])))}
    chosen: dict[int, str] = {}
    for key, field in mapping.columns.items():
        if isinstance(key, int):
            if key >= width:
                raise DataError(f"{mapping.source}: column {key} ({field}) is out of range: {path.name} has {width} "
                                f"column(s) {columns}; positions count from 0")
            position = key
        else:
            if key not in by_name:
                shown = ", ".join(repr(n) for n in (header or [])[:12]) + (", ..." if len(header or []) > 12 else "")
                raise DataError(f"{mapping.source}: no column named {key!r} in the header of {path.name}; "
                                f"expected one of {shown} (or a position from 0)")
            position = by_name[key]
        if position in chosen:
            raise DataError(f"{mapping.source}: column {position} is mapped twice ({chosen[position]} and {field})")
        chosen[position] = field
    mapped = set(chosen.values())
    for position in range(width):
        if position not in chosen:
            chosen[position] = (_unmapped_name(header[position], mapped) if header is not None and
                                header[position].strip() else f"column_{position}")
    return chosen


def _read_mapped_csv(path: Path, mapping: ColumnMapping) -> Iterator[dict[str, Any]]:
    """CSV rows through ``mapping``: mapped cells under prodcat's field names, blank rows skipped."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, delimiter=mapping.delimiter)
        try:
            rows = (row for row in reader if any(cell.strip() for cell in row))
            header = next(rows, None) if mapping.header else None
            if mapping.header and header is None:
                return  # an empty file: no product
            first = next(rows, None)
            if first is None:
                return
            positions = _positions(mapping, header, len(header) if header is not None else len(first), path)
            for row in itertools.chain([first], rows):
                # a short (ragged) line lacks its last cells; surplus cells beyond the header are dropped
                yield {key: row[i] if i < len(row) else "" for i, key in positions.items()}
        except csv.Error as exc:
            raise DataError(f"{path}:{reader.line_num}: malformed CSV ({exc})") from exc


def _read_mapped_jsonl(path: Path, mapping: ColumnMapping) -> Iterator[dict[str, Any]]:
    """JSONL objects with their keys renamed by ``mapping`` (positions mean nothing in an object)."""
    if not mapping.header:
        raise ConfigError(f"{mapping.source}: --no-header/header: false applies to CSV; {path.name} is JSONL")
    positions = [key for key in mapping.columns if isinstance(key, int)]
    if positions:
        raise ConfigError(f"{mapping.source}: column {positions[0]} is a position, but {path.name} is JSONL (objects, "
                          "not rows); map its keys by name, e.g. sku=id,name=title")
    renames: dict[ColumnKey, str] = dict(mapping.columns)
    mapped = set(renames.values())
    for raw in _read_jsonl(path):
        yield {renames.get(key, _unmapped_name(key, mapped)): value for key, value in raw.items()}


def _photos_by_stem(folder: Path) -> dict[str, Path]:
    """The photos in ``folder`` by file name without extension, listed once (not a stat per product)."""
    try:
        return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()}
    except OSError as exc:
        raise DataError(f"--images-dir: cannot list {folder} ({exc.strerror})") from None


def _with_photo(raw: dict[str, Any], folder: Path, photos: dict[str, Path]) -> dict[str, Any]:
    """``raw`` with its image as a URL: a file name resolved in ``folder``, or the photo named after its id."""
    image_key = next((k for k, v in raw.items() if canonical_field(k) == "image_url" and isinstance(v, str)
                      and v.strip()), None)
    if image_key is not None:
        value = raw[image_key].strip()
        if "://" in value:
            return raw  # a URL (http, file) stays as it is
        return {**raw, image_key: (folder / value).resolve().as_uri()}
    product = next((v for k, v in raw.items() if canonical_field(k) == "id" and v not in (None, "")), None)
    photo = photos.get(str(product).strip()) if product is not None else None
    if photo is None:
        return raw
    blank = [k for k in raw if canonical_field(k) == "image_url"]  # an empty image column gives way
    return {**{k: v for k, v in raw.items() if k not in blank}, "image_url": photo.resolve().as_uri()}


# --------------------------------------------------------------------------------------------
# Noise
# --------------------------------------------------------------------------------------------

_NOISE_DELIMITERS = (" > ", " >> ", " // ", " | ", " » ", ">", "|")


def _us(amount: float) -> str:
    """US grouping: "1,299.00"; whole even amounts without decimals ("1,300") so both spellings occur."""
    return f"{amount:,.0f}" if amount.is_integer() and amount % 2 == 0 else f"{amount:,.2f}"


def _eu(amount: float) -> str:
    """European grouping: "1.299,00"."""
    return _us(amount).translate(str.maketrans(",.", ".,"))


_PRICE_STYLES: tuple[Callable[[float], str], ...] = (
    lambda p: f"{_eu(p)} €",
    lambda p: f"€{_eu(p)}",
    lambda p: f"{_eu(p).replace('.', chr(0xA0))} EUR",  # "1 299,00 EUR" with a non-breaking space
    lambda p: f"${_us(p)}",
    lambda p: f"£{_us(p)}",
    lambda p: f"Rs. {_us(p)}",
    lambda p: f"₹{_us(p)}",
)


def _fields_of(raw: dict[str, Any], *names: str) -> list[str]:
    """Keys of ``raw`` that map onto any of our field ``names`` and hold a non-empty string."""
    return [k for k, v in raw.items() if canonical_field(k) in names and isinstance(v, str) and v.strip()]


def _html(raw: dict[str, Any], rng: random.Random) -> None:
    for key in _fields_of(raw, "title"):
        raw[key] = f"<b>{html.escape(raw[key], quote=False)}</b>"
    for key in _fields_of(raw, "description"):
        raw[key] = f"<p>{html.escape(raw[key], quote=False)}</p><br/>"
    for key in _fields_of(raw, "category", "brand"):
        raw[key] = raw[key].replace("&", "&amp;")


def _delimiter(raw: dict[str, Any], rng: random.Random) -> None:
    for key in _fields_of(raw, "category"):
        path = split_category_path(raw[key])
        if len(path) > 1:
            raw[key] = rng.choice(_NOISE_DELIMITERS).join(path)


def _blank_field(raw: dict[str, Any], rng: random.Random) -> None:
    optional = [k for k in raw if canonical_field(k) != "id"]
    if optional:
        key = rng.choice(optional)
        choice = rng.randrange(3)
        if choice == 0:
            del raw[key]
        else:
            raw[key] = "" if choice == 1 else None


def _fullwidth(word: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in word)


def _unicode(raw: dict[str, Any], rng: random.Random) -> None:
    for key in _fields_of(raw, "title", "description", "brand"):
        words = raw[key].split(" ")
        i = rng.randrange(len(words))
        words[i] = _fullwidth(words[i])
        # NBSP between words, a zero-width space inside one, stray edges: all common in feeds.
        text = "\u00a0".join(words) if rng.random() < 0.5 else " ".join(words)
        if len(words[0]) > 2:
            text = text[:1] + "\u200b" + text[1:]
        raw[key] = f"  \t{text} \n"


def _price(raw: dict[str, Any], rng: random.Random) -> None:
    for key, value in list(raw.items()):
        if canonical_field(key) != "price":
            continue
        amount, _ = parse_price(value)
        if amount is not None:
            raw[key] = rng.choice(_PRICE_STYLES)(amount)


_NOISERS: dict[str, Callable[[dict[str, Any], random.Random], None]] = {
    "html": _html, "delimiter": _delimiter, "blank": _blank_field, "unicode": _unicode, "price": _price,
}


def add_noise(raw: dict[str, Any], rng: random.Random, rate: float,
              *, kinds: Collection[NoiseKind] = NOISE_KINDS) -> dict[str, Any]:
    """A noisy copy of ``raw``: each kind of noise is applied with probability ``rate``.

    Kinds: "unicode" (NBSP, fullwidth letters, zero-width space, stray whitespace),
    "delimiter" (another category delimiter), "html" (tags and entities around text),
    "price" (amount as a European/US/Indian string with a currency sign), "blank" (one
    optional field removed, emptied or nulled). Cleaning undoes all but "blank", so the clean values of a
    noisy copy equal the original's. The id is never touched.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"expected rate in [0, 1], received rate={rate!r}")
    unknown = set(kinds) - set(NOISE_KINDS)
    if unknown:
        raise ValueError(f"unknown noise kind(s) {sorted(unknown)}; expected some of {list(NOISE_KINDS)}")
    noisy = dict(raw)
    for kind in NOISE_KINDS:  # fixed order, so a seed gives the same result whatever `kinds` order
        if kind in kinds and rng.random() < rate:
            _NOISERS[kind](noisy, rng)
    return noisy


def true_category_path(record: ProductRecord) -> list[str]:
    """A catalogue record's own category path, as ground truth.

    Flipkart paths often end with the product's own (maybe truncated) name, which is not a
    category: it is dropped when it starts like the title (or the title starts like it).
    """
    path = list(record.category_path)
    if path and record.title:
        last, title = normalise_name(path[-1].rstrip(". ")), normalise_name(record.title)
        if last and (title.startswith(last) or last.startswith(title)):
            return path[:-1]
    return path
