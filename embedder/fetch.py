"""Safe image loading from untrusted affiliate feeds.

Feed URLs are attacker-controlled, so ``ImageFetcher`` treats every one as hostile:

- only ``http``/``https`` (local files only when asked for);
- every address a host name resolves to must be public (no loopback, private, link-local incl.
  the cloud metadata address, CGNAT, multicast, reserved; IPv4 embedded in IPv6 is unwrapped);
- the connection goes to the address that was checked (DNS pinned: a name that re-resolves to
  127.0.0.1 between check and connect cannot be used), with the original Host header and TLS
  server name so virtual hosting and certificate checks still work;
- redirects are followed by hand, each hop checked again;
- the body is capped while streaming, its type and magic bytes are checked before Pillow sees
  it, and the pixel count is checked before the pixels are decoded.

Failures are reported per item in ``FetchResult.reason`` (short, stable strings), never raised.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import ipaddress
import logging
import socket
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit
from urllib.request import url2pathname

import urllib3
from PIL import Image, ImageOps, UnidentifiedImageError
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from embedder.base import to_rgb
from prodcat.errors import ConfigError

__all__ = ["FetchResult", "ImageFetcher"]

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# S3 and some CDNs label every object this way; the magic-byte check still gates the content
_GENERIC_TYPES = frozenset({"application/octet-stream", "binary/octet-stream"})
# only what we can decode, so servers that negotiate content never pick AVIF/HEIC for us
_ACCEPT = "image/jpeg,image/png,image/webp,image/gif,image/bmp;q=0.9"
_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class FetchResult:
    """Outcome of one fetch: an RGB image when ``ok``, else a short ``reason``.

    ``content_hash`` is the sha256 hex of the downloaded bytes whenever the body was read in
    full (also when decoding then failed), so identical pictures can be recognised.
    """

    url: str
    ok: bool
    image: Image.Image | None = None
    content_hash: str | None = None
    reason: str | None = None


class _Failed(Exception):
    """Internal: stops a fetch with a reason that ends up in ``FetchResult.reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Target:
    """An http(s) URL taken apart into what the connection needs."""

    scheme: str
    host: str  # IDNA-encoded name or IP literal, without brackets
    port: int
    request_uri: str
    host_header: str

    @classmethod
    def parse(cls, url: str) -> _Target:
        try:
            parts = urlsplit(url)
            port = parts.port
            host = parts.hostname
        except ValueError as exc:
            raise _Failed(f"invalid url: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise _Failed(f"refused: scheme {scheme or 'missing'}")
        if not host:
            raise _Failed("invalid url: no host")
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise _Failed("invalid url: bad host name") from None
        default_port = 443 if scheme == "https" else 80
        shown = f"[{host}]" if ":" in host else host
        host_header = shown if port in (None, default_port) else f"{shown}:{port}"
        # feeds contain spaces and other raw characters; quote them but keep existing escapes
        target = quote(parts.path or "/", safe="/%:@!$&'()*+,;=~")
        if parts.query:
            target += "?" + quote(parts.query, safe="/%:@!$&'()*+,;=~?")
        return cls(scheme, host, port or default_port, target, host_header)


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64, IPv4-compatible), if any."""
    if ip.version != 6 or ip.is_loopback or ip.is_unspecified:
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or ip in _IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _address_kind(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public internet address ("loopback", "private", ...), or None."""
    ip = _embedded_ipv4(ip) or ip
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("cgnat", ip.version == 4 and ip in _CGNAT),
        ("site-local", ip.version == 6 and ip.is_site_local),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
        ("non-public", not ip.is_global),
    )
    return next((kind for kind, hit in checks if hit), None)


