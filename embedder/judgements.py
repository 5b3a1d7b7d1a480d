"""``JudgementStore``: people's good/bad marks on similar-product results, in one SQLite file.

One row per (query product, neighbour, judge); marking again replaces the mark. Each row also
keeps the query's level-2 category (the search was filtered by it), so precision per category
needs nothing but this file.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Judgement", "JudgementStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS judgements (
    query_id     TEXT    NOT NULL,
    neighbour_id TEXT    NOT NULL,
    judge        TEXT    NOT NULL,
    level2       TEXT    NOT NULL,
    rank         INTEGER NOT NULL CHECK (rank >= 1),
    good         INTEGER NOT NULL CHECK (good IN (0, 1)),
    time         REAL    NOT NULL,
    PRIMARY KEY (query_id, neighbour_id, judge)
)
"""
_UPSERT = """
INSERT INTO judgements (query_id, neighbour_id, judge, level2, rank, good, time)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (query_id, neighbour_id, judge)
DO UPDATE SET level2 = excluded.level2, rank = excluded.rank, good = excluded.good, time = excluded.time
"""


@dataclass(frozen=True)
class Judgement:
    """Whether ``judge`` found ``neighbour_id`` (shown at ``rank``) a good match for ``query_id``."""

    query_id: str
    neighbour_id: str
    judge: str
    level2: str
    rank: int
    good: bool
    time: float


class JudgementStore:
    """Judgements in the SQLite file ``path`` (created if missing; ":memory:" for a throwaway).

    Safe to share between threads (one connection behind a lock; every call is a few ms).
    """

    def __init__(self, path: str | Path) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        with self._lock, self._db:
            self._db.execute(_SCHEMA)

    def record(self, query_id: str, neighbour_id: str, *, judge: str, level2: str, rank: int, good: bool,
               at: float | None = None) -> Judgement:
        """Store (or replace) one mark and return it."""
        if rank < 1:
            raise ValueError(f"Expected rank >= 1 (1 = most similar). Received: rank={rank!r}.")
        row = Judgement(query_id, neighbour_id, judge, level2, int(rank), bool(good),
                        time.time() if at is None else at)
        with self._lock, self._db:
            self._db.execute(_UPSERT, (row.query_id, row.neighbour_id, row.judge, row.level2, row.rank,
                                       int(row.good), row.time))
        return row

    def for_query(self, query_id: str, judge: str | None = None) -> list[Judgement]:
        """The marks on ``query_id``'s neighbours (of one judge, or all), by rank."""
        sql = "SELECT query_id, neighbour_id, judge, level2, rank, good, time FROM judgements WHERE query_id = ?"
        args: tuple[str, ...] = (query_id,)
        if judge is not None:
            sql, args = sql + " AND judge = ?", (query_id, judge)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY rank, judge", args).fetchall()
        return [Judgement(q, n, j, l2, r, bool(g), t) for q, n, j, l2, r, g, t in rows]

    def summary(self, k: int | None = None) -> dict[str, dict[str, float | int]]:
        """Per level-2 category: ``queries`` judged, ``judged`` marks, ``good`` marks and
        ``precision_at_k`` = good / judged, counting only neighbours at rank <= ``k`` (all if None)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT level2, COUNT(DISTINCT query_id), COUNT(*), SUM(good) FROM judgements "
                "WHERE rank <= ? GROUP BY level2 ORDER BY level2", (k if k is not None else 2**62,)
            ).fetchall()
        return {level2: {"queries": queries, "judged": judged, "good": good, "precision_at_k": good / judged}
                for level2, queries, judged, good in rows}

    def close(self) -> None:
        with self._lock:
            self._db.close()
