"""`prodcat lag --watch`: refreshes until Ctrl-C, which is a normal way out (exit 0, no traceback)."""

from __future__ import annotations

import json

import pytest

from prodcat import cli
from streams.lag import PartitionLag


@pytest.fixture
def two_refreshes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The broker answers with a shrinking lag; the second sleep is the user's Ctrl-C."""
    calls: list[int] = []

    def rows(_settings, _group):
        calls.append(len(calls))
        return [PartitionLag("products.raw", 0, 100, 100 - 10 * len(calls), 10 * len(calls))]

    sleeps = iter([None, KeyboardInterrupt()])

    def sleep(_seconds: float) -> None:
        step = next(sleeps)
        if step is not None:
            raise step

    monkeypatch.setattr(cli, "_lag_rows", rows)
    monkeypatch.setattr(cli.time, "sleep", sleep)
    return calls


def test_watch_json_prints_one_line_per_refresh_until_ctrl_c(two_refreshes: list[int], capsys) -> None:
    assert cli.run(["lag", "--watch", "--json", "--interval", "0.5"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["total_lag"] for line in lines] == [10, 20]
    assert all(line["group"] == "prodcat-worker" and "time" in line for line in lines)


def test_watch_redraws_one_table_until_ctrl_c(two_refreshes: list[int], capsys) -> None:
    assert cli.run(["lag", "--watch"]) == 0
    shown = capsys.readouterr().out
    assert "group prodcat-worker" in shown and "total" in shown
    assert len(two_refreshes) == 2  # the first table, then one refresh before Ctrl-C


def test_watch_interval_is_checked() -> None:
    assert cli.run(["lag", "--watch", "--interval", "0"]) == 2
