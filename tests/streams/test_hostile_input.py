"""Property tests: whatever bytes a feed sends, the record pipeline categorises them or dead-letters them.

It never raises, never loses an event, and never stores a document the limits forbid.
"""

from __future__ import annotations

import asyncio
import json

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prodcat.errors import InvalidRecord
from prodcat.limits import InputLimits
from prodcat.record import parse_record
from tests.streams.fakes import TOPICS, FakeElastic, FakeKafka, event, processor

LIMITS = InputLimits(message_bytes=64 << 10, json_depth=8, fields=50, field_name_chars=32, field_chars=2_000,
                     id_bytes=64, document_bytes=32 << 10)
FIELDS = ["id", "title", "name", "brand", "category", "description", "price", "updated_at", "gender", "image_url",
          "sku", "extras"]

text = st.text(alphabet=st.characters(exclude_categories=()), max_size=80)  # any code point, lone surrogates included
scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) | text
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(text | st.sampled_from(FIELDS), inner, max_size=4), max_leaves=30)
products = st.fixed_dictionaries({}, optional={name: json_values for name in FIELDS})


def deep(depth: int, kind: str) -> bytes:
    return (b"[" * depth + b"]" * depth) if kind == "array" else (b'{"a":' * depth + b"1" + b"}" * depth)


hostile = st.one_of(
    st.binary(max_size=300),
    products.map(lambda p: json.dumps(p, ensure_ascii=True, allow_nan=True).encode()),  # \ud800 escapes, NaN
    products.map(lambda p: json.dumps(p, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")),
    st.tuples(st.integers(1, 6000), st.sampled_from(["array", "object"])).map(lambda t: deep(*t)),
    st.integers(0, 100_000).map(lambda n: orjson.dumps({"id": "big", "title": "t" * n})),
    st.integers(1, 600).map(lambda n: orjson.dumps({"id": "€" * n, "title": "shorts"})),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile)
def test_parse_record_either_returns_a_record_or_raises_invalid_record(raw: bytes) -> None:
    try:
        record = parse_record(raw, limits=LIMITS)
    except InvalidRecord as exc:
        assert exc.reason and exc.stage in ("parse", "validate")
    else:
        assert 0 < len(record.id.encode()) <= LIMITS.id_bytes
        orjson.dumps(record.to_document())  # storable: valid Unicode, finite numbers


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(hostile, min_size=1, max_size=12))
def test_every_event_of_a_batch_ends_categorised_superseded_or_dead_lettered(values: list[bytes]) -> None:
    elastic, kafka = FakeElastic(), FakeKafka()
    proc = processor(elastic=elastic, kafka=kafka, limits=LIMITS)
    events = [event(v, offset=i) for i, v in enumerate(values)]

    async def go() -> None:
        await proc.deliver(await proc.prepare(events))

    asyncio.run(go())
    dead = {d.offset: d for d in kafka.dead_letters()}
    assert all(d.value == values[d.offset] and d.reason for d in dead.values())  # original bytes, a reason
    published = {json.loads(m.value)["id"] for m in kafka.on(TOPICS.categorised)}
    assert published == set(elastic.docs)
    for i, v in enumerate(values):
        if i in dead:
            continue
        record = parse_record(v, limits=LIMITS)  # not dead-lettered: it parses, and its product is stored
        assert record.id in elastic.docs
    assert all(len(orjson.dumps(d.source)) <= LIMITS.document_bytes for d in elastic.docs.values())
