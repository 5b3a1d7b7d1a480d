"""The cleaned affiliate product record and the parser that turns a raw event into one.

``parse_record`` is the single entry point for raw input: decode, map feed-specific field
names onto ours, enforce the size limit, clean (:mod:`prodcat.cleaning`) and validate. Every
rejection is an :class:`~prodcat.errors.InvalidRecord` whose ``stage`` is "parse" (not a JSON
object) or "validate" (a JSON object we cannot use), so the stream can dead-letter it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from prodcat.cleaning import (
    clean_record,
    first_url,
    normalise_currency,
    parse_datetime,
    parse_price,
    split_category_path,
    to_text,
)
from prodcat.errors import InvalidRecord

__all__ = ["ProductRecord", "parse_record", "canonical_field", "FIELD_ALIASES"]

# Feed field name -> our field, in order of preference within each field (the first present,
# non-empty one wins; the others are kept as extras). Names are compared after folding case
# and dropping "_", "-", " " and ".", so "imageUrl", "image_url" and "Image URL" are one name.
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("id", "product_id", "uniq_id", "sku", "item_id", "offer_id", "aw_product_id"),
    "network": ("network", "affiliate_network", "feed"),
    "retailer": ("retailer", "merchant", "merchant_name", "advertiser", "shop", "store", "seller"),
    "title": ("title", "name", "product_name", "product_title", "productDisplayName"),
    "brand": ("brand", "brand_name", "manufacturer"),
    "category": ("category", "product_category_tree", "category_path", "categories", "category_name",
                 "merchant_category", "product_type"),
    "description": ("description", "product_description", "long_description", "short_description", "desc"),
    "gender": ("gender", "sex", "ideal_for", "target_gender"),
    "size": ("size", "sizes"),
    # Prefer what the customer pays now: the discounted price over the list price.
    "price": ("discounted_price", "sale_price", "search_price", "offer_price", "price", "retail_price"),
    "currency": ("currency", "currency_code", "price_currency"),
    "image_url": ("image_url", "image", "image_link", "images", "image_urls", "merchant_image_url",
                  "aw_image_url", "thumbnail"),
    "url": ("url", "link", "product_url", "deeplink", "aw_deep_link", "merchant_deep_link"),
    "updated_at": ("updated_at", "last_updated", "crawl_timestamp", "updated", "modified", "last_modified",
                   "timestamp"),
}


def _fold_key(key: str) -> str:
    return re.sub(r"[\s_.\-]", "", key).casefold()


_ALIAS_TO_FIELD = {_fold_key(alias): name for name, aliases in FIELD_ALIASES.items() for alias in aliases}
_ALIAS_RANK = {_fold_key(alias): rank for aliases in FIELD_ALIASES.values() for rank, alias in enumerate(aliases)}


def canonical_field(key: str) -> str | None:
    """Our field name for a feed's field name ("product_name" -> "title"); None if unknown."""
    return _ALIAS_TO_FIELD.get(_fold_key(key))


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value in ([], {})


class ProductRecord(BaseModel):
    """A cleaned affiliate product. Build it with :func:`parse_record` from raw input.

    Constructing it directly is tolerant of types (numbers as ids, lists as text, price
    strings) but does no HTML or Unicode cleaning; unknown fields are refused so typos surface.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="stable product id from the feed; the Elasticsearch doc id")
    network: str | None = None
    retailer: str | None = None
    title: str | None = None
    brand: str | None = None
    category: str | None = Field(None, description="the feed's own category string, cleaned")
    category_path: list[str] = Field(default_factory=list, description="category split into levels")
    description: str | None = None
    gender: str | None = Field(None, description="women | men | girls | boys | unisex | kids")
    size: str | None = None
    price: float | None = Field(None, ge=0)
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$", description="ISO 4217 code")
    image_url: str | None = None
    url: str | None = None
    updated_at: datetime | None = Field(None, description="timezone-aware, UTC")
    extras: dict[str, Any] = Field(default_factory=dict, description="every input field we do not model")

    @field_validator("id", mode="before")
    @classmethod
    def _id_text(cls, value: Any) -> str:
        text = to_text(value)
        if text is None or not text.strip():
            raise ValueError(f"expected a non-empty string or number, received {value!r}")
        return text.strip()

    @field_validator("network", "retailer", "title", "brand", "category", "description", "gender", "size",
                     mode="before")
    @classmethod
    def _optional_text(cls, value: Any) -> str | None:
        text = to_text(value)
        if text is None:
            return None
        return text.strip() or None

    @field_validator("image_url", "url", mode="before")
    @classmethod
    def _url(cls, value: Any) -> str | None:
        return first_url(value)

    @field_validator("category_path", mode="before")
    @classmethod
    def _path(cls, value: Any) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            return split_category_path(value)
        if isinstance(value, (list, tuple)):
            return [t.strip() for t in map(to_text, value) if t and t.strip()]
        raise ValueError(f"expected a list of category names or a path string, received {type(value).__name__}")

    @field_validator("price", mode="before")
    @classmethod
    def _price(cls, value: Any) -> float | None:
        return parse_price(value)[0]

    @field_validator("currency", mode="before")
    @classmethod
    def _currency(cls, value: Any) -> str | None:
        return normalise_currency(value)

    @field_validator("updated_at", mode="before")
    @classmethod
    def _updated_at(cls, value: Any) -> datetime | None:
        if _blank(value):
            return None
        parsed = parse_datetime(value)
        if parsed is None:
            raise ValueError(f"expected an ISO-8601 string, a datetime or epoch seconds/ms, received {value!r}")
        return parsed

    @field_validator("updated_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)

    def to_document(self) -> dict[str, Any]:
        """A JSON-serialisable dict for Elasticsearch (datetimes as ISO-8601 strings)."""
        return self.model_dump(mode="json")


# --------------------------------------------------------------------------------------------
# Parsing raw events
# --------------------------------------------------------------------------------------------


def _decode(raw: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    """Raw bytes/str/dict -> a JSON object as a dict, or InvalidRecord(stage="parse")."""
    if isinstance(raw, Mapping):
        return dict(raw)
    if isinstance(raw, (bytes, bytearray, memoryview)):
        try:
            raw = bytes(raw).decode("utf-8-sig")  # -sig: a leading BOM is noise, not content
        except UnicodeDecodeError as exc:
            raise InvalidRecord(
                f"value is not UTF-8 text (bad byte at position {exc.start}); feeds must publish UTF-8 JSON",
                stage="parse",
            ) from exc
    if not isinstance(raw, str):
        raise InvalidRecord(f"expected bytes, str or dict, received {type(raw).__name__}", stage="parse")
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except ValueError as exc:
        snippet = raw[:60] + ("..." if len(raw) > 60 else "")
        raise InvalidRecord(f"value is not valid JSON ({exc}); received {snippet!r}", stage="parse") from exc
    if not isinstance(value, dict):
        raise InvalidRecord(
            f"expected a JSON object with product fields, received a JSON {_json_type(value)}", stage="parse"
        )
    return value


def _reject_constant(name: str) -> float:
    # NaN/Infinity are not JSON; accepting them would put non-finite numbers in Elasticsearch.
    raise ValueError(f"{name} is not valid JSON")


def _json_type(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def _field_size(value: Any) -> int:
    """Characters a field occupies: its text, or its JSON form for lists/objects."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (list, dict)):
        return len(json.dumps(value, ensure_ascii=False, default=str))
    return 0


