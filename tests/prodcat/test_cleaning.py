"""Field cleaners on hand-written edge cases and on real Flipkart rows dirtied like a feed would."""

from __future__ import annotations

import csv
import html
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from prodcat.cleaning import (
    category_text,
    clean_record,
    clean_text,
    normalise_currency,
    normalise_gender,
    normalise_text,
    parse_datetime,
    parse_price,
    split_category_path,
    strip_html,
    to_text,
)

# --------------------------------------------------------------------------------------------
# strip_html / normalise_text / clean_text
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<b>Cotton</b> Shirt", "Cotton Shirt"),
        ("Cotton &amp; Lycra", "Cotton & Lycra"),
        ("<p>Water resistant</p><script>track('x')</script><style>p{color:red}</style>", "Water resistant"),
        ("<ul><li>Navy</li><li>Red</li></ul>", "Navy Red"),  # block tags separate words
        ("Line one<br/>line two", "Line one line two"),
        ("&lt;p&gt;Escaped twice &amp;amp; more&lt;/p&gt;", "Escaped twice & more"),
        ("Price &euro;10 &#8377;20 &#x20B9;30", "Price €10 ₹20 ₹30"),
        ("size < 5 & fits AT&T", "size < 5 & fits AT&T"),  # not markup: left alone
        ("<div class=\"desc\" data-x='1'>Soft</div>", "Soft"),
        ("<!-- tracking -->Plain", "Plain"),
    ],
)
def test_strip_html_then_normalise(raw: str, expected: str) -> None:
    assert normalise_text(strip_html(raw)) == expected


def test_strip_html_keeps_plain_text_identical() -> None:
    text = "Alisha Solid Women's Cycling Shorts"
    assert strip_html(text) is text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Blue\u00a0Shirt  ", "Blue Shirt"),
        ("Ｔ-Ｓｈｉｒｔ　ＸＬ", "T-Shirt XL"),  # fullwidth letters and ideographic space
        ("Sh\u200birt\ufeff", "Shirt"),  # zero-width space, BOM
        ("tab\there\nnew\r\nline\x0bvt", "tab here new line vt"),
        ("nul\x00byte", "nul byte"),
        ("Sneakers 👟✨ for kids", "Sneakers 👟✨ for kids"),  # emoji survive
        ("ﬁne café", "fine café"),  # ligature folded, accent kept
        ("", None),
        ("   \u00a0\t\n", None),
        ("\u200b", None),
        (None, None),
    ],
)
def test_normalise_text(raw: str | None, expected: str | None) -> None:
    assert normalise_text(raw) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(12345, "12345"), (12.0, "12"), (12.5, "12.5"), (["Blue", None, "Shirt"], "Blue Shirt"),
     ({"en": "Shirt"}, "Shirt"), (True, None), (float("nan"), None), ([], None), (object(), None)],
)
def test_to_text_coerces_wrong_types(value: object, expected: str | None) -> None:
    assert to_text(value) == expected


def test_clean_text_combines_coercion_html_and_unicode() -> None:
    assert clean_text(["<b>Ｂｌｕｅ</b>", "Shirt&nbsp;"]) == "Blue Shirt"


