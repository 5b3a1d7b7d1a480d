"""`prodcat embed --export`: vectors and ids in .npz or .jsonl, written whole or not at all."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embedder.export import export_format, write_vectors
from embedder.index import ImageVector
from prodcat.errors import ConfigError, DataError


def _vectors() -> list[ImageVector]:
    rows = np.eye(3, 4, dtype=np.float32)
    return [ImageVector("a", rows[0], "Clothing", "Shirts", "v1"), ImageVector("b", rows[1], "Home", "Lamps", "v1"),
            ImageVector("a", rows[2], "Clothing", "Jeans", "v1")]  # 'a' again: the last one wins, as in the index


def test_npz_holds_ids_vectors_and_categories(tmp_path):
    assert write_vectors(tmp_path / "out" / "v.npz", _vectors()) == 2  # the folder is created
    saved = np.load(tmp_path / "out" / "v.npz")
    assert saved["ids"].tolist() == ["a", "b"] and saved["vectors"].dtype == np.float32
    assert saved["vectors"].tolist() == [[0, 0, 1, 0], [0, 1, 0, 0]]
    assert saved["level2"].tolist() == ["Jeans", "Lamps"] and str(saved["model_version"]) == "v1"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["v.npz"]  # no temporary file left


def test_jsonl_is_one_line_per_product(tmp_path):
    write_vectors(tmp_path / "v.jsonl", _vectors())
    lines = [json.loads(line) for line in (tmp_path / "v.jsonl").read_text().splitlines()]
    assert lines == [{"id": "a", "vector": [0.0, 0.0, 1.0, 0.0], "level1": "Clothing", "level2": "Jeans",
                      "model_version": "v1"},
                     {"id": "b", "vector": [0.0, 1.0, 0.0, 0.0], "level1": "Home", "level2": "Lamps",
                      "model_version": "v1"}]


def test_bad_names_and_unwritable_paths(tmp_path):
    with pytest.raises(ConfigError, match=r"--export: expected a file name ending in .npz .* received '.*v.csv'"):
        export_format(tmp_path / "v.csv")
    (tmp_path / "dir.npz").mkdir()
    with pytest.raises(ConfigError, match="is a folder"):
        export_format(tmp_path / "dir.npz")
    (tmp_path / "file").write_text("")
    with pytest.raises(DataError, match="cannot write the vectors to .*; pass a writable --export path"):
        write_vectors(tmp_path / "file" / "v.npz", _vectors())
