"""The pieces the project's web pages share: the bind check, the access middleware and page
serving, on a tiny app through aiohttp's real test server and client."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from prodcat.errors import ConfigError
from prodcat.web import STATIC, access_middleware, check_bind, is_loopback, serve_page

TOKEN = "a-long-enough-token"
HINT = "pass --token (or set PRODCAT_THING_TOKEN)"


def _app(host: str, token: str | None) -> web.Application:
    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application(middlewares=[access_middleware(host, token, service="the thing", token_hint=HINT,
                                                         cookie="thing_token")])
    app.router.add_get("/x", ok)
    app.router.add_post("/x", ok)
    return app


def serve(app: web.Application, scenario: Callable[[TestClient, int], Awaitable[None]]) -> None:
    async def main() -> None:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            await scenario(client, client.port)

    asyncio.run(main())


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", " LOCALHOST "])
def test_loopback_names(host):
    assert is_loopback(host)
    check_bind(host, None, service="the thing", token_hint=HINT)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.168.1.20", "thing.example.com", "localhost.evil"])
def test_non_loopback_bind_without_token_is_refused_naming_the_setting(host):
    assert not is_loopback(host)
    with pytest.raises(ConfigError, match=r"the thing would listen on .* not a loopback address, without a token: "
                                          r"pass --token \(or set PRODCAT_THING_TOKEN\)"):
        check_bind(host, None, service="the thing", token_hint=HINT)
    with pytest.raises(ConfigError, match="PRODCAT_THING_TOKEN"):  # the middleware refuses to be built too
        _app(host, None)
    check_bind(host, TOKEN, service="the thing", token_hint=HINT)


def test_a_short_token_is_refused():
    with pytest.raises(ConfigError, match="at least 8 characters.*received 5; pass --token"):
        check_bind("0.0.0.0", "short", service="the thing", token_hint=HINT)
    with pytest.raises(ConfigError, match="received 0"):
        check_bind("127.0.0.1", "", service="the thing", token_hint=HINT)


def test_with_a_token_every_request_presents_it():
    async def scenario(client: TestClient, port: int) -> None:
        for method in ("GET", "POST"):
            missing = await client.request(method, "/x", json={})
            assert missing.status == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
            assert "no token was sent" in (await missing.json())["error"]
            wrong = await client.request(method, "/x", headers={"Authorization": "Bearer wrong-token-here"})
            assert wrong.status == 401 and "wrong" in (await wrong.json())["error"]
            assert (await client.request(method, "/x", headers={"Authorization": f"Bearer {TOKEN}"})).status == 200
            assert (await client.request(method, "/x", headers={"X-Prodcat-Token": TOKEN})).status == 200
        assert (await client.get("/x", headers={"X-Prodcat-Token": TOKEN[:-1]})).status == 401
        assert (await client.get("/nowhere", headers={"X-Prodcat-Token": TOKEN})).status == 404
        # any page opened once with ?token=: a cookie, and the same address without the token
        assert (await client.get("/x?token=wrong", allow_redirects=False)).status == 401
        resp = await client.get(f"/x?a=1&token={TOKEN}&b=2", allow_redirects=False)
        assert resp.status == 302 and resp.headers["Location"] == "/x?a=1&b=2"
        cookie = resp.headers["Set-Cookie"]
        assert cookie.startswith("thing_token=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert (await client.get("/x")).status == 200  # the client keeps the cookie
        assert (await client.post("/x", json={})).status == 200
        # no loopback checks on a server meant for the network: any Host, any Origin
        assert (await client.post("/x", headers={"Host": "thing.example.com", "Origin": "http://thing.example.com",
                                                  "X-Prodcat-Token": TOKEN})).status == 200

    serve(_app("0.0.0.0", TOKEN), scenario)


def test_loopback_refuses_foreign_host_and_origin():
    async def scenario(client: TestClient, port: int) -> None:
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"LOCALHOST:{port}"):
            assert (await client.get("/x", headers={"Host": host})).status == 200, host
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.1", f"127.0.0.1:{port + 1}",
                     f"localhost.evil.example:{port}", f"127.0.0.1:{port}:1", f"[::1:{port}", ""):
            resp = await client.get("/x", headers={"Host": host})
            assert resp.status == 403, host
            assert "expected a Host header of localhost, 127.0.0.1 or [::1]" in (await resp.json())["error"]
        own = f"http://127.0.0.1:{port}"
        for origin in (own, f"http://localhost:{port}", f"http://[::1]:{port}"):
            assert (await client.post("/x", json={}, headers={"Origin": origin})).status == 200, origin
        assert (await client.post("/x", json={})).status == 200  # no Origin: curl, not a browser
        for origin in ("http://evil.example", f"http://evil.example:{port}", f"http://127.0.0.1:{port + 1}",
                       "null", f"file://127.0.0.1:{port}", "not a url"):
            resp = await client.post("/x", json={}, headers={"Origin": origin})
            assert resp.status == 403, origin
            assert "expected no Origin or a loopback one" in (await resp.json())["error"]
        # reading is the Host check's job: a GET carrying a foreign Origin is same-origin-policy territory
        assert (await client.get("/x", headers={"Origin": "http://evil.example"})).status == 200

    serve(_app("127.0.0.1", None), scenario)


def test_loopback_with_a_token_checks_both():
    async def scenario(client: TestClient, port: int) -> None:
        assert (await client.get("/x", headers={"X-Prodcat-Token": TOKEN})).status == 200
        assert (await client.get("/x")).status == 401
        assert (await client.get("/x", headers={"X-Prodcat-Token": TOKEN, "Host": "evil.example"})).status == 403

    serve(_app("localhost", TOKEN), scenario)


def test_serve_page_serves_the_page_its_assets_and_the_shared_ones(tmp_path: Path):
    (tmp_path / "p.html").write_text('<!doctype html><link rel="stylesheet" href="/static/theme.css">')
    (tmp_path / "p.js").write_text("el('p');")
    (tmp_path / "p.css").write_text("h1 {}")
    app = web.Application()
    serve_page(app, "/page", tmp_path / "p.html", assets=[tmp_path / "p.css", tmp_path / "p.js"])

    async def scenario(client: TestClient, port: int) -> None:
        page = await client.get("/page")
        assert page.status == 200 and page.content_type == "text/html"
        csp = page.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe-inline" not in csp
        assert await page.text() == (tmp_path / "p.html").read_text()
        for name, kind, text in [("p.js", "text/javascript", "el('p');"), ("p.css", "text/css", "h1 {}"),
                                 ("theme.css", "text/css", (STATIC / "theme.css").read_text()),
                                 ("dom.js", "text/javascript", (STATIC / "dom.js").read_text())]:
            resp = await client.get(f"/static/{name}")
            assert (resp.status, resp.content_type, await resp.text()) == (200, kind, text), name
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
        for missing in ("p.html", "nope.js", "..%2Fp.html"):
            assert (await client.get(f"/static/{missing}")).status == 404, missing

    serve(app, scenario)


def test_serve_page_refuses_clashing_or_odd_assets(tmp_path: Path):
    (tmp_path / "p.html").write_text("<!doctype html>")
    (tmp_path / "dom.js").write_text("")
    (tmp_path / "p.txt").write_text("")
    with pytest.raises(ValueError, match="unique page asset names.*'dom.js'"):
        serve_page(web.Application(), "/", tmp_path / "p.html", assets=[tmp_path / "dom.js"])
    with pytest.raises(ValueError, match="a .css or .js page asset"):
        serve_page(web.Application(), "/", tmp_path / "p.html", assets=[tmp_path / "p.txt"])
    with pytest.raises(FileNotFoundError):  # a missing file fails when the app is built
        serve_page(web.Application(), "/", tmp_path / "missing.html")