# --------------------------------------------------------------------------------------------
# category paths
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Shoes > Sneakers", ["Shoes", "Sneakers"]),
        ("Shoes >> Sneakers >> Running", ["Shoes", "Sneakers", "Running"]),
        ("Shoes // Sneakers", ["Shoes", "Sneakers"]),
        ("Shoes|Sneakers | Running", ["Shoes", "Sneakers", "Running"]),
        ("Home » Decor » Vases", ["Home", "Decor", "Vases"]),
        ("Home › Decor", ["Home", "Decor"]),
        ("Shoes -> Sneakers", ["Shoes", "Sneakers"]),
        ('["Clothing >> Women\'s Clothing >> Shorts"]', ["Clothing", "Women's Clothing", "Shorts"]),
        ("['Clothing > Men']", ["Clothing", "Men"]),  # Python-repr list from a re-exported CSV
        (["Shoes", "Sneakers"], ["Shoes", "Sneakers"]),  # a list of levels
        (["Shoes > Sneakers", "Sale > Shoes"], ["Shoes", "Sneakers"]),  # several paths: the first
        ("Kitchen &amp; Dining &gt; Cookware", ["Kitchen & Dining", "Cookware"]),
        ("<span>Watches</span> > Wrist Watches", ["Watches", "Wrist Watches"]),
        ("Ｓｈｏｅｓ ＞ Ｓｎｅａｋｅｒｓ", ["Shoes", "Sneakers"]),  # fullwidth ">" counts
        (" > Shoes >>  > Sneakers > ", ["Shoes", "Sneakers"]),  # empties dropped
        ("Shoes\u00a0>\u00a0\u00a0Sneakers", ["Shoes", "Sneakers"]),
        # the "/" rule
        ("Clothing > T-Shirts/Tops", ["Clothing", "T-Shirts/Tops"]),
        ("Clothing / T-Shirts/Tops", ["Clothing", "T-Shirts/Tops"]),
        ("T-Shirts/Tops", ["T-Shirts/Tops"]),
        ("clothing/women/dresses", ["clothing", "women", "dresses"]),
        ("Cargos, Shorts & 3/4ths", ["Cargos, Shorts & 3/4ths"]),
        ("Sleeves 1/2/3", ["Sleeves 1/2/3"]),  # slashes between digits never split
        ("Clothing // Cargos, Shorts & 3/4ths", ["Clothing", "Cargos, Shorts & 3/4ths"]),
        # nothing
        ("", []),
        ("  ", []),
        (None, []),
        ("[]", []),
        (" >> ", []),
    ],
)
def test_split_category_path(raw: object, expected: list[str]) -> None:
    assert split_category_path(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [('["A >> B"]', "A >> B"), (["A", "B"], "A > B"), ("  A &amp; B | C ", "A & B | C"), ("[not json", "[not json"),
     (None, None)],
)
def test_category_text_unwraps_lists_but_keeps_delimiters(raw: object, expected: str | None) -> None:
    assert category_text(raw) == expected


# --------------------------------------------------------------------------------------------
# prices
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1.299,00 €", (1299.0, "EUR")),
        ("$1,299.00", (1299.0, "USD")),
        ("1 299,00 EUR", (1299.0, "EUR")),
        ("1\u00a0299,00\u00a0€", (1299.0, "EUR")),
        ("Rs. 999", (999.0, "INR")),
        ("₹1,299", (1299.0, "INR")),
        ("₹ 1,29,999", (129999.0, "INR")),  # Indian grouping
        ("£12.50", (12.5, "GBP")),
        ("€79,95", (79.95, "EUR")),
        ("12,50", (12.5, None)),
        ("1.299", (1299.0, None)),  # one dot + three digits groups thousands
        ("19.9", (19.9, None)),
        ("12,-", (12.0, None)),
        ("US$ 20", (20.0, "USD")),
        ("CHF 1'299.90", (1299.9, "CHF")),
        ("Price for two: 12.50 EUR", (12.5, "EUR")),
        ("$10 - $20", (10.0, "USD")),
        ("<span>$5.00</span>", (5.0, "USD")),
        ("２９９ INR", (299.0, "INR")),  # fullwidth digits
        (379, (379.0, None)),
        (19.99, (19.99, None)),
        ({"amount": "12,50", "currency": "eur"}, (12.5, "EUR")),
        # garbage
        ("call for price", (None, None)),
        ("N/A", (None, None)),
        ("", (None, None)),
        ("€", (None, None)),
        ("-5 EUR", (None, None)),
        (-3, (None, None)),
        (float("inf"), (None, None)),
        (True, (None, None)),
        (None, (None, None)),
        (["12"], (12.0, None)),
    ],
)
def test_parse_price(raw: object, expected: tuple[float | None, str | None]) -> None:
    assert parse_price(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("eur", "EUR"), ("€", "EUR"), ("Rs.", "INR"), ("rupees", "INR"), ("US$", "USD"), ("GBP", "GBP"),
     ("for the", None), ("XYZ", None), ("", None), (None, None)],
)
def test_normalise_currency(raw: object, expected: str | None) -> None:
    assert normalise_currency(raw) == expected


