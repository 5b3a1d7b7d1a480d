"""What the project's web pages share: access control, page serving and JSON helpers.

Used by the labelling tool (retrain), the similarity judge (embedder) and meant for the Faust
worker's pages too, so that every page the project serves follows the same rules:

- :func:`check_bind`: a non-loopback bind address without a token is refused at start
  (anyone on the network could use the page);
- :func:`access_middleware`: with a token, every request must present it (constant-time
  compare); on a loopback bind, the ``Host`` header must name this loopback server (DNS
  rebinding) and a state-changing request's ``Origin``, if any, must be this loopback origin;
- :func:`serve_page`: one HTML page and its CSS/JS (package data files, read once) plus the
  shared theme and DOM helpers in ``prodcat/static``, under a strict Content-Security-Policy.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from yarl import URL

from prodcat.errors import ConfigError

__all__ = ["PAGE_HEADERS", "STATIC", "access_middleware", "blocking", "check_bind", "is_loopback",
           "json_error", "json_object", "serve_page"]

STATIC = Path(__file__).resolve().parent / "static"
"""The shared page assets: ``theme.css`` and ``dom.js``."""

# Scripts and styles come only from our own files: no inline code, so an injected string cannot run
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; "
                               "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
}
MIN_TOKEN_CHARS = 8
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})
_ASSET_TYPES = {".css": "text/css", ".js": "text/javascript"}
_ASSETS: web.AppKey[dict[str, tuple[bytes, str]]] = web.AppKey("prodcat_page_assets", dict)


# --- binding and access ------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or name, IPv6 with or without brackets) is this machine only."""
    name = host.strip().strip("[]").lower()
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return name in _LOOPBACK_NAMES


def check_bind(host: str, token: str | None, *, service: str, token_hint: str) -> None:
    """Refuse to serve ``service`` on ``host`` when that would be unsafe.

    Raises :class:`~prodcat.errors.ConfigError` if ``host`` is not a loopback address and there
    is no token, or if the token is shorter than 8 characters. ``service`` names the page in the
    message ("the labelling tool"); ``token_hint`` says how to give it a token ("pass --token or
    set PRODCAT_LABELLING_TOKEN").
    """
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(f"expected a token of at least {MIN_TOKEN_CHARS} characters for {service}, "
                          f"received {len(token)}; {token_hint}")
    if token is None and not is_loopback(host):
        raise ConfigError(f"{service} would listen on {host!r}, which is not a loopback address, without a "
                          f"token: {token_hint}, or bind to 127.0.0.1")


def access_middleware(host: str, token: str | None, *, service: str, token_hint: str,
                      cookie: str = "prodcat_token") -> Middleware:
    """The aiohttp middleware that enforces who may use an app bound to ``host``.

    Calls :func:`check_bind` first, so an unsafe configuration fails when the app is built.

    - ``token`` set: every request presents it as ``Authorization: Bearer <token>``,
      ``X-Prodcat-Token: <token>`` or the ``cookie`` (HttpOnly, SameSite=Strict) that opening any
      page with ``?token=<token>`` once sets (the answer redirects to the same address without
      the token); otherwise 401.
    - ``host`` is loopback: the ``Host`` header must be a loopback name or address with the port
      the request arrived on, and a POST/PUT/PATCH/DELETE with an ``Origin`` header must come
      from that same loopback origin; otherwise 403. A page served on 127.0.0.1 is then
      unreachable to a web site that rebinds its own name to 127.0.0.1.

    Refusals are JSON: ``{"error": reason}``.
    """
    check_bind(host, token, service=service, token_hint=token_hint)
    loopback = is_loopback(host)
    secret = token.encode() if token is not None else None

    @web.middleware
    async def access(request: web.Request, handler: Handler) -> web.StreamResponse:
        if loopback:
            refused = _foreign(request)
            if refused is not None:
                return json_error(403, f"refused by {service}: {refused}")
        if secret is None:
            return await handler(request)
        offered = request.query.get("token") if request.method == "GET" else None
        if offered is not None:
            if not hmac.compare_digest(offered.encode(), secret):
                return _unauthorised(service, "the token in the address is wrong")
            # a clean address bar (and history) from now on: the cookie carries the token
            clean = request.rel_url.without_query_params("token")
            response = web.Response(status=302, headers={"Location": str(clean)})
            response.set_cookie(cookie, token, httponly=True, samesite="Strict", secure=request.secure, path="/")
            return response
        presented = _presented_token(request, cookie)
        if presented is None:
            return _unauthorised(service, "no token was sent")
        if not hmac.compare_digest(presented.encode(), secret):
            return _unauthorised(service, "the token sent is wrong")
        return await handler(request)

    return access