def _check_sizes(data: Mapping[str, Any], max_field_chars: int) -> None:
    for key, value in data.items():
        size = _field_size(value)
        if size > max_field_chars:
            raise InvalidRecord(
                f"field {key!r} has {size:,} characters, more than max_field_chars={max_field_chars:,}; "
                "truncate it in the feed or raise PRODCAT_MAX_FIELD_CHARS",
                stage="validate",
            )


def _canonicalise(data: Mapping[str, Any]) -> dict[str, Any]:
    """Map feed field names to ours; the best-ranked non-empty alias wins, the rest are extras."""
    chosen: dict[str, tuple[int, str]] = {}
    for key, value in data.items():
        name = canonical_field(str(key))
        if name is None or _blank(value):
            continue
        if name == "price" and parse_price(value)[0] is None:
            continue  # an unreadable discounted price must not hide a readable list price
        rank = _ALIAS_RANK[_fold_key(str(key))]
        if name not in chosen or rank < chosen[name][0]:
            chosen[name] = (rank, key)
    out: dict[str, Any] = {name: data[key] for name, (_, key) in chosen.items()}
    used = {key for _, key in chosen.values()}
    extras = {str(k): v for k, v in data.items() if k not in used and canonical_field(str(k)) is None}
    # Unused aliases (e.g. retail_price beside discounted_price) are information: keep them.
    extras.update({str(k): v for k, v in data.items() if k not in used and canonical_field(str(k)) is not None
                   and not _blank(v)})
    nested = extras.pop("extras", None)
    if isinstance(nested, Mapping):  # a dumped ProductRecord round-trips
        extras = {**nested, **extras}
    elif nested is not None:
        extras["extras"] = nested
    if "category" in out and "category_path" in data and "category_path" not in used:
        # category_path is derived from category (a dumped record carries both): not an extra.
        extras.pop("category_path", None)
    out["extras"] = extras
    return out


def parse_record(raw: bytes | str | Mapping[str, Any], *, max_field_chars: int = 20_000) -> ProductRecord:
    """Decode, map, clean and validate one raw product event.

    Raises :class:`InvalidRecord` with ``stage="parse"`` when the value is not UTF-8, not JSON or
    not a JSON object, and ``stage="validate"`` when the id is missing, a field is longer than
    ``max_field_chars`` or there is nothing to classify (no title, description or category).
    """
    data = _decode(raw)
    _check_sizes(data, max_field_chars)
    fields = clean_record(_canonicalise(data))
    if fields.get("id") is None:
        raise InvalidRecord(
            "missing id: expected a non-empty 'id' (or one of "
            f"{', '.join(FIELD_ALIASES['id'][1:])}); received fields {sorted(map(str, data))[:20]}",
            stage="validate",
        )
    if not (fields.get("title") or fields.get("description") or fields.get("category_path")):
        raise InvalidRecord(
            f"nothing to classify for id {fields['id']!r}: title, description and category are all "
            "missing or empty after cleaning",
            stage="validate",
        )
    try:
        return ProductRecord.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidRecord(f"record {fields['id']!r} is invalid: {problems}", stage="validate") from exc
