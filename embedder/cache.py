"""Redis cache of image vectors, keyed by image content and model version.

Many retailers show the same picture under different URLs, so vectors are keyed by the sha256
of the image bytes (``FetchResult.content_hash``): each picture is embedded once per model
version. A second mapping, URL -> content hash, lets a URL seen before skip even the download.

Keys (``ns`` = namespace)::

    {ns}:v:{model_version}:{content_hash}   raw little-endian float32 bytes of the vector
    {ns}:u:{sha256(url)}                    content hash of the image last seen at that URL

URLs are hashed so that a 2 kB affiliate tracking URL costs a fixed 64-byte key.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from prodcat.errors import ConfigError

if TYPE_CHECKING:
    import redis

__all__ = ["VectorCache"]

log = logging.getLogger(__name__)

_DAY_S = 24 * 3600
_DTYPE = np.dtype("<f4")  # fixed byte order: the bytes stay valid across machines


class VectorCache:
    """Image vectors in Redis: ``get``/``put`` by content hash, ``get_by_url`` by image URL.

    ``ttl_s`` bounds how long a vector lives (``None``: until Redis evicts it); ``url_ttl_s``
    is shorter by default because the picture behind a URL may change, while a content hash
    always names the same picture. Returned vectors are writable float32 copies.
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        namespace: str = "prodcat:vec",
        ttl_s: int | None = 30 * _DAY_S,
        url_ttl_s: int | None = 7 * _DAY_S,
    ) -> None:
        for name, value in (("ttl_s", ttl_s), ("url_ttl_s", url_ttl_s)):
            if value is not None and value <= 0:
                raise ConfigError(f"VectorCache: expected {name} > 0 or None. Received: {name}={value!r}")
        if redis_client.get_connection_kwargs().get("decode_responses"):
            raise ConfigError("VectorCache stores raw bytes: build its Redis client with decode_responses=False")
        self.redis = redis_client
        self.namespace = namespace
        self.ttl_s = ttl_s
        self.url_ttl_s = url_ttl_s

    # --- keys --------------------------------------------------------------------------------

    def _vector_key(self, content_hash: str, model_version: str) -> str:
        return f"{self.namespace}:v:{model_version}:{content_hash}"

    def _url_key(self, url: str) -> str:
        return f"{self.namespace}:u:{hashlib.sha256(url.encode('utf-8')).hexdigest()}"

    # --- reads -------------------------------------------------------------------------------

    def get(self, content_hash: str, model_version: str) -> np.ndarray | None:
        """The vector of this picture under this model version, or None."""
        return self._decode(self.redis.get(self._vector_key(content_hash, model_version)))

    def get_many(self, content_hashes: Sequence[str], model_version: str) -> list[np.ndarray | None]:
        """Like ``get`` for many hashes in one round trip (MGET); None where missing."""
        if not content_hashes:
            return []
        raw = self.redis.mget([self._vector_key(h, model_version) for h in content_hashes])
        return [self._decode(value) for value in raw]

    def content_hash_for_url(self, url: str) -> str | None:
        """Content hash of the image last stored for ``url``, or None."""
        value = self.redis.get(self._url_key(url))
        return value.decode("ascii") if value is not None else None

    def get_by_url(self, url: str, model_version: str) -> np.ndarray | None:
        """The vector of the image at ``url`` if both the URL and its picture are known."""
        content_hash = self.content_hash_for_url(url)
        return None if content_hash is None else self.get(content_hash, model_version)

    def get_many_by_url(self, urls: Sequence[str], model_version: str) -> list[np.ndarray | None]:
        """Like ``get_by_url`` for many URLs in two round trips (URL hashes, then vectors)."""
        if not urls:
            return []
        hashes = self.redis.mget([self._url_key(u) for u in urls])
        known = [(i, h.decode("ascii")) for i, h in enumerate(hashes) if h is not None]
        found: list[np.ndarray | None] = [None] * len(urls)
        if known:
            vectors = self.get_many([h for _, h in known], model_version)
            for (i, _), vector in zip(known, vectors):
                found[i] = vector
        return found

    # --- writes ------------------------------------------------------------------------------

    def put(self, content_hash: str, vector: np.ndarray, model_version: str, url: str | None = None) -> None:
        """Store ``vector`` for this picture (and remember that ``url`` shows it)."""
        self.put_many([content_hash], [vector], model_version, urls=[url])

    def put_many(
        self,
        content_hashes: Sequence[str],
        vectors: Sequence[np.ndarray] | np.ndarray,
        model_version: str,
        urls: Sequence[str | None] | None = None,
    ) -> None:
        """Store many vectors (rows of a 2-D array or a list of 1-D ones) in one round trip."""
        if len(vectors) != len(content_hashes) or (urls is not None and len(urls) != len(content_hashes)):
            raise ValueError(
                f"Expected one vector (and URL, if given) per content hash. Received: {len(content_hashes)} "
                f"hashes, {len(vectors)} vectors, {'no' if urls is None else len(urls)} URLs"
            )
        pipe = self.redis.pipeline(transaction=False)  # batching, not atomicity
        for i, (content_hash, vector) in enumerate(zip(content_hashes, vectors)):
            pipe.set(self._vector_key(content_hash, model_version), self._encode(vector), ex=self.ttl_s)
            if urls is not None and urls[i] is not None:
                pipe.set(self._url_key(urls[i]), content_hash, ex=self.url_ttl_s)
        pipe.execute()

    # --- encoding ----------------------------------------------------------------------------

    @staticmethod
    def _encode(vector: np.ndarray) -> bytes:
        array = np.asarray(vector)
        if array.ndim != 1:
            raise ValueError(f"Expected a 1-D vector. Received: shape {array.shape}")
        return array.astype(_DTYPE, copy=False).tobytes()

    @staticmethod
    def _decode(raw: bytes | None) -> np.ndarray | None:
        if raw is None:
            return None
        if len(raw) % _DTYPE.itemsize:
            # not written by this class (or cut short): treat as a miss, it will be rewritten
            log.warning("ignoring a cached vector of %d bytes (not a multiple of 4)", len(raw))
            return None
        return np.frombuffer(raw, dtype=_DTYPE).astype(np.float32)  # astype copies: writable
