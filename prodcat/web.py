"""What the project's two small web tools share (the similarity judge and the labelling page).

JSON errors and request bodies, blocking calls off the event loop, and the pages' common head:
the colour theme and the two DOM helpers (``$`` and ``el``). Each page puts :data:`THEME_CSS`
and :data:`DOM_JS` in place of the markers :data:`THEME_MARK` and :data:`DOM_MARK`
(:func:`page`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any

from aiohttp import web

__all__ = ["DOM_JS", "DOM_MARK", "THEME_CSS", "THEME_MARK", "blocking", "json_error", "json_object", "page"]

THEME_MARK = "/* prodcat:theme */"
DOM_MARK = "// prodcat:dom"

THEME_CSS = """:root { --bg:#f4f5f7; --card:#fff; --ink:#1c2230; --muted:#6b7280; --line:#e2e5ea; --accent:#2f6fed;
        --good:#1e9e57; --good-bg:#e9f7ef; --bad:#d3423f; --bad-bg:#fdecec; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--ink); background: var(--bg); }"""

DOM_JS = """"use strict";
const $ = (sel) => document.querySelector(sel);
function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key === "class") node.className = value; else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value); else node.setAttribute(key, value);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}"""


def page(html: str) -> str:
    """``html`` with the shared theme and DOM helpers in place of their markers."""
    if THEME_MARK not in html or DOM_MARK not in html:
        raise ValueError("a page needs both markers: THEME_MARK in its <style>, DOM_MARK in its <script>")
    return html.replace(THEME_MARK, THEME_CSS).replace(DOM_MARK, DOM_JS)


def json_error(status: int, message: str) -> web.Response:
    """``{"error": message}`` with ``status``."""
    return web.json_response({"error": message}, status=status)


async def json_object(request: web.Request) -> dict[str, Any] | web.Response:
    """The request's JSON object, or the error response to return instead."""
    # JSON only: a cross-site <form> cannot send it without a CORS preflight, which we never allow
    if request.content_type != "application/json":
        return json_error(415, "expected Content-Type: application/json")
    try:
        body = await request.json()
    except ValueError:
        return json_error(400, "expected a JSON object")
    return body if isinstance(body, dict) else json_error(400, "expected a JSON object")


async def blocking(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a blocking call (Kafka, Milvus, image fetching and encoding) off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, partial(fn, *args, **kwargs))