def _presented_token(request: web.Request, cookie: str) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("X-Prodcat-Token") or request.cookies.get(cookie)


def _unauthorised(service: str, why: str) -> web.Response:
    response = json_error(401, f"{service} needs its token ({why}): open /?token=<token> once, "
                               "or send Authorization: Bearer <token>")
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


def _foreign(request: web.Request) -> str | None:
    """Why a request to a loopback server did not come from this machine's pages; None if it did."""
    port = _local_port(request)
    host = request.headers.get("Host", "")
    name, host_port = _authority(host)
    if port is None or name is None or not is_loopback(name) \
            or (host_port or (443 if request.secure else 80)) != port:
        return (f"expected a Host header of localhost, 127.0.0.1 or [::1] with port {port}, received "
                f"{host[:100]!r}; open the page at http://127.0.0.1:{port}/ (a server reached under another "
                "name needs a token and a non-loopback bind)")
    origin = request.headers.get("Origin")
    if request.method in STATE_CHANGING and origin is not None and not _own_origin(origin, port):
        return (f"expected no Origin or a loopback one on port {port} for a {request.method}, received "
                f"{origin[:100]!r}; changes come only from this server's own pages")
    return None


def _local_port(request: web.Request) -> int | None:
    """The port the request arrived on (the server's, not the one it was configured with)."""
    sockname = request.transport.get_extra_info("sockname") if request.transport is not None else None
    return sockname[1] if isinstance(sockname, tuple) and len(sockname) >= 2 else None


def _authority(value: str) -> tuple[str | None, int | None]:
    """'name', 'name:port', '[v6]' or '[v6]:port' -> (name, port); (None, None) if malformed."""
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None, None
        port = rest[1:]
    else:
        name, _, port = value.partition(":")
    if not port:
        return name.lower() or None, None
    if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        return None, None
    return name.lower() or None, int(port)


def _own_origin(origin: str, port: int) -> bool:
    try:
        url = URL(origin)
    except ValueError:
        return False
    return url.scheme in ("http", "https") and bool(url.host) and is_loopback(url.host or "") \
        and url.port == port and url.path in ("", "/")


# --- pages -------------------------------------------------------------------------------------


def serve_page(app: web.Application, path: str, html: Path, *, assets: Iterable[Path] = ()) -> None:
    """Serve the page ``html`` at ``GET path`` and its ``assets`` (CSS, JS) under ``/static/<name>``.

    The shared ``theme.css`` and ``dom.js`` are served under ``/static/`` too. Files are read
    now (a missing one fails when the app is built, not on the first visit) and served from
    memory. An app may serve several pages; asset names must not repeat.
    """
    page = html.read_bytes()
    known = app.get(_ASSETS)
    if known is None:
        known = app[_ASSETS] = {}
        for shared in sorted(STATIC.iterdir()):
            _add_asset(known, shared)
        app.router.add_get("/static/{name}", _asset)
    for asset in assets:
        _add_asset(known, asset)

    async def page_handler(request: web.Request) -> web.Response:
        return web.Response(body=page, content_type="text/html", charset="utf-8", headers=PAGE_HEADERS)

    app.router.add_get(path, page_handler)


def _add_asset(known: dict[str, tuple[bytes, str]], path: Path) -> None:
    if path.name in known:
        raise ValueError(f"expected unique page asset names, received {path.name!r} twice ({path})")
    content_type = _ASSET_TYPES.get(path.suffix)
    if content_type is None:
        raise ValueError(f"expected a .css or .js page asset, received {path}")
    known[path.name] = (path.read_bytes(), content_type)


async def _asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    found = request.app[_ASSETS].get(name)
    if found is None:
        return json_error(404, f"no page asset {name[:80]!r}")
    body, content_type = found
    return web.Response(body=body, content_type=content_type, charset="utf-8",
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


# --- JSON and blocking calls -------------------------------------------------------------------


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
