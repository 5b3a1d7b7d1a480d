"""VectorCache against the real Redis of the session stack; each test has its own namespace."""

from __future__ import annotations

import hashlib
import uuid

import numpy as np
import pytest
import redis

from embedder.cache import VectorCache
from prodcat.errors import ConfigError

pytestmark = pytest.mark.integration

DIM = 1280
V1, V2 = "efficientnet-lite0@test-1", "efficientnet-lite0@test-2"


@pytest.fixture
def client(stack) -> redis.Redis:
    c = redis.Redis.from_url(stack.redis_url, **stack.redis_kwargs())
    yield c
    c.close()


@pytest.fixture
def cache(client) -> VectorCache:
    return VectorCache(client, namespace=f"test:{uuid.uuid4().hex[:8]}")


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _hash(i: int) -> str:
    return f"{i:064x}"


def test_round_trip_is_bit_exact_and_raw_float32(cache, client):
    vector = _vectors(1)[0]
    vector[:3] = [np.float32(1e-38), np.float32(-0.0), np.float32(3.4e38)]  # tiny, signed zero, huge
    cache.put(_hash(1), vector, V1)
    got = cache.get(_hash(1), V1)
    assert got.dtype == np.float32 and got.shape == (DIM,)
    assert got.tobytes() == vector.tobytes()
    got[0] = 5.0  # a writable copy, not a view on Redis' bytes
    raw = client.get(f"{cache.namespace}:v:{V1}:{_hash(1)}")
    assert raw == vector.astype("<f4").tobytes() and len(raw) == DIM * 4


def test_float64_input_is_stored_as_float32(cache):
    vector = _vectors(1)[0].astype(np.float64)
    cache.put(_hash(2), vector, V1)
    assert np.array_equal(cache.get(_hash(2), V1), vector.astype(np.float32))


def test_model_versions_are_separate(cache):
    a, b = _vectors(2)
    cache.put(_hash(1), a, V1)
    assert cache.get(_hash(1), V2) is None
    cache.put(_hash(1), b, V2)
    assert np.array_equal(cache.get(_hash(1), V1), a)
    assert np.array_equal(cache.get(_hash(1), V2), b)


def test_url_maps_to_content(cache):
    vector = _vectors(1)[0]
    shop_a = "https://cdn.shop-a.example/p/123.jpg?utm_source=affiliate&x=" + "y" * 1500
    shop_b = "https://img.shop-b.example/abc.jpg"
    assert cache.get_by_url(shop_a, V1) is None
    cache.put(_hash(7), vector, V1, url=shop_a)
    assert cache.content_hash_for_url(shop_a) == _hash(7)
    assert np.array_equal(cache.get_by_url(shop_a, V1), vector)
    assert cache.get_by_url(shop_a, V2) is None  # known picture, but not embedded by this model
    assert cache.get_by_url(shop_b, V1) is None
    # the same picture from another retailer: no new vector, only a new URL mapping
    cache.put_many([_hash(7)], [vector], V1, urls=[shop_b])
    assert cache.get_many_by_url([shop_b, "https://unknown.example/x.jpg", shop_a], V1)[1] is None
    assert np.array_equal(cache.get_many_by_url([shop_b], V1)[0], vector)


def test_get_many_keeps_order_with_misses(cache):
    vectors = _vectors(5, seed=1)
    cache.put_many([_hash(i) for i in range(5)], vectors, V1)
    wanted = [_hash(3), _hash(99), _hash(0), _hash(98), _hash(4), _hash(3)]
    got = cache.get_many(wanted, V1)
    assert [g is None for g in got] == [False, True, False, True, False, False]
    for g, i in zip([got[0], got[2], got[4], got[5]], [3, 0, 4, 3]):
        assert np.array_equal(g, vectors[i])
    assert cache.get_many([], V1) == []


def test_ttls_are_set(client):
    cache = VectorCache(client, namespace=f"test:{uuid.uuid4().hex[:8]}", ttl_s=3600, url_ttl_s=600)
    cache.put(_hash(1), _vectors(1)[0], V1, url="https://x.example/a.jpg")
    assert 3590 <= client.ttl(f"{cache.namespace}:v:{V1}:{_hash(1)}") <= 3600
    url_key = f"{cache.namespace}:u:{hashlib.sha256(b'https://x.example/a.jpg').hexdigest()}"
    assert 590 <= client.ttl(url_key) <= 600

    forever = VectorCache(client, namespace=f"test:{uuid.uuid4().hex[:8]}", ttl_s=None)
    forever.put(_hash(1), _vectors(1)[0], V1)
    assert client.ttl(f"{forever.namespace}:v:{V1}:{_hash(1)}") == -1  # no expiry


def test_default_ttl_is_thirty_days(cache, client):
    cache.put(_hash(1), _vectors(1)[0], V1)
    assert 30 * 86400 - 10 <= client.ttl(f"{cache.namespace}:v:{V1}:{_hash(1)}") <= 30 * 86400


def test_foreign_bytes_are_a_miss(cache, client):
    client.set(f"{cache.namespace}:v:{V1}:{_hash(1)}", b"abc")
    assert cache.get(_hash(1), V1) is None


def test_misuse_is_reported(cache, stack):
    with pytest.raises(ValueError, match="1-D"):
        cache.put(_hash(1), _vectors(2), V1)
    with pytest.raises(ValueError, match="one vector"):
        cache.put_many([_hash(1), _hash(2)], _vectors(1), V1)
    with pytest.raises(ConfigError, match="decode_responses=False"):
        VectorCache(redis.Redis.from_url(stack.redis_url, decode_responses=True))
    with pytest.raises(ConfigError, match="ttl_s"):
        VectorCache(cache.redis, ttl_s=0)
