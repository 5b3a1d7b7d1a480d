"""ImageFetcher against local HTTP servers only (127.0.0.1, plus 127.0.0.2 as an "internal"
service), real product photos from ../shared/datasets, and generated hostile files.

The test server is itself on a loopback address, so tests that must reach it exempt exactly
``127.0.0.1/32`` with ``allowed_networks`` (the production knob for an in-house CDN); every other
address, including 127.0.0.2 where a second server plays an internal service, is still checked.
That keeps the redirect-to-private tests meaningful: without the per-hop check they would
succeed (127.0.0.2) or fail with a connect error, never with the asserted "refused" reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from embedder.fetch import FetchResult, ImageFetcher
from prodcat.errors import ConfigError

Route = Callable[[BaseHTTPRequestHandler], None]
SERVER_ONLY = ["127.0.0.1/32"]


class _Handler(BaseHTTPRequestHandler):
    """Dispatches GET to ``server.routes[path]``; unknown paths are 404."""

    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?")[0]
        self.server.hosts_seen.append(self.headers.get("Host", ""))
        route = self.server.routes.get(path)
        if route is None:
            _send(self, b"not found", "text/plain", status=404)
        else:
            route(self)

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str) -> None:
        super().__init__((host, 0), _Handler)
        self.routes: dict[str, Route] = {}
        self.hosts_seen: list[str] = []

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # the fetcher hangs up on purpose
            super().handle_error(request, client_address)

    def url(self, path: str) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}{path}"


def _send(h: BaseHTTPRequestHandler, body: bytes, content_type: str | None = "image/jpeg", *,
          status: int = 200, length: int | None = None, headers: dict[str, str] | None = None) -> None:
    h.send_response(status)
    if content_type:
        h.send_header("Content-Type", content_type)
    h.send_header("Content-Length", str(len(body) if length is None else length))
    for name, value in (headers or {}).items():
        h.send_header(name, value)
    h.end_headers()
    h.wfile.write(body)


def _redirect(location: str, status: int = 302) -> Route:
    return lambda h: _send(h, b"", None, status=status, headers={"Location": location})


def _serve(host: str):
    server = _Server(host)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture(scope="module")
def server():
    srv, thread = _serve("127.0.0.1")
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


@pytest.fixture(scope="module")
def internal():
    """A second server on 127.0.0.2: an internal service a redirect must not reach."""
    srv, thread = _serve("127.0.0.2")
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


@pytest.fixture(scope="module")
def photos(datasets: Path) -> list[Path]:
    folder = datasets / "myntra" / "images"
    found = sorted(folder.glob("*.jpg"))[:3]
    if len(found) < 3:
        pytest.skip(f"need 3 JPEGs in {folder} (see ../shared/datasets/README.md)")
    return found


@pytest.fixture(scope="module")
def jpeg(photos: list[Path]) -> bytes:
    return photos[0].read_bytes()


def _bomb(width: int, height: int) -> bytes:
    """A tiny PNG (1-bit, all zero, so it compresses ~1000:1) declaring width x height pixels."""
    buf = io.BytesIO()
    Image.new("1", (width, height)).save(buf, "PNG")
    return buf.getvalue()


def _fetcher(**kwargs) -> ImageFetcher:
    return ImageFetcher(allowed_networks=SERVER_ONLY, **kwargs)


def _failed(result: FetchResult) -> str:
    assert isinstance(result, FetchResult)
    assert not result.ok and result.image is None and result.reason
    return result.reason


# --- success -----------------------------------------------------------------------------------


def test_fetches_a_real_jpeg(server, photos, jpeg):
    server.routes["/photo.jpg"] = lambda h: _send(h, jpeg)
    result = _fetcher().fetch(server.url("/photo.jpg"))
    assert result.ok and result.reason is None
    assert result.url == server.url("/photo.jpg")
    assert result.content_hash == hashlib.sha256(jpeg).hexdigest()
    assert result.image.mode == "RGB"
    expected = np.asarray(Image.open(photos[0]).convert("RGB"))
    assert np.array_equal(np.asarray(result.image), expected)


def test_octet_stream_is_accepted_when_the_bytes_are_an_image(server, jpeg):
    server.routes["/s3-object"] = lambda h: _send(h, jpeg, "application/octet-stream")
    assert _fetcher().fetch(server.url("/s3-object")).ok


def test_follows_up_to_three_redirects(server, jpeg):
    server.routes["/photo.jpg"] = lambda h: _send(h, jpeg)
    server.routes["/r1"] = _redirect("/r2", 301)
    server.routes["/r2"] = _redirect(server.url("/r3"), 307)
    server.routes["/r3"] = _redirect("photo.jpg", 303)  # relative Location
    assert _fetcher().fetch(server.url("/r1")).ok

    server.routes["/loop"] = _redirect("/loop")
    assert _failed(_fetcher().fetch(server.url("/loop"))) == "too many redirects: more than 3"


def test_connects_to_the_checked_address_with_the_original_host_header(server, jpeg, monkeypatch):
    """DNS pinning: the name is resolved once per hop; a rebinding answer is never used."""
    server.routes["/pinned.jpg"] = lambda h: _send(h, jpeg)
    port = server.server_address[1]
    real_getaddrinfo = socket.getaddrinfo
    answers = iter(["127.0.0.1", "10.0.0.5", "10.0.0.5"])  # rebinds after the first lookup
    lookups = []

    def fake_getaddrinfo(host, *args, **kwargs):
        if host != "images.example.test":
            return real_getaddrinfo(host, *args, **kwargs)
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (next(answers), port))]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    server.hosts_seen.clear()
    result = _fetcher().fetch(f"http://images.example.test:{port}/pinned.jpg")
    assert result.ok, result.reason
    assert lookups == ["images.example.test"]
    assert server.hosts_seen == [f"images.example.test:{port}"]


def test_every_resolved_address_is_checked(monkeypatch):
    def fake_getaddrinfo(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, port))
                for ip in ("93.184.216.34", "10.1.2.3")]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    reason = _failed(ImageFetcher().fetch("http://mixed.example.test/a.jpg"))
    assert reason == "refused: private address 10.1.2.3"


# --- hostile content ---------------------------------------------------------------------------


def test_declared_oversize_is_refused_before_reading(server):
    def huge(h):  # declares 1 GB, sends a few bytes and keeps the connection open
        _send(h, b"\xff\xd8\xff" + b"\0" * 100, length=1_000_000_000)
        time.sleep(2)

    server.routes["/huge.jpg"] = huge
    started = time.monotonic()
    reason = _failed(_fetcher().fetch(server.url("/huge.jpg")))
    assert reason == "too large: 1000000000 bytes > 10000000"
    assert time.monotonic() - started < 1.5


def test_undeclared_oversize_is_cut_off_while_streaming(server):
    def endless(h):  # HTTP/1.0 without Content-Length: the body runs until the server closes
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        h.end_headers()
        for _ in range(40):
            h.wfile.write(b"\xff" * 10_000)

    server.routes["/endless.jpg"] = endless
    reason = _failed(_fetcher(max_bytes=50_000).fetch(server.url("/endless.jpg")))
    assert reason == "too large: more than 50000 bytes"


def test_wrong_content_length_is_an_incomplete_body(server, jpeg):
    server.routes["/short.jpg"] = lambda h: _send(h, jpeg, length=len(jpeg) + 5_000)
    assert _failed(_fetcher().fetch(server.url("/short.jpg"))) == "incomplete body"


def test_truncated_jpeg(server, jpeg):
    half = jpeg[: len(jpeg) // 2]
    server.routes["/truncated.jpg"] = lambda h: _send(h, half)
    result = _fetcher().fetch(server.url("/truncated.jpg"))
    assert _failed(result) == "truncated image"
    assert result.content_hash == hashlib.sha256(half).hexdigest()  # the bytes were read


def test_decompression_bomb_over_max_pixels(server):
    bomb = _bomb(8000, 8000)
    server.routes["/bomb.png"] = lambda h: _send(h, bomb, "image/png")
    reason = _failed(_fetcher().fetch(server.url("/bomb.png")))
    assert reason == "decompression bomb: 8000x8000 = 64000000 pixels > 40000000"


def test_decompression_bomb_over_pillows_limit_leaves_global_state_alone(server):
    bomb = _bomb(20000, 20000)  # 400 Mpx in ~50 kB
    assert len(bomb) < 100_000
    server.routes["/bigbomb.png"] = lambda h: _send(h, bomb, "image/png")
    before = Image.MAX_IMAGE_PIXELS
    assert _failed(_fetcher().fetch(server.url("/bigbomb.png"))).startswith("decompression bomb")
    assert Image.MAX_IMAGE_PIXELS == before


def test_html_named_jpg(server):
    page = b"<!doctype html><html><body>Not found</body></html>"
    server.routes["/page.jpg"] = lambda h: _send(h, page, "text/html; charset=utf-8")
    server.routes["/liar.jpg"] = lambda h: _send(h, page, "image/jpeg")
    assert _failed(_fetcher().fetch(server.url("/page.jpg"))) == "not an image: content-type text/html"
    assert _failed(_fetcher().fetch(server.url("/liar.jpg"))) == "not an image: unrecognised file signature"


def test_unasked_for_compression_is_refused(server, jpeg):
    server.routes["/gz.jpg"] = lambda h: _send(h, jpeg, headers={"Content-Encoding": "gzip"})
    assert _failed(_fetcher().fetch(server.url("/gz.jpg"))) == "unsupported content-encoding: gzip"


def test_http_404(server):
    assert _failed(_fetcher().fetch(server.url("/missing.jpg"))) == "http 404"


def test_slow_headers_time_out(server, jpeg):
    def slow(h):
        time.sleep(1.5)
        _send(h, jpeg)

    server.routes["/slow.jpg"] = slow
    started = time.monotonic()
    assert _failed(_fetcher(read_timeout_s=0.2).fetch(server.url("/slow.jpg"))) == "timeout"
    assert time.monotonic() - started < 1.0


def test_dripping_body_hits_the_total_deadline(server, jpeg):
    def drip(h):  # each byte arrives well within the read timeout; the whole never does
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        h.send_header("Content-Length", str(len(jpeg)))
        h.end_headers()
        for i in range(30):
            h.wfile.write(jpeg[i:i + 1])
            h.wfile.flush()
            time.sleep(0.05)

    server.routes["/drip.jpg"] = drip
    fetcher = _fetcher(read_timeout_s=1.0, total_timeout_s=0.5)
    assert _failed(fetcher.fetch(server.url("/drip.jpg"))) == "timeout"


# --- SSRF --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "reason"), [
    ("http://127.0.0.1/", "refused: loopback address 127.0.0.1"),
    ("http://10.0.0.5/", "refused: private address 10.0.0.5"),
    ("http://169.254.169.254/latest/meta-data", "refused: link-local address 169.254.169.254"),
    ("http://[::1]/", "refused: loopback address ::1"),
    ("http://[::ffff:127.0.0.1]/", "refused: loopback address ::ffff:"),
    ("http://0.0.0.0/", "refused: unspecified address 0.0.0.0"),
    ("http://localhost/", "refused: loopback address "),  # a name resolving to loopback
    ("http://2130706433/", "refused: loopback address 127.0.0.1"),  # decimal form of 127.0.0.1
    ("http://100.64.0.1/", "refused: cgnat address 100.64.0.1"),
    ("http://172.16.0.1/", "refused: private address 172.16.0.1"),
    ("http://192.168.1.1/", "refused: private address 192.168.1.1"),
    ("http://224.0.0.1/", "refused: multicast address 224.0.0.1"),
    ("http://[fd00::1]/", "refused: private address fd00::1"),
    ("http://[fe80::1]/", "refused: link-local address fe80::1"),
    ("http://[2002:a00:1::]/", "refused: private address 2002:a00:1::"),  # 6to4 of 10.0.0.1
    ("https://127.0.0.1:8443/x.jpg", "refused: loopback address 127.0.0.1"),
    ("ftp://example.com/x.jpg", "refused: scheme ftp"),
    ("data:image/png;base64,iVBORw0KGgo=", "refused: scheme data"),
    ("file:///etc/passwd", "refused: local files disabled"),
    ("/etc/passwd", "refused: local files disabled"),
    ("http://example.com:99999/", "invalid url: "),
    ("http://[::1/x.jpg", "invalid url: "),
    ("//cdn.example.com/x.jpg", "refused: scheme missing"),  # scheme-relative: cleaning's job
    ("", "invalid url: empty"),
])
def test_ssrf_targets_are_refused(url, reason):
    result = ImageFetcher().fetch(url)
    assert _failed(result).startswith(reason)
    assert result.content_hash is None


@pytest.mark.parametrize(("location", "reason"), [
    ("http://10.0.0.5/x.jpg", "refused: private address 10.0.0.5"),
    ("http://169.254.169.254/latest/meta-data", "refused: link-local address 169.254.169.254"),
    ("internal", "refused: loopback address 127.0.0.2"),
    ("file:///etc/passwd", "refused: scheme file"),
])
def test_redirect_to_a_private_address_is_refused(server, internal, jpeg, location, reason):
    internal.routes["/secret.jpg"] = lambda h: _send(h, jpeg)
    target = internal.url("/secret.jpg") if location == "internal" else location
    server.routes["/to-inside"] = _redirect(target)
    fetcher = _fetcher(allow_local_files=True)  # even then a redirect never reaches local files
    assert _failed(fetcher.fetch(server.url("/to-inside"))) == reason


def test_internal_server_is_reachable_when_its_network_is_allowed(server, internal, jpeg):
    """Control for the test above: the 127.0.0.2 refusal comes from the check, not the network."""
    internal.routes["/secret.jpg"] = lambda h: _send(h, jpeg)
    server.routes["/to-inside"] = _redirect(internal.url("/secret.jpg"))
    assert ImageFetcher(allowed_networks=["127.0.0.0/8"]).fetch(server.url("/to-inside")).ok
    assert ImageFetcher(allow_private=True).fetch(server.url("/to-inside")).ok


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory, jpeg):
    """An HTTPS server on 127.0.0.1 with a self-signed certificate for images.example.test."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=images.example.test",
                    "-addext", "subjectAltName=DNS:images.example.test"], check=True, capture_output=True)
    srv = _Server("127.0.0.1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    srv.sni_seen = []
    context.sni_callback = lambda sock, name, ctx: srv.sni_seen.append(name)
    srv.socket = context.wrap_socket(srv.socket, server_side=True)
    srv.routes["/tls.jpg"] = lambda h: _send(h, jpeg)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv, cert
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def test_https_to_a_pinned_address_still_verifies_the_host_name(tls_server, monkeypatch):
    srv, cert = tls_server
    port = srv.server_address[1]
    real_getaddrinfo = socket.getaddrinfo

    def fake_getaddrinfo(host, *args, **kwargs):
        if host.endswith(".example.test"):
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", port))]
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    trusting = _fetcher(ca_certs=cert)
    assert trusting.fetch(f"https://images.example.test:{port}/tls.jpg").ok
    assert srv.sni_seen[-1] == "images.example.test"  # SNI is the name, not the pinned IP
    wrong_name = trusting.fetch(f"https://other.example.test:{port}/tls.jpg")
    assert _failed(wrong_name).startswith("tls error: hostname 'other.example.test' doesn't match")
    untrusted = _fetcher().fetch(f"https://images.example.test:{port}/tls.jpg")
    assert _failed(untrusted).startswith("tls error: ") and "CERTIFICATE_VERIFY_FAILED" in untrusted.reason


# --- local files -------------------------------------------------------------------------------


def test_local_files_when_allowed(photos, tmp_path):
    fetcher = ImageFetcher(allow_local_files=True)
    assert fetcher.fetch(photos[0]).ok
    assert fetcher.fetch(photos[0].as_uri()).ok
    html = tmp_path / "page.jpg"
    html.write_bytes(b"<html>oops</html>")
    assert _failed(fetcher.fetch(html)) == "not an image: unrecognised file signature"
    assert _failed(fetcher.fetch(tmp_path / "absent.jpg")) == "not found"
    assert _failed(fetcher.fetch(tmp_path)) == "refused: not a regular file"
    assert _failed(ImageFetcher(allow_local_files=True, max_bytes=1000).fetch(photos[0])).startswith("too large: ")


# --- fetch_many --------------------------------------------------------------------------------


def test_fetch_many_keeps_order_and_bounds_concurrency(server, photos):
    lock = threading.Lock()
    in_flight = [0, 0]  # current, max

    def counted(body: bytes) -> Route:
        def route(h):
            with lock:
                in_flight[0] += 1
                in_flight[1] = max(in_flight[1], in_flight[0])
            time.sleep(0.2)
            with lock:
                in_flight[0] -= 1
            _send(h, body)
        return route

    bodies = [p.read_bytes() for p in photos]
    for i, body in enumerate(bodies * 2):
        server.routes[f"/many/{i}.jpg"] = counted(body)
    urls = [server.url(f"/many/{i}.jpg") for i in range(6)]
    urls[2:2] = [server.url("/many/missing.jpg"), "http://10.0.0.5/x.jpg"]

    results = asyncio.run(_fetcher().fetch_many(urls, concurrency=2))

    assert [r.url for r in results] == urls
    assert [r.ok for r in results] == [True, True, False, False, True, True, True, True]
    assert results[2].reason == "http 404" and results[3].reason == "refused: private address 10.0.0.5"
    hashes = [r.content_hash for r in results if r.ok]
    assert hashes == [hashlib.sha256(b).hexdigest() for b in bodies * 2]
    assert in_flight[1] == 2


def test_fetch_many_edge_cases():
    assert asyncio.run(ImageFetcher().fetch_many([])) == []
    with pytest.raises(ValueError, match="concurrency"):
        asyncio.run(ImageFetcher().fetch_many(["http://x/"], concurrency=0))


@pytest.mark.parametrize("kwargs", [
    {"max_bytes": 0}, {"read_timeout_s": -1}, {"max_redirects": -1}, {"allowed_networks": ["not-a-net"]},
])
def test_bad_configuration_is_rejected_at_construction(kwargs):
    with pytest.raises(ConfigError, match="ImageFetcher"):
        ImageFetcher(**kwargs)
