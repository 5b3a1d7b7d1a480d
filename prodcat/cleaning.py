# over 500 lines: one job, field-level cleaning, a small tolerant function per field type that share the garbage rules
"""Field-level cleaning of noisy affiliate data: HTML, Unicode, category paths, prices, gender.

Plain functions, each tolerant of garbage: they return ``None`` (or an empty list) rather than
raise, because a single odd field must never cost the whole product. Record-level concerns
(field aliases, required fields, size limits) live in :mod:`prodcat.record`.
"""

from __future__ import annotations

import ast
import json
import math
import re
import unicodedata
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any

__all__ = [
    "strip_html",
    "normalise_text",
    "to_text",
    "clean_text",
    "split_category_path",
    "category_text",
    "parse_price",
    "normalise_currency",
    "normalise_gender",
    "parse_datetime",
    "first_url",
    "clean_record",
    "TEXT_FIELDS",
]

# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

# Tags that separate words visually; without a space "<li>Cotton</li><li>Navy</li>" would
# glue into "CottonNavy" and create tokens that exist nowhere else.
_BLOCK_TAGS = frozenset(
    "address article aside blockquote br dd div dl dt figcaption footer h1 h2 h3 h4 h5 h6 header "
    "hr li main nav ol p pre section table tbody td tfoot th thead tr ul".split()
)
_DROP_CONTENT_TAGS = frozenset({"script", "style", "noscript", "template"})
_MARKUP_LEFT = re.compile(r"<\s*/?\s*[a-zA-Z][^<>]*>|&(?:#\d+|#[xX][0-9a-fA-F]+|[a-zA-Z][a-zA-Z0-9]{1,31});")


class _TextExtractor(HTMLParser):
    """Collects the text of an HTML fragment, skipping script/style content."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROP_CONTENT_TAGS:
            self._skip_depth += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROP_CONTENT_TAGS:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            self.parts.append(data)


def _strip_html_once(text: str) -> str:
    parser = _TextExtractor()
    parser.feed(text)
    parser.close()
    return "".join(parser.parts)


def strip_html(text: str) -> str:
    """Remove tags, drop script/style content and unescape entities.

    Feeds often escape twice ("&amp;amp;", "&lt;p&gt;"), so a second pass runs when markup is
    still visible after the first; two passes bound the cost on adversarial input.

    >>> strip_html("<p>Cotton &amp; Lycra</p><script>x()</script>")
    ' Cotton & Lycra '
    """
    if "<" not in text and "&" not in text:
        return text
    out = _strip_html_once(text)
    if _MARKUP_LEFT.search(out):
        out = _strip_html_once(out)
    return out


# --------------------------------------------------------------------------------------------
# Unicode and whitespace
# --------------------------------------------------------------------------------------------

# Invisible format characters feeds leak (zero-width space/joiners, BOM, soft hyphen, word
# joiner). They split tokens invisibly ("Sh\u200birt"), so they go; other Cf characters (e.g.
# emoji tag sequences) are rare and harmless.
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"), None)


def normalise_text(text: str | None) -> str | None:
    """NFKC-normalise, drop control and invisible characters, collapse whitespace.

    NFKC folds fullwidth letters, non-breaking spaces and ligatures into their plain forms.
    Returns ``None`` for ``None``, empty or whitespace-only text.

    >>> normalise_text("\\u00a0Ｔ-Ｓｈｉｒｔ\\tblue\\n")
    'T-Shirt blue'
    """
    if text is None:
        return None
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    # Control characters become spaces (a "\x0b" between words is a separator, not nothing).
    text = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text)
    return " ".join(text.split()) or None


def to_text(value: Any) -> str | None:
    """Coerce a wrongly typed field to a string: numbers, lists (joined by spaces), mappings.

    Booleans and other objects are not text and give ``None``.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, (list, tuple)):
        parts = [to_text(v) for v in value]
        return " ".join(p for p in parts if p) or None
    if isinstance(value, Mapping):
        # e.g. {"en": "Shirt", "de": "Hemd"}: keep every language's text.
        return to_text(list(value.values()))
    return None


