"""Which products go to people for labelling: importance sampling in the stream, and the Redis gate.

Every freshly categorised product is one arrival for :class:`LabellingSampler`, which asks for
it with probability ``p`` (:mod:`prodcat.sampling`: ``p = max(p_min, f(uncertainty,
disagreement))`` scaled by a rate controller to the budget per day). Those asked pass the
:class:`LabellingGate` (Redis): a product is requested at most once per window (SET NX, which
also keeps two workers from requesting it at once), and never more than the hard daily cap.
The request carries ``p``; the gate's key keeps it for the window too, so a label that comes
back without ``p`` can be joined to it (:meth:`LabellingGate.asked_with`).
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from redis.asyncio import Redis

from prodcat.errors import ConfigError
from prodcat.sampling import SamplingPolicy, StreamSampler
from prodcat.settings import Settings
from prodcat.taxonomy import Taxonomy
from streams.pipeline import Classified


@dataclass(frozen=True)
class LabellingPolicy:
    """What operators set: the sampling policy, the dedup window and the hard daily cap.

    ``max_per_day`` is a safety stop, not the target: the sampler aims at
    ``sampling.budget_per_day``; the cap refuses requests beyond it (which would bias the weights
    of that day's last requests, so keep it well above the budget).
    """

    sampling: SamplingPolicy = SamplingPolicy()
    window_s: int = 7 * 24 * 3600
    max_per_day: int = 1500

    @classmethod
    def from_settings(cls, settings: Settings) -> LabellingPolicy:
        """This worker's policy: its share of the fleet's budget (``PRODCAT_LABELLING_*``)."""
        budget = settings.labelling_budget_per_day / settings.labelling_workers
        sampling = SamplingPolicy(budget_per_day=budget, p_min=settings.labelling_p_min,
                                  sharpness=settings.labelling_sharpness, horizon_s=settings.labelling_horizon_s,
                                  reaction_s=min(60.0, settings.labelling_horizon_s),
                                  burst_s=settings.labelling_burst_s)
        cap = settings.labelling_max_per_day
        return cls(sampling, settings.labelling_window_s, math.ceil(1.5 * budget) if cap is None else cap)

    def __post_init__(self) -> None:
        if self.max_per_day < self.sampling.budget_per_day:
            raise ConfigError(f"Expected PRODCAT_LABELLING_MAX_PER_DAY (the hard cap, {self.max_per_day}) >= the "
                              f"budget PRODCAT_LABELLING_BUDGET_PER_DAY ({self.sampling.budget_per_day:g}); "
                              "raise the cap (1.5x the budget is a good start) or lower the budget")


@dataclass(frozen=True)
class Candidate:
    """A product the sampler asked for: ``p`` is the probability it was asked with, ``priority`` its raw score."""

    item: Classified
    reason: str
    priority: float
    p: float
    claim: str  # this draw's id: lets a retried admit recognise its own Redis key


class LabellingSampler:
    """The worker's side of :class:`~prodcat.sampling.StreamSampler`: categorised products in, candidates out."""

    def __init__(self, sampler: StreamSampler) -> None:
        self.sampler = sampler
        self._worker = uuid.uuid4().hex[:8]
        self._seq = 0

    def draw(self, items: Sequence[Classified], now: float | None = None) -> list[Candidate]:
        """One draw per product; the ones asked for, in arrival order."""
        draws = self.sampler.draw([i.result.uncertainty for i in items], [i.result.disagreement for i in items], now)
        out = []
        for item, d in zip(items, draws, strict=True):
            self._seq += 1
            if d.asked:
                out.append(Candidate(item, d.reason, round(d.score, 4), d.p, f"{self._worker}-{self._seq}"))
        return out

    def spend(self, n: int, now: float | None = None) -> None:
        """Book the requests the gate let through."""
        self.sampler.spend(n, now)


@dataclass(frozen=True)
class AskedWith:
    """What the gate remembers of a request for the window: the label store joins ``p`` from it."""

    p: float
    model_version: str
    requested_at: str


class LabellingGate:
    """Redis-backed: a product is requested at most once per window, and at most N a day overall."""

    def __init__(self, redis: Redis, policy: LabellingPolicy, namespace: str = "prodcat:label",
                 clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.policy = policy
        self.namespace = namespace
        self.clock = clock

    def _key(self, product_id: str) -> str:
        return f"{self.namespace}:req:{product_id}"

    async def admit(self, wanted: Sequence[Candidate], model_version: str) -> list[Candidate]:
        """The candidates that may be requested now; their keys hold ``p`` for the window."""
        if not wanted:
            return []
        day = time.strftime("%Y%m%d", time.gmtime(self.clock()))
        now = datetime.fromtimestamp(self.clock(), timezone.utc).isoformat()
        admitted = []
        for cand in wanted:
            key = self._key(cand.item.record.id)
            value = json.dumps({"p": cand.p, "model_version": model_version, "requested_at": now,
                                "claim": cand.claim})
            # SET NX claims the product for the window: a concurrent worker cannot request it too
            if not await self.redis.set(key, value, nx=True, ex=max(1, self.policy.window_s)):
                # a retry after an outage finds its own claim: still ours, still to be sent
                if _held(await self.redis.get(key)).get("claim") != cand.claim:
                    continue
            used = await self.redis.incr(f"{self.namespace}:day:{day}")
            if used == 1:
                await self.redis.expire(f"{self.namespace}:day:{day}", 2 * 24 * 3600)
            if used > self.policy.max_per_day:
                await self.redis.delete(key)
                break
            admitted.append(cand)
        return admitted

    async def asked_with(self, product_ids: Collection[str]) -> dict[str, AskedWith]:
        """For products requested within the window: the ``p`` and model version they were asked with."""
        ids = sorted(set(product_ids))
        if not ids:
            return {}
        values = await self.redis.mget([self._key(pid) for pid in ids])
        out = {}
        for pid, raw in zip(ids, values, strict=True):
            data = _held(raw)
            if isinstance(data.get("p"), (int, float)):
                out[pid] = AskedWith(float(data["p"]), str(data.get("model_version", "")),
                                     str(data.get("requested_at", "")))
        return out


def _held(raw: bytes | str | None) -> dict:
    """A gate key's value as a dict; keys written by older workers hold just the day."""
    try:
        data = json.loads(raw) if raw is not None else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def request_message(cand: Candidate, taxonomy: Taxonomy, model_version: str, top: int = 10) -> bytes:
    """The labelling.requests value: everything a labeller needs to decide without another lookup,
    and ``p``, which the labelling tool passes on into every label it publishes."""
    res = cand.item.result
    ranked = sorted(res.scores.items(), key=lambda kv: -kv[1])[:top]
    return json.dumps({
        "id": cand.item.record.id,
        "product": cand.item.record.to_document(),
        "decided": res.categories,
        "top_categories": [{"id": c, "name": " > ".join(taxonomy.path(c)), "score": s} for c, s in ranked],
        "explanation": res.explanation,
        "uncertainty": res.uncertainty,
        "disagreement": res.disagreement,
        "reason": cand.reason,
        "priority": cand.priority,
        "p": cand.p,
        "model_version": model_version,
        "requested_at": datetime.now(timezone.utc).isoformat(),
    }, default=str).encode()
