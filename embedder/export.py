"""Image vectors written to a file for use outside prodcat (`prodcat embed --export FILE`).

Two formats, chosen by the file's extension:

- ``.npz`` (numpy): arrays ``ids`` (str, n), ``vectors`` (float32, n x dim, L2-normalised as
  indexed), ``level1`` and ``level2`` (str, n) and ``model_version`` (str, scalar); read with
  ``np.load(path)``.
- ``.jsonl``: one line per product, ``{"id", "vector": [floats], "level1", "level2", "model_version"}``.

A product id seen twice keeps its last vector, as the index does. The file is written to a
temporary name beside it and renamed, so a failed run never leaves half a file.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import numpy as np

from embedder.index import ImageVector
from prodcat.errors import ConfigError, DataError

__all__ = ["ExportFormat", "export_format", "write_vectors"]

ExportFormat = Literal["npz", "jsonl"]
_SUFFIXES: dict[str, ExportFormat] = {".npz": "npz", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def export_format(path: Path) -> ExportFormat:
    """The format a file name asks for; checked before any embedding so a typo costs nothing."""
    chosen = _SUFFIXES.get(path.suffix.lower())
    if chosen is None:
        raise ConfigError(f"--export: expected a file name ending in .npz (numpy arrays) or .jsonl (one JSON line "
                          f"per product), received {str(path)!r}")
    if path.is_dir():
        raise ConfigError(f"--export: {path} is a folder; pass a file name ending in .npz or .jsonl")
    return chosen


def write_vectors(path: Path, vectors: Iterable[ImageVector]) -> int:
    """Write ``vectors`` to ``path`` in the format its extension names; the number of products written."""
    chosen = export_format(path)
    by_id = {v.id: v for v in vectors}  # the last vector of a repeated id wins, as in the index
    rows = list(by_id.values())
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if chosen == "npz":
            dim = rows[0].vector.shape[0] if rows else 0
            np.savez(tmp, ids=np.array([r.id for r in rows], dtype=str),
                     vectors=np.array([r.vector for r in rows], dtype=np.float32).reshape(len(rows), dim),
                     level1=np.array([r.level1 for r in rows], dtype=str),
                     level2=np.array([r.level2 for r in rows], dtype=str),
                     model_version=np.array(rows[0].model_version if rows else ""))
        else:
            with tmp.open("w", encoding="utf-8") as fh:
                for r in rows:
                    fh.write(json.dumps({"id": r.id, "vector": [float(x) for x in r.vector], "level1": r.level1,
                                         "level2": r.level2, "model_version": r.model_version},
                                        ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):  # nothing to clean up when the folder itself could not be made
            tmp.unlink()
        raise DataError(f"cannot write the vectors to {path} ({exc.strerror}); pass a writable --export path") \
            from None
    return len(rows)