def clean_text(value: Any) -> str | None:
    """``to_text`` + ``strip_html`` + ``normalise_text``: what every free-text field gets."""
    text = to_text(value)
    return None if text is None else normalise_text(strip_html(text))


# --------------------------------------------------------------------------------------------
# Category paths
# --------------------------------------------------------------------------------------------

# Delimiters that never occur inside a category name. ">" covers ">>"; "->" and "→" are
# listed so the arrow's "-" does not stay glued to the part before it.
_STRONG_DELIMITER = re.compile(r"\s*(?:->|=>|→|>+|»|›|\||//)\s*")
_SPACED_SLASH = re.compile(r"\s+/\s*|\s*/\s+")
# A bare slash between two digits is a fraction or size ("3/4 Sleeve", "12V/24V" is not but
# "1/2" is), never a level boundary.
_BARE_SLASH = re.compile(r"(?<!\d)/|/(?!\d)")


def _list_items(raw: Any) -> list[Any] | None:
    """The items of a list, or of a string holding a JSON/Python list literal; else None."""
    if isinstance(raw, (list, tuple)):
        return list(raw)
    if isinstance(raw, str):
        s = raw.strip()
        if s.startswith("[") and s.endswith("]"):
            try:
                value = json.loads(s)
            except ValueError:
                try:  # Python repr of a list: ['A > B'] (seen in re-exported CSVs)
                    value = ast.literal_eval(s)
                except (ValueError, SyntaxError, MemoryError, RecursionError):
                    return None
            if isinstance(value, list):
                return value
    return None


def category_text(raw: Any) -> str | None:
    """The cleaned category string, unwrapped from list forms but with its delimiters kept.

    ``'["A >> B"]'`` gives ``'A >> B'``. A list of several paths keeps the first; a list of
    plain names (no delimiter in any item) is one path and is joined with " > ".
    """
    items = _list_items(raw)
    if items is not None:
        texts = [t for t in (clean_text(item) for item in items) if t]
        if not texts:
            return None
        with_delimiter = [t for t in texts if _STRONG_DELIMITER.search(t)]
        if with_delimiter:
            return with_delimiter[0]
        return texts[0] if len(texts) == 1 else " > ".join(texts)
    return clean_text(raw)


def split_category_path(raw: Any) -> list[str]:
    """Split a raw category path into its trimmed, non-empty levels.

    Delimiter rule (first that applies):

    1. Strong delimiters (``>``, ``>>``, ``->``, ``»``, ``›``, ``|``, ``//``) present: split on
       them only; a single ``/`` stays inside names ("Cargos, Shorts & 3/4ths").
    2. Otherwise a slash with whitespace on a side (``" / "``) splits, and a bare slash stays
       inside names: "Clothing / T-Shirts/Tops" -> ["Clothing", "T-Shirts/Tops"].
    3. Otherwise a bare ``/`` splits only when the string has at least two of them
       ("clothing/women/dresses"), because a single bare slash is far more often part of a
       name ("T-Shirts/Tops", "Mobile/Tablet") than a two-level path. A slash between digits
       ("3/4") never splits.

    Lists and JSON-list strings (Flipkart's ``["A >> B >> C"]``) are unwrapped first; HTML
    entities and Unicode oddities are cleaned (fullwidth "＞" counts as ">").

    >>> split_category_path('["Clothing >> Women\\'s Clothing >> Shorts"]')
    ['Clothing', "Women's Clothing", 'Shorts']
    """
    text = category_text(raw)
    if not text:
        return []
    if _STRONG_DELIMITER.search(text):
        parts = _STRONG_DELIMITER.split(text)
    elif _SPACED_SLASH.search(text):
        parts = _SPACED_SLASH.split(text)
    elif len(_BARE_SLASH.findall(text)) >= 2:
        parts = _BARE_SLASH.split(text)
    else:
        parts = [text]
    return [p for p in (part.strip(" -") for part in parts) if p]


