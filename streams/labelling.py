"""Which products go to people for labelling, and the gate that keeps the queue to a human rate."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from redis.asyncio import Redis

from prodcat.taxonomy import Taxonomy
from streams.pipeline import Classified


@dataclass(frozen=True)
class LabellingPolicy:
    """The selection rule: operators tune these to what people can label per day."""

    uncertainty_min: float = 0.6
    disagreement_min: float = 0.3
    window_s: int = 7 * 24 * 3600
    max_per_day: int = 1000


@dataclass(frozen=True)
class Candidate:
    item: Classified
    reason: str
    priority: float


def candidates(items: Sequence[Classified], policy: LabellingPolicy) -> list[Candidate]:
    """Products close to a threshold or split between members, most informative first."""
    out = []
    for item in items:
        u, d = item.result.uncertainty, item.result.disagreement
        reasons = []
        if u is not None and u >= policy.uncertainty_min:
            reasons.append(f"uncertainty {u:.2f} >= {policy.uncertainty_min}")
        if d is not None and d >= policy.disagreement_min:
            reasons.append(f"disagreement {d:.2f} >= {policy.disagreement_min}")
        if reasons:
            out.append(Candidate(item, "; ".join(reasons), round(max(u or 0.0, d or 0.0), 4)))
    return sorted(out, key=lambda c: -c.priority)


class LabellingGate:
    """Redis-backed: a product is requested at most once per window, and at most N a day overall."""

    def __init__(self, redis: Redis, policy: LabellingPolicy, namespace: str = "prodcat:label") -> None:
        self.redis = redis
        self.policy = policy
        self.namespace = namespace

    async def admit(self, wanted: Sequence[Candidate]) -> list[Candidate]:
        if not wanted:
            return []
        day = time.strftime("%Y%m%d", time.gmtime())
        admitted = []
        for cand in wanted:
            # SET NX claims the product for the window: a concurrent worker cannot request it too
            if not await self.redis.set(f"{self.namespace}:req:{cand.item.record.id}", day, nx=True,
                                        ex=self.policy.window_s):
                continue
            used = await self.redis.incr(f"{self.namespace}:day:{day}")
            if used == 1:
                await self.redis.expire(f"{self.namespace}:day:{day}", 2 * 24 * 3600)
            if used > self.policy.max_per_day:
                await self.redis.delete(f"{self.namespace}:req:{cand.item.record.id}")
                break
            admitted.append(cand)
        return admitted


def request_message(cand: Candidate, taxonomy: Taxonomy, model_version: str, top: int = 10) -> bytes:
    """The labelling.requests value: everything a labeller needs to decide without another lookup."""
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
        "model_version": model_version,
        "requested_at": datetime.now(timezone.utc).isoformat(),
    }, default=str).encode()