def _sniff_format(data: bytes) -> str:
    """The Pillow format name for the file's magic bytes; only these formats are decoded."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:2] == b"BM":
        return "BMP"
    raise _Failed("not an image: unrecognised file signature")


def _decode(data: bytes, max_pixels: int) -> Image.Image:
    """Decode ``data`` into a loaded RGB image, refusing bombs, truncation and non-images."""
    fmt = _sniff_format(data)
    try:
        # open() reads only the header, so the size is known before any pixel is decoded
        image = Image.open(io.BytesIO(data), formats=[fmt])
    except Image.DecompressionBombError:
        # Pillow's own hard limit (2 x Image.MAX_IMAGE_PIXELS) tripped before ours could
        raise _Failed("decompression bomb: over Pillow's pixel limit") from None
    except UnidentifiedImageError:
        raise _Failed(f"not an image: unreadable {fmt}") from None
    except Exception as exc:  # noqa: BLE001 - malformed headers raise many kinds of errors
        raise _Failed(f"corrupt image: {type(exc).__name__}") from None
    width, height = image.size
    if width * height > max_pixels:
        raise _Failed(f"decompression bomb: {width}x{height} = {width * height} pixels > {max_pixels}")
    try:
        image.load()
        # phone shots of products carry their rotation in EXIF only
        return to_rgb(ImageOps.exif_transpose(image))
    except Image.DecompressionBombError:
        raise _Failed("decompression bomb: over Pillow's pixel limit") from None
    except (OSError, EOFError) as exc:
        if isinstance(exc, EOFError) or "truncated" in str(exc):
            raise _Failed("truncated image") from None
        raise _Failed(f"corrupt image: {exc}"[:120]) from None
    except Exception as exc:  # noqa: BLE001 - decoders raise ValueError, SyntaxError, struct.error...
        raise _Failed(f"corrupt image: {type(exc).__name__}") from None


class ImageFetcher:
    """Downloads and decodes product images from untrusted URLs (or local files, if allowed).

    ``allow_private`` turns the address checks off entirely (a trusted, internal feed);
    ``allowed_networks`` exempts only the given networks (e.g. ``["10.20.0.0/16"]`` for an
    in-house image CDN) while every other address is still checked. ``ca_certs`` is a PEM
    bundle to trust instead of the system's (a private CA); certificates are always verified.
    """

    def __init__(
        self,
        *,
        allow_private: bool = False,
        allow_local_files: bool = False,
        allowed_networks: Iterable[str] = (),
        connect_timeout_s: float = 3.0,
        read_timeout_s: float = 10.0,
        total_timeout_s: float = 30.0,
        max_bytes: int = 10_000_000,
        max_pixels: int = 40_000_000,
        max_redirects: int = 3,
        user_agent: str = "prodcat-image-fetcher/0.1",
        ca_certs: str | Path | None = None,
    ) -> None:
        for name, value in (("connect_timeout_s", connect_timeout_s), ("read_timeout_s", read_timeout_s),
                            ("total_timeout_s", total_timeout_s), ("max_bytes", max_bytes),
                            ("max_pixels", max_pixels)):
            if not value > 0:
                raise ConfigError(f"ImageFetcher: expected {name} > 0. Received: {name}={value!r}")
        if max_redirects < 0:
            raise ConfigError(f"ImageFetcher: expected max_redirects >= 0. Received: max_redirects={max_redirects!r}")
        try:
            self.allowed_networks = tuple(ipaddress.ip_network(n, strict=False) for n in allowed_networks)
        except ValueError as exc:
            raise ConfigError(f"ImageFetcher: allowed_networks must be CIDR strings like '10.0.0.0/8': {exc}") from None
        self.allow_private = allow_private
        self.allow_local_files = allow_local_files
        self.timeout = urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s)
        self.total_timeout_s = total_timeout_s
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.max_redirects = max_redirects
        self.ca_certs = str(ca_certs) if ca_certs is not None else None
        self.headers = {"User-Agent": user_agent, "Accept": _ACCEPT, "Accept-Encoding": "identity"}

    # --- public API ------------------------------------------------------------------------

    def fetch(self, url_or_path: str | Path) -> FetchResult:
        """Download (or read) and decode one image; never raises for a bad input."""
        url = str(url_or_path)
        content_hash = None
        try:
            data = self._read_local(url) if self._is_local(url) else self._download(url)
            content_hash = hashlib.sha256(data).hexdigest()
            image = _decode(data, self.max_pixels)
        except _Failed as failure:
            log.debug("image fetch failed: %s: %s", url, failure.reason)
            return FetchResult(url, ok=False, content_hash=content_hash, reason=failure.reason)
        except Exception as exc:  # noqa: BLE001 - one hostile URL must never stop the stream
            log.warning("unexpected error fetching %s", url, exc_info=True)
            return FetchResult(url, ok=False, content_hash=content_hash, reason=f"error: {type(exc).__name__}")
        return FetchResult(url, ok=True, image=image, content_hash=content_hash)

    async def fetch_many(self, urls: Sequence[str | Path], concurrency: int = 8) -> list[FetchResult]:
        """Fetch ``urls`` with at most ``concurrency`` in flight; results in input order.

        Runs ``fetch`` in a private thread pool: the same (audited) code path as the sync call,
        and the CPU-bound decoding stays off the event loop.
        """
        if concurrency < 1:
            raise ValueError(f"Expected concurrency >= 1. Received: concurrency={concurrency!r}")
        urls = list(urls)
        if not urls:
            return []
        loop = asyncio.get_running_loop()
        pool = ThreadPoolExecutor(max_workers=min(concurrency, len(urls)), thread_name_prefix="prodcat-fetch")
        try:
            return list(await asyncio.gather(*(loop.run_in_executor(pool, self.fetch, u) for u in urls)))
        finally:
            # on cancellation, do not block the event loop waiting for in-flight downloads
            pool.shutdown(wait=False, cancel_futures=True)

    # --- local files -----------------------------------------------------------------------

    @staticmethod
    def _is_local(url: str) -> bool:
        if url.startswith("//"):  # scheme-relative URL: remote, refused as "scheme missing"
            return False
        try:
            scheme = urlsplit(url).scheme.lower()
        except ValueError:  # e.g. "http://[::1" - _Target.parse reports it as an invalid url
            return False
        # a one-letter "scheme" is a Windows drive ("C:\\...")
        return scheme == "file" or scheme == "" or len(scheme) == 1

    def _read_local(self, url: str) -> bytes:
        if not url:
            raise _Failed("invalid url: empty")
        if not self.allow_local_files:
            raise _Failed("refused: local files disabled")
        parts = urlsplit(url)
        if parts.scheme.lower() == "file":
            if parts.netloc not in ("", "localhost"):
                raise _Failed(f"refused: remote file host {parts.netloc}")
            path = Path(url2pathname(parts.path))
        else:
            path = Path(url)
        try:
            if not path.is_file():  # no FIFOs or devices: they could block or never end
                raise _Failed("not found" if not path.exists() else "refused: not a regular file")
            size = path.stat().st_size
            if size > self.max_bytes:
                raise _Failed(f"too large: {size} bytes > {self.max_bytes}")
            with path.open("rb") as f:
                data = f.read(self.max_bytes + 1)
        except OSError as exc:
            raise _Failed(f"file error: {type(exc).__name__}") from None
        if len(data) > self.max_bytes:
            raise _Failed(f"too large: more than {self.max_bytes} bytes")
        return data

    # --- http(s) ---------------------------------------------------------------------------

    def _download(self, url: str) -> bytes:
        deadline = time.monotonic() + self.total_timeout_s
        for _ in range(self.max_redirects + 1):
            target = _Target.parse(url)
            addresses = self._resolve(target)
            pool, response = self._open(target, addresses, deadline)
            try:
                if response.status in _REDIRECTS:
                    location = response.headers.get("Location")
                    if not location:
                        raise _Failed(f"http {response.status} without location")
                    url = urljoin(url, location.strip())
                    continue
                if response.status != 200:
                    raise _Failed(f"http {response.status}")
                self._check_headers(response)
                return self._read_body(response, deadline)
            finally:
                response.release_conn()
                pool.close()
        raise _Failed(f"too many redirects: more than {self.max_redirects}")

    def _resolve(self, target: _Target) -> list[IPAddress]:
        """All addresses of the host, each one checked; the connection uses only these."""
        try:
            infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError):
            raise _Failed(f"dns: cannot resolve {target.host}") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
        if not addresses:
            raise _Failed(f"dns: no address for {target.host}")
        if not self.allow_private:
            # every address, not just the first: the OS may pick any of them on connect
            for ip in addresses:
                kind = _address_kind(ip)
                if kind and not any(ip in net for net in self.allowed_networks):
                    raise _Failed(f"refused: {kind} address {ip}")
        return addresses

    def _open(
        self, target: _Target, addresses: list[IPAddress], deadline: float
    ) -> tuple[urllib3.HTTPConnectionPool, urllib3.BaseHTTPResponse]:
        """Send the request to the first checked address that accepts a connection."""
        failure = "connect failed"
        for ip in addresses:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Failed("timeout")
            timeout = urllib3.Timeout(connect=min(self.timeout.connect_timeout, remaining),
                                      read=min(self.timeout.read_timeout, remaining))
            pool = self._pool(target, str(ip), timeout)
            try:
                response = pool.urlopen(
                    "GET", target.request_uri, headers={**self.headers, "Host": target.host_header},
                    redirect=False, retries=False, preload_content=False, decode_content=False,
                    assert_same_host=False,
                )
                return pool, response
            except NewConnectionError:  # refused/unreachable: try the next checked address
                failure = "connect failed"
            except ConnectTimeoutError:
                failure = "timeout"
            except ReadTimeoutError:  # connected, but no response headers in time
                pool.close()
                raise _Failed("timeout") from None
            except SSLError as exc:
                pool.close()
                raise _Failed(f"tls error: {exc}"[:120]) from None
            except (HTTPError, OSError) as exc:
                pool.close()
                raise _Failed(f"connection error: {type(exc).__name__}") from None
            pool.close()
        raise _Failed(failure)

    def _pool(self, target: _Target, ip: str, timeout: urllib3.Timeout) -> urllib3.HTTPConnectionPool:
        """A one-connection pool to the pinned ``ip``; TLS still verifies the URL's host name."""
        common = {"timeout": timeout, "retries": False, "maxsize": 1}
        if target.scheme == "http":
            return urllib3.HTTPConnectionPool(ip, target.port, **common)
        is_name = ip != target.host
        return urllib3.HTTPSConnectionPool(
            ip, target.port, cert_reqs="CERT_REQUIRED", ca_certs=self.ca_certs,
            server_hostname=target.host if is_name else None,
            assert_hostname=target.host if is_name else None,
            **common,
        )

    def _check_headers(self, response: urllib3.BaseHTTPResponse) -> None:
        encoding = (response.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding != "identity":
            # we asked for identity; decompressing an unasked-for body is a bomb vector
            raise _Failed(f"unsupported content-encoding: {encoding}")
        media_type = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if media_type and not media_type.startswith("image/") and media_type not in _GENERIC_TYPES:
            raise _Failed(f"not an image: content-type {media_type}")
        length = response.headers.get("Content-Length")
        if length is not None and length.strip().isdigit() and int(length) > self.max_bytes:
            raise _Failed(f"too large: {int(length)} bytes > {self.max_bytes}")

    def _read_body(self, response: urllib3.BaseHTTPResponse, deadline: float) -> bytes:
        body = bytearray()
        try:
            # read timeout bounds each recv; the deadline bounds a server that drips bytes slowly
            for chunk in response.stream(_CHUNK, decode_content=False):
                body += chunk
                if len(body) > self.max_bytes:
                    raise _Failed(f"too large: more than {self.max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise _Failed("timeout")
        except ReadTimeoutError:
            raise _Failed("timeout") from None
        except ProtocolError as exc:
            incomplete = "IncompleteRead" in repr(exc) or "incomplete" in str(exc).lower()
            raise _Failed("incomplete body" if incomplete else "connection broken") from None
        except (HTTPError, OSError) as exc:
            raise _Failed(f"connection error: {type(exc).__name__}") from None
        return bytes(body)
