"""The pieces the two web tools share."""

from __future__ import annotations

import pytest

from prodcat.web import DOM_JS, DOM_MARK, THEME_CSS, THEME_MARK, page


def test_page_puts_the_theme_and_dom_helpers_in_place_of_the_markers():
    html = f"<style>{THEME_MARK}\nh1 {{}}</style><script>{DOM_MARK}\nel('p');</script>"
    out = page(html)
    assert THEME_CSS in out and DOM_JS in out
    assert THEME_MARK not in out and DOM_MARK not in out
    assert out.index(THEME_CSS) < out.index("h1 {}") and out.index(DOM_JS) < out.index("el('p')")


def test_a_page_without_its_markers_is_refused():
    with pytest.raises(ValueError, match="markers"):
        page(f"<style>{THEME_MARK}</style><script></script>")
