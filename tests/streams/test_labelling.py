"""Labelling in the worker, over in-memory pieces: p from the draw to the request, the tool's label,
the label store's join and the training weights; the gate's dedup, cap and retry."""

from __future__ import annotations

import asyncio
import json

import pytest

from prodcat.categoriser import Categorisation
from prodcat.errors import ConfigError
from prodcat.sampling import SamplingPolicy, StreamSampler
from retrain.label_store import HumanLabel, join_requests, parse_label
from retrain.labelling_kafka import label_message
from retrain.labelling_queue import parse_request
from retrain.labelling_tool import request_fields
from retrain.weights import importance_weights, label_probabilities
from streams.labelling import LabellingGate, LabellingPolicy, LabellingSampler
from tests.streams.fakes import TAXONOMY, TOPICS, FakeKafka, event, processor

SHORTS = TAXONOMY.find(["Clothing", "Shorts"])


class FakeRedis:
    """The few redis.asyncio calls the gate makes, on a dict (expiry is not simulated)."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    async def set(self, key: str, value: str, nx: bool = False, ex: int | None = None) -> bool | None:
        if nx and key in self.data:
            return None
        self.data[key] = value.encode()
        return True

    async def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    async def mget(self, keys: list[str]) -> list[bytes | None]:
        return [self.data.get(k) for k in keys]

    async def incr(self, key: str) -> int:
        self.data[key] = str(int(self.data.get(key, b"0")) + 1).encode()
        return int(self.data[key])

    async def expire(self, key: str, seconds: int) -> bool:
        return True

    async def delete(self, key: str) -> int:
        return int(self.data.pop(key, None) is not None)


class Doubtful:
    """A categoriser that is unsure about every product (uncertainty 0.8): p_raw = 0.64."""

    version = "model-test"
    taxonomy = TAXONOMY

    def categorise_batch(self, records, vectors=None):
        return [Categorisation(categories=[SHORTS], scores={SHORTS: 0.55}, uncertainty=0.8, disagreement=0.1)
                for _ in records]


def labelling_processor(kafka: FakeKafka, redis: FakeRedis, budget: float = 10_000):
    proc = processor(Doubtful(), kafka=kafka)
    policy = LabellingPolicy(SamplingPolicy(budget_per_day=budget), max_per_day=int(budget * 2))
    proc.labelling = LabellingGate(redis, policy)
    proc.labelling_sampler = LabellingSampler(StreamSampler(policy.sampling, seed=5, clock=lambda: 1_000.0))
    return proc


async def run(proc, values: list[bytes]) -> None:
    await proc.deliver(await proc.prepare([event(v, offset=i, key=None) for i, v in enumerate(values)]))


def test_p_travels_from_the_draw_to_the_request_the_label_the_store_and_the_weights():
    kafka, redis = FakeKafka(), FakeRedis()
    proc = labelling_processor(kafka, redis)
    asyncio.run(run(proc, [json.dumps({"id": f"p{i}", "title": f"cotton shorts {i}"}).encode() for i in range(40)]))
    requests = [parse_request(m.value) for m in kafka.on(TOPICS.label_requests)]
    assert requests, "some products were asked for"
    for req in requests:
        assert 0 < req["p"] <= 1 and req["model_version"] == "model-test" and req["reason"].startswith("uncertainty")

    # the tool copies p into the labels it publishes; another tool's label comes without p
    first, second = requests[0], requests[1]
    tool_label = HumanLabel.model_validate({"product_id": first["id"], "category": SHORTS, "positive": True,
                                            "labeller": "ana", **request_fields(first)})
    bare_label = HumanLabel(product_id=second["id"], category=SHORTS, positive=False, labeller="ben")
    parsed = [parse_label(label_message(lb), TAXONOMY, key=lb.product_id.encode()) for lb in (tool_label, bare_label)]
    assert parsed[0].p == first["p"] and parsed[1].p is None

    # the label store joins the missing p from the gate's record of the request
    stored = asyncio.run(join_requests(parsed, proc.labelling))
    assert [lb.p for lb in stored] == [first["p"], second["p"]]
    assert stored[1].model_version == "model-test"

    weights = importance_weights(label_probabilities(stored))
    assert weights[first["id"]] / weights[second["id"]] == pytest.approx(second["p"] / first["p"])


def test_the_gate_dedups_caps_and_recognises_its_own_claim_on_a_retry():
    kafka, redis = FakeKafka(), FakeRedis()
    proc = labelling_processor(kafka, redis)
    value = json.dumps({"id": "same", "title": "cotton shorts"}).encode()
    for _ in range(30):  # the same product again and again (each time a new version of it)
        asyncio.run(run(proc, [value]))
    assert len(kafka.on(TOPICS.label_requests)) == 1, "one request per product per window"

    gate = proc.labelling
    items = asyncio.run(proc.prepare([event(json.dumps({"id": f"r{i}", "title": "x"}).encode(), offset=i)
                                      for i in range(30)])).classified
    wanted = proc.labelling_sampler.draw(items)
    first = asyncio.run(gate.admit(wanted, "v"))
    again = asyncio.run(gate.admit(wanted, "v"))  # a retry after an outage: the same claims
    assert [c.item.record.id for c in again] == [c.item.record.id for c in first]

    with pytest.raises(ConfigError, match="PRODCAT_LABELLING_MAX_PER_DAY"):
        LabellingPolicy(SamplingPolicy(budget_per_day=100), max_per_day=50)
