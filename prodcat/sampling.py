"""Who is asked for a label: stream-based importance sampling with a rate controller.

The one selection code path of active learning. The worker (:mod:`streams.labelling`), the
retrain package's :class:`~retrain.selection.StreamSelection` and the simulation benchmark
(``benchmarks/active_learning.py``) all decide through :class:`StreamSampler`.

Importance-weighted active learning (Beygelzimer, Dasgupta and Langford, 2009) on a stream:
each arriving product is asked for with probability ``p`` and, if labelled, weighs ``1/p`` in
training, so the labelled set stays an unbiased picture of the stream however strongly the
selection prefers doubtful products. Here

    p_raw = max(p_min, max(uncertainty, disagreement) ** sharpness)      (:func:`raw_probabilities`)
    p     = min(1, scale * p_raw)                                         (:class:`RateController`)

``p_min`` keeps every product askable (a product with ``p = 0`` could never be labelled and
nothing could correct for it) and bounds the spread of the weights: ``max w / min w <= 1/p_min``
as long as the scale does not move. ``p`` depends only on the product's signals and on the
past (arrivals, earlier requests), never on the product's label, which is what keeps the
``1/p`` weights unbiased even though the scale moves.

Lives in the shared domain package because the worker (``streams/``) and retraining
(``retrain/``) must run the same code and may not import each other.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from prodcat.errors import ConfigError

__all__ = ["Draw", "RateController", "SamplingPolicy", "StreamSampler", "raw_probabilities"]

DAY_S = 86_400.0


@dataclass(frozen=True)
class SamplingPolicy:
    """What operators set (``PRODCAT_LABELLING_*``): the budget and how sharply doubt is preferred.

    ``budget_per_day``: labelling requests this sampler aims at per day (a worker's share of the
    fleet's budget). ``p_min``: the floor of the raw probability. ``sharpness``: the exponent on
    the doubt signal (higher = the budget goes more to the most doubtful products). ``horizon_s``:
    time constant of the arrival-rate and mean-p estimates; ``reaction_s``: time constant of the
    fast arrival-rate estimate that catches bursts; ``burst_s``: depth of the token bucket in
    seconds of budget (how far requests may run ahead of or behind the budget).
    """

    budget_per_day: float = 1000.0
    p_min: float = 0.05
    sharpness: float = 2.0
    horizon_s: float = 3600.0
    reaction_s: float = 60.0
    burst_s: float = 3600.0

    def __post_init__(self) -> None:
        if self.budget_per_day < 0:
            raise ConfigError(f"Expected a labelling budget >= 0 per day. Received: {self.budget_per_day}; "
                              "set PRODCAT_LABELLING_BUDGET_PER_DAY (0 turns labelling requests off)")
        if not 0 < self.p_min <= 1:
            raise ConfigError(f"Expected 0 < p_min <= 1. Received: {self.p_min}; set PRODCAT_LABELLING_P_MIN")
        if self.sharpness <= 0:
            raise ConfigError(f"Expected sharpness > 0. Received: {self.sharpness}; set PRODCAT_LABELLING_SHARPNESS")
        if not 0 < self.reaction_s <= self.horizon_s:
            raise ConfigError(f"Expected 0 < reaction_s <= horizon_s. Received: reaction_s={self.reaction_s}, "
                              f"horizon_s={self.horizon_s}; set PRODCAT_LABELLING_HORIZON_S")
        if self.burst_s <= 0:
            raise ConfigError(f"Expected burst_s > 0. Received: {self.burst_s}; set PRODCAT_LABELLING_BURST_S")


def raw_probabilities(uncertainty: Sequence[float | None], disagreement: Sequence[float | None],
                      policy: SamplingPolicy) -> tuple[np.ndarray, list[str]]:
    """Per product, ``max(p_min, max(u, d) ** sharpness)`` and why (the larger signal, or the floor).

    A missing signal (a rules categoriser has neither) counts as 0: such products are asked at
    the floor rate, uniformly, which is plain random sampling.
    """
    u = np.array([np.nan if x is None else x for x in uncertainty], dtype=np.float64)
    d = np.array([np.nan if x is None else x for x in disagreement], dtype=np.float64)
    u, d = np.clip(np.nan_to_num(u, nan=0.0), 0, 1), np.clip(np.nan_to_num(d, nan=0.0), 0, 1)
    doubt = np.maximum(u, d) ** policy.sharpness
    p = np.maximum(policy.p_min, doubt)
    reasons = [f"exploration (floor p_min {policy.p_min:g})" if f <= policy.p_min
               else (f"uncertainty {ui:.2f}" if ui >= di else f"disagreement {di:.2f}")
               for f, ui, di in zip(doubt.tolist(), u.tolist(), d.tolist(), strict=True)]
    return p, reasons


class RateController:
    """Scales raw probabilities so that requests meet the budget per day, without bursts.

    Why this design (a feed-forward estimate corrected by a token bucket):

    * **Feed-forward**: the expected number of requests per second is ``rate * mean(p)``, so
      ``scale = budget_rate / (arrival_rate * mean_raw_p)`` meets the budget when the estimates
      are right. The arrival rate is an exponentially weighted count (time constant
      ``horizon_s``, corrected for the short history at start-up) and, for bursts, a fast one
      (``reaction_s``), each batch's arrivals spread over the time since the previous batch
      (:func:`_spread`: sparse batches are not bursts); the larger of the two is used, so a
      backlog replayed at 50x the usual rate lowers ``p`` within about a minute instead of
      spending the day's budget on it.
    * **Feedback**: estimates are never exact (``min(1, ...)`` clips, the mix of doubt drifts, the
      gate refuses duplicates), so a token bucket of depth ``burst_s`` seconds of budget keeps the
      account: it fills at the budget rate, each request made takes a token, and the scale is
      multiplied by ``4 ** (2 * level - 1)`` (level = tokens / depth, clipped to [0, 1]): x1 when
      half full, down to x1/4 when requests ran a bucket ahead, up to x4 when they lagged. A full
      bucket stops filling, so a quiet night does not save allowance for a burst in the morning.

    A plain token bucket that refuses requests when empty was rejected: a product arriving then
    would have ``p = 0``, so no weight could correct for it, and whether it is asked would depend
    on what happened to arrive just before it. Here ``p`` never drops to 0, and the bound on
    bursts is statistical: over any ``burst_s`` window, the expected requests stay under the
    window's budget plus the bucket depth.

    ``probabilities(raw, now)`` counts ``raw`` as arrivals at ``now`` and returns their ``p``;
    ``spend(n, now)`` books the requests actually made. Times are seconds on any clock that does
    not go back (the worker: wall time; the simulation: simulated time).
    """

    def __init__(self, policy: SamplingPolicy) -> None:
        self.policy = policy
        self.rate = policy.budget_per_day / DAY_S  # requests per second wanted
        self.depth = max(self.rate * policy.burst_s, 1.0)
        self.tokens = self.depth / 2
        self._started: float | None = None
        self._last = 0.0
        self._slow = self._fast = self._sum_p = 0.0

    def _advance(self, now: float) -> None:
        if self._started is None:
            self._started, self._last = now, now
        dt = max(0.0, now - self._last)
        self._last = max(self._last, now)
        self.tokens = min(self.depth, self.tokens + self.rate * dt)
        slow, fast = math.exp(-dt / self.policy.horizon_s), math.exp(-dt / self.policy.reaction_s)
        self._slow *= slow
        self._sum_p *= slow
        self._fast *= fast

    def arrival_rate(self) -> float:
        """Arrivals per second: the larger of the slow and the fast estimate."""
        # an exponentially weighted count over tau, divided by the weight the history so far can hold
        started = self._last if self._started is None else self._started  # a clock may start at 0
        elapsed = max(self._last - started, self.policy.reaction_s)
        slow = self._slow / (self.policy.horizon_s * -math.expm1(-elapsed / self.policy.horizon_s))
        fast = self._fast / (self.policy.reaction_s * -math.expm1(-elapsed / self.policy.reaction_s))
        return max(slow, fast)

    def scale(self) -> float:
        """The factor on raw probabilities now (before the batch being drawn, after its arrivals)."""
        if self.rate == 0:
            return 0.0
        arrivals = self.arrival_rate()
        if arrivals <= 0 or self._slow <= 0:
            return 1.0
        mean_p = self._sum_p / self._slow
        level = min(1.0, max(0.0, self.tokens / self.depth))
        return self.rate / (arrivals * mean_p) * 4.0 ** (2 * level - 1)

    def probabilities(self, raw: np.ndarray, now: float) -> np.ndarray:
        """``min(1, scale * raw)`` for a batch arriving at ``now`` (its arrivals are counted first)."""
        raw = np.asarray(raw, dtype=np.float64)
        gap = 0.0 if self._started is None else max(0.0, now - self._last)
        self._advance(now)
        slow, fast = _spread(gap, self.policy.horizon_s), _spread(gap, self.policy.reaction_s)
        self._slow += len(raw) * slow
        self._fast += len(raw) * fast
        self._sum_p += float(raw.sum()) * slow
        return np.minimum(1.0, self.scale() * raw)

    def spend(self, n: int, now: float) -> None:
        """Book ``n`` requests made at ``now``."""
        self._advance(now)
        self.tokens -= n


def _spread(gap: float, tau: float) -> float:
    """The weight of a batch in an exponentially weighted count when its arrivals are spread over ``gap``.

    A batch seen at ``now`` holds the arrivals since the previous one, ``gap`` seconds ago. Counted
    whole at ``now``, a batch per ``gap`` much longer than ``tau`` reads as ``n / tau`` per second
    right after each batch instead of ``n / gap`` (a micro-batch of 5 every 18 minutes looked like
    a burst 18x the real rate to the 60 s estimate, and the sampler asked for a fifth of its
    budget). Spread evenly over the gap, a batch weighs ``(tau / gap) (1 - exp(-gap / tau))``, and
    then steady batches of ``n`` every ``gap`` read exactly ``n / gap`` after each, whatever the
    gap; for a gap much shorter than ``tau`` (a busy stream, a backlog dump) the weight is ~1, the
    whole batch at ``now``.
    """
    x = gap / tau
    return 1.0 if x < 1e-12 else -math.expm1(-x) / x


@dataclass(frozen=True)
class Draw:
    """One arrival's outcome: asked or not, the probability it was asked with, and why."""

    asked: bool
    p: float
    reason: str
    score: float  # the raw probability: how much the product is worth asking about


class StreamSampler:
    """Raw probabilities -> rate control -> one seeded uniform draw per arrival.

    ``seed`` makes the draws reproducible: tests and the simulation replay exactly; each worker
    gets its own seed (``streams.app``) so workers do not draw in lockstep.
    """

    def __init__(self, policy: SamplingPolicy, *, seed: int | Sequence[int] = 0,
                 clock: Callable[[], float] = time.time) -> None:
        self.policy = policy
        self.controller = RateController(policy)
        self.rng = np.random.default_rng(seed)
        self.clock = clock

    def draw(self, uncertainty: Sequence[float | None], disagreement: Sequence[float | None],
             now: float | None = None) -> list[Draw]:
        """One :class:`Draw` per arrival, in order; call :meth:`spend` with the requests then made."""
        if len(uncertainty) != len(disagreement):
            raise ValueError(f"Expected one disagreement per uncertainty. Received: {len(uncertainty)} "
                             f"uncertainties and {len(disagreement)} disagreements")
        if not len(uncertainty):
            return []
        now = self.clock() if now is None else now
        raw, reasons = raw_probabilities(uncertainty, disagreement, self.policy)
        p = self.controller.probabilities(raw, now)
        asked = self.rng.random(len(p)) < p
        return [Draw(bool(a), float(pi), r, float(s))
                for a, pi, r, s in zip(asked.tolist(), p.tolist(), reasons, raw.tolist(), strict=True)]

    def spend(self, n: int, now: float | None = None) -> None:
        """Book the requests actually made (the gate may refuse some of those asked)."""
        self.controller.spend(n, self.clock() if now is None else now)