# --------------------------------------------------------------------------------------------
# Prices and currencies
# --------------------------------------------------------------------------------------------

# ISO 4217 codes worth recognising in price strings; anything else 3-letter is likely a word.
_ISO_CODES = frozenset(
    "AED AUD BRL CAD CHF CNY CZK DKK EUR GBP HKD HUF IDR ILS INR JPY KRW MXN MYR NOK NZD PHP "
    "PLN RON RUB SAR SEK SGD THB TRY TWD USD ZAR".split()
)
# Longest first so "US$" wins over "$" and "Rs." over "Rs".
_CURRENCY_SIGNS: tuple[tuple[str, str], ...] = (
    ("US$", "USD"), ("A$", "AUD"), ("C$", "CAD"), ("NZ$", "NZD"), ("HK$", "HKD"), ("S$", "SGD"),
    ("R$", "BRL"), ("€", "EUR"), ("£", "GBP"), ("₹", "INR"), ("₨", "INR"), ("¥", "JPY"),
    ("₩", "KRW"), ("₽", "RUB"), ("₺", "TRY"), ("zł", "PLN"), ("$", "USD"),
)
_CURRENCY_WORD = re.compile(r"(?<![A-Za-z])(?:Rs\.?|INR|[A-Z]{3}|euros?|dollars?|pounds?|rupees?)(?![A-Za-z])", re.I)
_CURRENCY_WORDS = {"rs": "INR", "rs.": "INR", "euro": "EUR", "euros": "EUR", "dollar": "USD",
                   "dollars": "USD", "pound": "GBP", "pounds": "GBP", "rupee": "INR", "rupees": "INR"}
# A number with optional grouping: "1.299,00", "1,299.00", "1 299,00", "1'299.00", "12,-".
# An exponent is part of the number ("1e309" is not the price 1.0).
_NUMBER = re.compile(r"\d(?:[\d.,' ]*\d)?(?:[eE][+-]?\d+)?")
_EXPONENT = re.compile(r"[eE][+-]?\d+$")
_SCIENTIFIC = re.compile(r"\d+(?:\.\d+)?[eE][+-]?\d+")


def normalise_currency(value: Any) -> str | None:
    """An ISO 4217 code from a code, a sign or a word ("€", "eur", "Rs.", "US$"); else None."""
    text = normalise_text(to_text(value))
    if not text:
        return None
    if text.upper() in _ISO_CODES:
        return text.upper()
    for sign, code in _CURRENCY_SIGNS:
        if sign in text:
            return code
    for match in _CURRENCY_WORD.finditer(text):
        word = match.group(0)
        code = word.upper() if word.upper() in _ISO_CODES else _CURRENCY_WORDS.get(word.lower())
        if code:
            return code
    return None