# --------------------------------------------------------------------------------------------
# gender
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Women's", "women"), ("female", "women"), ("LADIES", "women"), ("W", "women"), ("Damen", "women"),
        ("femme", "women"), ("Women’s", "women"),
        ("Men", "men"), ("Men's", "men"), ("male", "men"), ("gents", "men"), ("M", "men"), ("homme", "men"),
        ("Herren", "men"),
        ("Girls", "girls"), ("Mädchen", "girls"), ("Boys", "boys"), ("Garçon", "boys"),
        ("Unisex", "unisex"), ("Men / Unisex", "unisex"), ("Men, Women", "unisex"), ("Men & Women", "unisex"),
        ("Unisex Adult", "unisex"),
        ("baby", "kids"), ("Kids'", "kids"), ("Infants", "kids"), ("Boys & Girls", "kids"),
        ("Baby Boys", "boys"), ("For Girls, Women", "women"), ("Ideal For: Women's", "women"),
        ("<b>Men</b>", "men"),
        ("N/A", None), ("", None), ("red", None), (None, None), (42, None),
    ],
)
def test_normalise_gender(raw: object, expected: str | None) -> None:
    assert normalise_gender(raw) == expected


# --------------------------------------------------------------------------------------------
# timestamps
# --------------------------------------------------------------------------------------------

_T = datetime(2016, 3, 25, 22, 59, 23, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "raw",
    ["2016-03-25 22:59:23 +0000", "2016-03-25T22:59:23Z", "2016-03-26T00:59:23+02:00", "2016-03-25T22:59:23",
     "Fri, 25 Mar 2016 22:59:23 GMT", 1458946763, 1458946763000, 1458946763.0, "1458946763",
     datetime(2016, 3, 25, 22, 59, 23)],
)
def test_parse_datetime_gives_utc(raw: object) -> None:
    parsed = parse_datetime(raw)
    assert parsed == _T
    assert parsed.utcoffset().total_seconds() == 0


@pytest.mark.parametrize("raw", ["garbage", "", None, True, float("nan"), "2016-13-45"])
def test_parse_datetime_garbage_is_none(raw: object) -> None:
    assert parse_datetime(raw) is None


# --------------------------------------------------------------------------------------------
# clean_record on hand-written and real rows
# --------------------------------------------------------------------------------------------


def test_clean_record_hand_written() -> None:
    cleaned = clean_record({
        "id": 123, "title": ["<b>Blue</b>", "Shirt 👕"], "brand": "", "category": "Men // Shirts",
        "price": "1.299,00 €", "currency": None, "gender": "Men's", "image_url": '["http://x/1.jpg", "http://x/2.jpg"]',
        "updated_at": "2016-03-25 22:59:23 +0000", "colour": " navy ",
    })
    assert cleaned == {
        "id": 123, "title": "Blue Shirt 👕", "brand": None, "category": "Men // Shirts",
        "category_path": ["Men", "Shirts"], "price": 1299.0, "currency": "EUR", "gender": "men",
        "image_url": "http://x/1.jpg", "updated_at": _T, "colour": " navy ",  # unknown keys untouched
    }


def test_clean_record_explicit_currency_wins_over_sign() -> None:
    assert clean_record({"price": "$12", "currency": "eur"})["currency"] == "EUR"


