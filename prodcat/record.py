"""The cleaned affiliate product record and the parser that turns a raw event into one.

``parse_record`` is the single entry point for raw input: decode, enforce the edge limits
(:mod:`prodcat.limits`), map feed-specific field names onto ours, clean (:mod:`prodcat.cleaning`) and validate. Every
rejection is an :class:`~prodcat.errors.InvalidRecord` whose ``stage`` is "parse" (not a JSON
object) or "validate" (a JSON object we cannot use), so the stream can dead-letter it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import orjson
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
from prodcat.errors import InvalidRecord, Stage
from prodcat.limits import ES_MAX_ID_BYTES, InputLimits, check_shape

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

    Constructing it directly is tolerant of types (lists as text, price strings) but does no
    HTML or Unicode cleaning; the id must be a string or an integer and is kept as given
    (surrounding whitespace aside);
    unknown fields are refused so typos surface.
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
        # Only surrounding whitespace goes (feeds pad fields); folding, HTML stripping or
        # stringifying objects would merge distinct products ("ｈ４９", "<b>h49</b>" and
        # {"x": "h49"} are not product "h49").
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValueError(f"expected a string or an integer, received a {_json_type(value)}: {str(value)[:60]!r}")
        text = str(value).strip()
        if not text:
            raise ValueError("expected a non-empty id, received only whitespace")
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            raise ValueError("expected valid Unicode, received a lone surrogate") from None
        if size > ES_MAX_ID_BYTES:
            raise ValueError(f"expected at most {ES_MAX_ID_BYTES} UTF-8 bytes (Elasticsearch's limit), "
                             f"received {size:,}")
        return text

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


_BOM = b"\xef\xbb\xbf"


def _as_bytes(raw: bytes | str | Mapping[str, Any]) -> bytes:
    """Every kind of input as UTF-8 JSON bytes, so one decoder applies every check to all of them."""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        return bytes(raw)
    if isinstance(raw, str):
        try:
            return raw.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidRecord(f"value is not valid Unicode (lone surrogate at position {exc.start})",
                                stage=Stage.PARSE) from None
    if isinstance(raw, Mapping):
        try:
            return orjson.dumps(raw, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)
        except orjson.JSONEncodeError as exc:
            raise InvalidRecord(f"record cannot be written as JSON ({exc})", stage=Stage.PARSE) from None
    raise InvalidRecord(f"expected bytes, str or dict, received {type(raw).__name__}", stage=Stage.PARSE)


def _decode(raw: bytes | str | Mapping[str, Any], limits: InputLimits) -> dict[str, Any]:
    """Raw bytes/str/dict -> a JSON object within the limits, or InvalidRecord(stage="parse").

    orjson refuses what must never reach the stores: invalid UTF-8, lone surrogates, NaN and
    infinite numbers, and nesting beyond 1,024 levels (without recursing in Python).
    """
    data = _as_bytes(raw)
    if len(data) > limits.message_bytes:
        raise InvalidRecord(f"message has {len(data):,} bytes, more than PRODCAT_MAX_MESSAGE_BYTES="
                            f"{limits.message_bytes:,}; split or trim it in the feed", stage=Stage.PARSE)
    if data.startswith(_BOM):  # a leading BOM is noise, not content
        data = data[len(_BOM):]
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        snippet = data[:60].decode("utf-8", "replace") + ("..." if len(data) > 60 else "")
        raise InvalidRecord(f"value is not valid UTF-8 JSON ({exc}); received {snippet!r}", stage=Stage.PARSE) from None
    if not isinstance(value, dict):
        raise InvalidRecord(
            f"expected a JSON object with product fields, received a JSON {_json_type(value)}", stage=Stage.PARSE
        )
    check_shape(value, limits)
    return value


def _json_type(value: Any) -> str:
    return {list: "array", dict: "object", str: "string", bool: "boolean", type(None): "null",
            float: "non-integer number"}.get(type(value), "number")


def _field_size(value: Any) -> int:
    """Characters a field occupies: its text, or its JSON form for lists/objects."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (list, dict)):
        return len(orjson.dumps(value))
    return 0


def _check_sizes(data: Mapping[str, Any], max_field_chars: int) -> None:
    for key, value in data.items():
        size = _field_size(value)
        if size > max_field_chars:
            raise InvalidRecord(
                f"field {key[:60]!r} has {size:,} characters, more than max_field_chars={max_field_chars:,}; "
                "truncate it in the feed or raise PRODCAT_MAX_FIELD_CHARS",
                stage=Stage.VALIDATE,
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


def parse_record(raw: bytes | str | Mapping[str, Any], *, limits: InputLimits = InputLimits(),
                 now: datetime | None = None) -> ProductRecord:
    """Decode, map, clean and validate one raw product event.

    Raises :class:`InvalidRecord` with ``stage="parse"`` when the value is not UTF-8 JSON of an
    object within ``limits`` (bytes, nesting, fields, field names), and ``stage="validate"``
    when the id is missing or not a string/integer of at most ``limits.id_bytes`` bytes, a field
    is longer than ``limits.field_chars``, ``updated_at`` is unreadable or more than
    ``limits.future_skew_s`` ahead of ``now`` (it would freeze the product: newer updates would
    look stale), or there is nothing to classify (no title, description or category).
    """
    data = _decode(raw, limits)
    _check_sizes(data, limits.field_chars)
    canonical = _canonicalise(data)
    fields = clean_record(canonical)
    if fields.get("id") is None:
        raise InvalidRecord(
            "missing id: expected a non-empty 'id' (or one of "
            f"{', '.join(FIELD_ALIASES['id'][1:])}); received fields {sorted(map(str, data))[:20]}",
            stage=Stage.VALIDATE,
        )
    _check_id(fields["id"], limits)
    _check_updated_at(canonical.get("updated_at"), fields.get("updated_at"), limits, now)
    if not (fields.get("title") or fields.get("description") or fields.get("category_path")):
        raise InvalidRecord(
            f"nothing to classify for id {fields['id']!r:.80}: title, description and category are all "
            "missing or empty after cleaning",
            stage=Stage.VALIDATE,
        )
    try:
        return ProductRecord.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidRecord(f"record {str(fields['id'])!r:.80} is invalid: {problems}", stage=Stage.VALIDATE) from exc


def _check_id(value: Any, limits: InputLimits) -> None:
    if isinstance(value, str) and len(value.encode("utf-8")) > limits.id_bytes:
        raise InvalidRecord(f"id has {len(value.encode('utf-8')):,} UTF-8 bytes, more than PRODCAT_MAX_ID_BYTES="
                            f"{limits.id_bytes}; ids are stored verbatim as Elasticsearch document ids",
                            stage=Stage.VALIDATE)


def _check_updated_at(raw: Any, parsed: datetime | None, limits: InputLimits, now: datetime | None) -> None:
    if raw is None:
        return  # no updated_at: the record counts as the oldest version
    if parsed is None:
        raise InvalidRecord(f"updated_at {str(raw)[:60]!r} is not a date: expected ISO-8601 or epoch "
                            "seconds/milliseconds between the years 1 and 9999", stage=Stage.VALIDATE)
    latest = (now or datetime.now(timezone.utc)).timestamp() + limits.future_skew_s
    if parsed.timestamp() > latest:
        raise InvalidRecord(f"updated_at {parsed.isoformat()} is more than PRODCAT_MAX_FUTURE_SKEW_S="
                            f"{limits.future_skew_s:g} s in the future; a future version would make every "
                            "later update look stale", stage=Stage.VALIDATE)
