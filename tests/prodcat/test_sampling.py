"""The stream sampler: raw probabilities, the rate controller holding a budget, seeded draws."""

from __future__ import annotations

import numpy as np
import pytest

from prodcat.errors import ConfigError
from prodcat.sampling import DAY_S, RateController, SamplingPolicy, StreamSampler, raw_probabilities

BUDGET = 1000
ARRIVALS = 100_000


def synthetic_stream(seed: int, *, n: int = ARRIVALS, burst: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arrival times over one simulated day (a day/night swing of +-80%), with 20% of the arrivals
    in a backlog dump of 10 minutes at 10:00 (50x the mean rate); uncertainty and disagreement."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, DAY_S, 3 * n)
    t = t[rng.random(3 * n) < (1 + 0.8 * np.sin(2 * np.pi * t / DAY_S)) / 1.8][:n]
    if burst:
        dump = rng.choice(n, n // 5, replace=False)
        t[dump] = rng.uniform(10 * 3600, 10 * 3600 + 600, len(dump))
    return np.sort(t), rng.beta(2, 3, n), rng.beta(1, 4, n)


def replay(sampler: StreamSampler, t: np.ndarray, u: np.ndarray, d: np.ndarray, batch: int = 5):
    """The worker's loop: draw a small batch, then book the requests made."""
    asked_at, ps = [], []
    for i in range(0, len(t), batch):
        now = float(t[min(i + batch, len(t)) - 1])
        draws = sampler.draw(u[i:i + batch].tolist(), d[i:i + batch].tolist(), now)
        made = [x for x in draws if x.asked]
        sampler.spend(len(made), now)
        asked_at += [now] * len(made)
        ps += [x.p for x in draws]
    return np.array(asked_at), np.array(ps)


def test_the_rate_controller_holds_the_budget_without_bursts():
    t, u, d = synthetic_stream(seed=0)
    asked, p = replay(StreamSampler(SamplingPolicy(budget_per_day=BUDGET), seed=1), t, u, d)
    # the day's total: within 3% of the budget (Bernoulli noise alone is ~1%)
    assert abs(len(asked) - BUDGET) <= 0.03 * BUDGET, len(asked)
    # the stated bound on bursts: no hour above 1.5x the hourly budget (41.7), though one 10-minute
    # window holds 20,000 arrivals; an uncontrolled p would spend a fifth of the day's budget there
    hourly = np.histogram(asked, bins=24, range=(0, DAY_S))[0]
    assert hourly.max() <= 1.5 * BUDGET / 24, hourly.tolist()
    in_dump = ((asked >= 10 * 3600) & (asked < 10 * 3600 + 600)).sum()
    assert in_dump <= 2 * BUDGET / 144 + 10, in_dump  # 10 minutes' share, plus noise
    assert p.min() > 0 and p.max() <= 1


def test_draws_are_seeded_and_p_follows_the_doubt():
    t, u, d = synthetic_stream(seed=3, n=5000, burst=False)
    first = replay(StreamSampler(SamplingPolicy(budget_per_day=200), seed=7), t, u, d)
    again = replay(StreamSampler(SamplingPolicy(budget_per_day=200), seed=7), t, u, d)
    other = replay(StreamSampler(SamplingPolicy(budget_per_day=200), seed=8), t, u, d)
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])
    # the more doubtful half is asked with a higher p
    p = first[1]
    doubt = np.maximum(u, d)
    assert p[doubt > np.median(doubt)].mean() > 2 * p[doubt <= np.median(doubt)].mean()


@pytest.mark.parametrize("start", [0.0, 1.7e9])  # a simulated clock from 0, wall time
@pytest.mark.parametrize("gap", [0.5, 60.0, 1080.0])
def test_micro_batches_far_apart_are_not_read_as_bursts(gap: float, start: float):
    # batches of 5 every `gap` seconds for 6 hours: 0.5 s is a busy worker, 1080 s a 400-row pool
    # replayed as one day (StreamSelection) or a quiet feed. Counted whole at their arrival, batches
    # a minute apart read 1.6x the real rate, 18 minutes apart 18x (5 / reaction_s), and p fell as much
    controller = RateController(SamplingPolicy(budget_per_day=200))
    n = int(6 * 3600 / gap)
    rates = []
    for k in range(n):
        controller.probabilities(np.full(5, 0.1), now=start + k * gap)
        rates.append(controller.arrival_rate() * gap / 5)
    assert rates[-1] == pytest.approx(1.0, rel=0.02)
    assert max(rates[n // 2:]) <= 1.05


def test_raw_probabilities_floor_and_reasons():
    policy = SamplingPolicy(p_min=0.05, sharpness=2)
    p, why = raw_probabilities([0.9, 0.1, None, 0.3], [0.2, 0.5, None, 0.8], policy)
    assert p.tolist() == pytest.approx([0.81, 0.25, 0.05, 0.64])
    assert [w.split(" ")[0] for w in why] == ["uncertainty", "disagreement", "exploration", "disagreement"]


def test_a_zero_budget_asks_for_nothing_and_bad_settings_name_the_variable():
    sampler = StreamSampler(SamplingPolicy(budget_per_day=0), seed=0)
    assert not any(x.asked for x in sampler.draw([1.0] * 100, [1.0] * 100, now=0.0))
    with pytest.raises(ConfigError, match="PRODCAT_LABELLING_P_MIN"):
        SamplingPolicy(p_min=0)
    with pytest.raises(ConfigError, match="PRODCAT_LABELLING_BUDGET_PER_DAY"):
        SamplingPolicy(budget_per_day=-1)