# Real Flipkart rows (picked by uniq_id) with what cleaning must make of them.
REAL_ROWS = {
    "c2d766ca982eca8304150849735ffef9": {
        "title": "Alisha Solid Women's Cycling Shorts",
        "path": ["Clothing", "Women's Clothing", "Lingerie, Sleep & Swimwear", "Shorts", "Alisha Shorts",
                 "Alisha Solid Women's Cycling Shorts"],
        "price": 379.0,
    },
    "a60ebb7803c6a31795de3f8949cb6f98": {  # "3/4ths" must survive every delimiter
        "title": "Madcaps C38GR30 Men's Cargos",
        "path": ["Clothing", "Men's Clothing", "Cargos, Shorts & 3/4ths", "Cargos", "Madcaps Cargos"],
        "price": 1699.0,
    },
    "f449ec65dcbc041b6ae5e6a32717d01b": {"title": "AW Bellies", "path": ["Footwear", "Women's Footwear",
                                                                        "Ballerinas", "AW Bellies"], "price": 499.0},
    "7f7036a6d550aaa89d34c77bd39a5e48": {
        "title": "FabHomeDecor Fabric Double Sofa Bed",
        "path": ["Furniture", "Living Room Furniture", "Sofa Beds & Futons",
                 "FabHomeDecor Fabric Double Sofa Bed (Finish Colo..."],
        "price": 22646.0,
    },
}


@pytest.fixture(scope="module")
def flipkart_rows(datasets: Path) -> dict[str, dict[str, str]]:
    """The real rows of REAL_ROWS, straight from the CSV (not through the code under test)."""
    with (datasets / "flipkart" / "products_1k_allfields.csv").open(encoding="utf-8", newline="") as fh:
        rows = {row["uniq_id"]: row for row in csv.DictReader(fh) if row["uniq_id"] in REAL_ROWS}
    assert set(rows) == set(REAL_ROWS), "a picked uniq_id is missing from the shared dataset"
    return rows


def _dirty_category(tree: str, delimiter: str) -> str:
    levels = json.loads(tree)[0].split(" >> ")
    return html.escape(delimiter.join(levels), quote=False)


def _fullwidth_first_word(title: str) -> str:
    first, _, rest = title.partition(" ")
    return "".join(chr(ord(ch) + 0xFEE0) for ch in first) + " " + rest


DIRTS = {
    # name: (title, category, price) transformations of the real values
    "html+guillemets+euro": (lambda t: f"<h1><b>{html.escape(t)}</b></h1>", lambda c: _dirty_category(c, " » "),
                             lambda p: f"{int(p):,}".replace(",", ".") + ",00 €"),
    "nbsp+pipes+dollars": (lambda t: "\u00a0 " + t.replace(" ", "\u00a0") + "\t\n",
                           lambda c: _dirty_category(c, "|"), lambda p: f"${int(p):,}.00"),
    "fullwidth+slashes+rupees": (_fullwidth_first_word,
                                 lambda c: _dirty_category(c, " // "), lambda p: f"Rs. {int(p):,}"),
    "as-is": (lambda t: t, lambda c: c, lambda p: p),
}


@pytest.mark.parametrize("uniq_id", sorted(REAL_ROWS))
@pytest.mark.parametrize("dirt", sorted(DIRTS))
def test_clean_record_on_dirtied_real_rows(flipkart_rows: dict[str, dict[str, str]], uniq_id: str, dirt: str) -> None:
    row = flipkart_rows[uniq_id]
    expected = REAL_ROWS[uniq_id]
    dirty_title, dirty_category, dirty_price = DIRTS[dirt]
    cleaned = clean_record({
        "id": f"  {uniq_id}\n",
        "title": dirty_title(row["product_name"]),
        "category": dirty_category(row["product_category_tree"]),
        "price": dirty_price(row["discounted_price"]),
        "description": f"<p>{html.escape(row['description'])}</p><script>evil()</script>",
    })
    assert cleaned["id"] == f"  {uniq_id}\n"  # ids are not cleaned: ProductRecord drops only the padding
    assert cleaned["title"] == expected["title"]
    assert cleaned["category_path"] == expected["path"]
    assert cleaned["price"] == expected["price"]
    assert cleaned["description"] == " ".join(row["description"].split())
    assert "evil" not in cleaned["description"]
