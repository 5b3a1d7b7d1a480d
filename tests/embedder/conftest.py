"""Fixtures for embedder tests: a real Milvus standalone server (PyPI ``milvus``) on free ports."""

from __future__ import annotations

import pytest

from prodcat.stack.milvus import MilvusStandalone


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory) -> str:
    """URI of a real Milvus standalone server for the session; skipped if ``milvus`` is absent."""
    pytest.importorskip("milvus", reason="the PyPI 'milvus' package (standalone server) is not installed")
    standalone = MilvusStandalone(tmp_path_factory.mktemp("milvus-server"))
    try:
        yield standalone.start()
    finally:
        standalone.stop()