def _number_from(token: str) -> float | None:
    """Read a grouped number, deciding which of "," and "." is the decimal separator."""
    token = token.replace(" ", "").replace("'", "")
    if _EXPONENT.search(token):  # scientific notation: digits, an optional dot, the exponent
        if not _SCIENTIFIC.fullmatch(token):
            return None
        number = float(token)
        return number if math.isfinite(number) else None
    has_comma, has_dot = "," in token, "." in token
    if has_comma and has_dot:
        decimal = "," if token.rfind(",") > token.rfind(".") else "."
    elif has_comma or has_dot:
        sep = "," if has_comma else "."
        head, _, tail = token.rpartition(sep)
        # One separator followed by exactly three digits groups thousands ("1,299", "1.299");
        # anything else ("12,50", "12.5") is a decimal separator. Several are always grouping
        # ("1,29,999" in Indian style).
        decimal = sep if token.count(sep) == 1 and len(tail) != 3 else ""
    else:
        decimal = ""
    group = {",", "."} - {decimal}
    for g in group:
        token = token.replace(g, "")
    if decimal:
        token = token.replace(decimal, ".")
    try:
        number = float(token)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_price(value: Any) -> tuple[float | None, str | None]:
    """Return ``(amount, ISO currency)`` from a number, a formatted string or a mapping.

    Handles "1.299,00 €", "$1,299.00", "1 299,00 EUR", "Rs. 999", "₹1,299", "£12.50" and
    ``{"amount": 12.5, "currency": "EUR"}``. Garbage, negative or non-finite amounts give
    ``(None, None)``; a range ("$10 - $20") gives its first amount.

    >>> parse_price("1.299,00 €")
    (1299.0, 'EUR')
    """
    if value is None or isinstance(value, bool):
        return None, None
    if isinstance(value, (list, tuple)):  # ["12.50"] is a price; [1, 2] is not 12
        return parse_price(value[0]) if len(value) == 1 else (None, None)
    if isinstance(value, (int, float)):
        amount = float(value)
        return (amount, None) if math.isfinite(amount) and amount >= 0 else (None, None)
    if isinstance(value, Mapping):
        amount_value = next((value[k] for k in ("amount", "value", "price") if k in value), None)
        amount, currency = parse_price(amount_value)
        return (amount, normalise_currency(value.get("currency")) or currency) if amount is not None else (None, None)
    text = normalise_text(strip_html(to_text(value) or ""))
    if not text:
        return None, None
    match = _NUMBER.search(text)
    if match is None:
        return None, None
    if text[: match.start()].rstrip().endswith("-"):  # "-12.00": a refund or an error, not a price
        return None, None
    amount = _number_from(match.group(0).strip())
    if amount is None:
        return None, None
    return amount, normalise_currency(text[: match.start()] + " " + text[match.end():])


# --------------------------------------------------------------------------------------------
# Gender
# --------------------------------------------------------------------------------------------

_GENDER_WORDS: dict[str, str] = {}
for _canonical, _words in {
    "women": "women woman womens female females ladies lady w f damen dame frauen frau femme femmes "
             "mujer mujeres donna donne her she",
    "men": "men man mens male males gents gent gentlemen m herren herr manner homme hommes "
           "hombre hombres uomo uomini him he",
    "girls": "girls girl madchen fille filles nina ninas ragazza",
    "boys": "boys boy jungen junge garcon garcons nino ninos ragazzo",
    "unisex": "unisex both all neutral any adult adults",
    "kids": "kids kid children child childrens baby babies infant infants toddler toddlers newborn "
            "newborns kinder kind enfant enfants bebe junior juniors youth",
}.items():
    _GENDER_WORDS.update(dict.fromkeys(_words.split(), _canonical))
_GENDER_SPLIT = re.compile(r"[,/&|+;]|\band\b|\bor\b|\bund\b|\bet\b|\by\b")


