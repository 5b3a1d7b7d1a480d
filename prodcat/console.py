"""What the CLI prints: the two consoles, tables that wrap instead of cutting, and ``--json`` output.

Rich cuts a cell that does not fit its column to ``ensem…`` by default; piped into a file or a
pager (stdout not a terminal, 80 columns) that loses data. Every table of the CLI is built by
:func:`table`, whose columns fold long words onto the next line instead. Commands that print a
table also take ``--json`` (:data:`JsonOpt`) and then print one JSON document on stdout instead.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["JsonOpt", "err", "out", "print_json", "print_json_line", "table"]

out = Console()
err = Console(stderr=True, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document (machine-readable) instead of a table.")]


def table(*columns: str, title: str | None = None) -> Table:
    """A table whose cells wrap, folding words longer than their column, so nothing is cut off."""
    result = Table(title=title)
    for column in columns:
        result.add_column(column, overflow="fold")
    return result


def print_json(data: Any) -> None:
    """``data`` as JSON on stdout (no colours, no wrapping); numpy numbers as numbers, paths and dates as text."""
    sys.stdout.write(json.dumps(data, indent=2, default=_plain, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def print_json_line(data: Any) -> None:
    """``data`` as one compact JSON line on stdout (JSONL output, e.g. `predict` reading stdin)."""
    sys.stdout.write(json.dumps(data, default=_plain, ensure_ascii=False) + "\n")


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalars and arrays (metrics, scores)
        return value.tolist()
    return str(value)