def _fold(text: str) -> str:
    """Lower-case and strip accents ("Mädchen" -> "madchen", "Garçon" -> "garcon")."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def normalise_gender(value: Any) -> str | None:
    """Map a gender/target-group value to women, men, girls, boys, unisex or kids.

    Combined values resolve sensibly: "Men, Women" -> unisex, "Boys & Girls" -> kids,
    "Baby Boys" -> boys, "For Girls, Women" -> women. Unknown values give ``None``.
    """
    text = normalise_text(strip_html(to_text(value) or ""))
    if not text:
        return None
    text = _fold(text).replace("\u2019", "'")
    text = re.sub(r"'s\b|s'(?=\s|$)|'", lambda m: "s" if m.group(0) == "s'" else "", text)
    found: set[str] = set()
    for token in _GENDER_SPLIT.split(text):
        token = re.sub(r"[^a-z\s]", " ", token).strip()
        if not token:
            continue
        if token in _GENDER_WORDS:
            found.add(_GENDER_WORDS[token])
        else:
            found.update(_GENDER_WORDS[w] for w in token.split() if w in _GENDER_WORDS and len(w) > 1)
    return _resolve_gender(found)


def _resolve_gender(found: set[str]) -> str | None:
    """One target group from several: adults outrank children; mixed sexes give unisex/kids."""
    adults = found & {"women", "men"}
    children = found & {"girls", "boys"}
    if len(adults) == 2:
        return "unisex"
    if adults:
        return "unisex" if "unisex" in found else adults.pop()
    if len(children) == 2:
        return "kids"
    if children:
        return children.pop()
    if "kids" in found:
        return "kids"
    return "unisex" if "unisex" in found else None


# --------------------------------------------------------------------------------------------
# Timestamps and URLs
# --------------------------------------------------------------------------------------------

_TIMESTAMP_FORMATS = ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%dT%H:%M:%S %z", "%Y-%m-%d %H:%M:%S.%f %z",
                      "%d/%m/%Y %H:%M:%S", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y")
# Epoch values above this are milliseconds (1e11 s is the year 5138).
_EPOCH_MS_THRESHOLD = 1e11


def _epoch(value: float) -> datetime | None:
    seconds = value / 1000 if abs(value) >= _EPOCH_MS_THRESHOLD else value
    try:
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def parse_datetime(value: Any) -> datetime | None:
    """A timezone-aware UTC datetime from ISO strings, "2016-03-25 22:59:23 +0000", RFC 2822
    dates or epoch seconds/milliseconds. Naive values are taken as UTC; garbage gives None.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, (int, float)):
        if not math.isfinite(value):
            return None
        parsed = _epoch(float(value))
    else:
        text = normalise_text(to_text(value))
        if not text:
            return None
        parsed = _parse_datetime_text(text)
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def _parse_datetime_text(text: str) -> datetime | None:
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return _epoch(float(text))
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        pass
    for fmt in _TIMESTAMP_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None


def first_url(value: Any) -> str | None:
    """The first non-empty URL of a string, a list or a JSON-list string (image galleries)."""
    items = _list_items(value)
    candidates = items if items is not None else [value]
    for item in candidates:
        text = normalise_text(to_text(item))
        if text:
            return text
    return None


# --------------------------------------------------------------------------------------------
# Whole record
# --------------------------------------------------------------------------------------------

# The id is not cleaned: see ProductRecord (folding it would merge distinct products).
TEXT_FIELDS = ("network", "retailer", "title", "brand", "description", "size")


def clean_record(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Clean the product fields of a record keyed by canonical field names.

    Text fields lose HTML and Unicode noise; ``category`` becomes the cleaned string and
    ``category_path`` its levels; ``price`` becomes an amount, with ``currency`` taken from
    an explicit currency field or else from the price string; ``gender`` is normalised;
    ``image_url``/``url`` take the first URL; ``updated_at`` becomes a UTC datetime. Empty
    values become ``None``. Keys that are not product fields pass through untouched, so the
    record can keep them as extras.
    """
    out = dict(raw)
    for name in TEXT_FIELDS:
        if name in raw:
            out[name] = clean_text(raw[name])
    if "category" in raw or "category_path" in raw:
        source = raw.get("category") if raw.get("category") not in (None, "") else raw.get("category_path")
        out["category"] = category_text(source)
        out["category_path"] = split_category_path(source)
    if "price" in raw or "currency" in raw:
        amount, currency = parse_price(raw.get("price"))
        out["price"] = amount
        out["currency"] = normalise_currency(raw.get("currency")) or currency
    if "gender" in raw:
        out["gender"] = normalise_gender(raw["gender"])
    for name in ("image_url", "url"):
        if name in raw:
            out[name] = first_url(raw[name])
    if "updated_at" in raw:
        out["updated_at"] = parse_datetime(raw["updated_at"])
    return out
