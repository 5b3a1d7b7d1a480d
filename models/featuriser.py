"""Records -> named model inputs, driven by the feature config and saved with every model.

The :class:`Featuriser` turns cleaned :class:`~prodcat.record.ProductRecord` objects (and an
optional matrix of image vectors) into a dict of numpy arrays, one per model input:

=====================  ===============  ==============================================
feature key            dtype, shape     made from
=====================  ===============  ==============================================
``<text>_tfidf``       float32 (n, V)   ``text`` field, output ``tf_idf`` (word n-grams)
``<text>_tokens``      int32 (n, L)     ``text`` field, output ``int`` (0 = padding, 1 = OOV)
``<categorical>``      int32 (n, 1)     ``categorical`` field (0 = missing, 1 = OOV)
``<dense>``            float32 (n, D)   the image vectors (zeros where missing)
``<dense>_mask``       float32 (n, 1)   1 where the row has an image vector, else 0
=====================  ===============  ==============================================

:meth:`Featuriser.input_spec` describes these arrays (:class:`InputSpec`); members build their
Keras inputs from it. Vocabularies and IDF weights live in Keras ``TextVectorization`` and
``StringLookup`` layers adapted on the training records; :meth:`Featuriser.save` writes their
vocabularies and weights (and the config) so :meth:`Featuriser.load` rebuilds layers that give
byte-identical arrays at serving time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import keras
import numpy as np
import tensorflow as tf
from pydantic import BaseModel, ConfigDict

from models.config import CategoricalField, DenseField, FeatureConfig, TextField
from models.errors import ConfigError, DataError, NotFittedError
from prodcat.record import ProductRecord

__all__ = ["FeatureKind", "Featuriser", "InputSpec"]

FeatureKind = Literal["tf_idf", "tokens", "categorical", "dense", "mask"]

_FORMAT = "prodcat.featuriser/1"
_SPACES = re.compile(r"\s+")
# The punctuation Keras' "strip_punctuation" standardisation removes; used to tell in advance
# whether a corpus has any token at all (adapting on a token-less corpus fails inside Keras).
_PUNCTUATION = re.compile(r"""[!"#$%&()*+,\-./:;<=>?@\[\\\]^_`{|}~']""")
_OOV = "[UNK]"


class InputSpec(BaseModel):
    """One array the featuriser produces: its key, the config field it comes from and its shape."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    field: str
    kind: FeatureKind
    width: int
    vocabulary_size: int | None = None  # tokens, categorical: every id is < vocabulary_size
    embedding_dim: int | None = None  # categorical: the config's embedding_dim

    @property
    def dtype(self) -> str:
        return "int32" if self.kind in ("tokens", "categorical") else "float32"


# --------------------------------------------------------------------------------------------
# Per-field encoders (internal): each owns its Keras layers and can dump/restore their state.
# --------------------------------------------------------------------------------------------


def _casefold(text: str, max_chars: int) -> str:
    # Cut before folding: a 100k-character description costs no more than max_chars.
    # Case-folding happens here, not in Keras, because tf.strings.lower only lowers ASCII.
    return _SPACES.sub(" ", text[:max_chars]).strip().casefold()


class _TextEncoder:
    """A text field: TF-IDF and/or int-sequence TextVectorization layers."""

    def __init__(self, name: str, spec: TextField) -> None:
        self.name, self.spec = name, spec
        self.layers: dict[str, keras.layers.TextVectorization | None] = {}
        self._calls: dict[str, Any] = {}

    def _set(self, output: str, layer: keras.layers.TextVectorization | None) -> None:
        self.layers[output] = layer
        # a traced call: eager TextVectorization costs ~6x more on a stream batch of 256 (measured)
        self._calls[output] = None if layer is None else tf.function(layer, reduce_retracing=True)

    def _layer(self, output: str, state: dict[str, Any] | None) -> keras.layers.TextVectorization:
        kwargs: dict[str, Any] = {"max_tokens": self.spec.max_tokens, "standardize": "strip_punctuation"}
        if output == "tf_idf":
            kwargs.update(output_mode="tf_idf", ngrams=self.spec.ngrams if self.spec.ngrams > 1 else None)
        else:
            kwargs.update(output_mode="int", output_sequence_length=self.spec.sequence_length)
        if state is not None:
            kwargs["vocabulary"] = state["vocabulary"]
            if output == "tf_idf":
                kwargs["idf_weights"] = np.asarray(state["idf_weights"], dtype=np.float32)
        return keras.layers.TextVectorization(**kwargs)

    def prepare(self, values: Sequence[str]) -> np.ndarray:
        return np.array([_casefold(v, self.spec.max_chars) for v in values], dtype=object)

    def fit(self, texts: np.ndarray) -> None:
        has_tokens = any(_PUNCTUATION.sub("", t).strip() for t in texts)
        for output in self.spec.outputs:
            if not has_tokens:
                self._set(output, None)  # no text in training: the field outputs zeros
                continue
            layer = self._layer(output, None)
            layer.adapt(texts)
            self._set(output, layer)

    def key(self, output: str) -> str:
        return f"{self.name}_tfidf" if output == "tf_idf" else f"{self.name}_tokens"

    def specs(self) -> list[InputSpec]:
        out = []
        for output, layer in self.layers.items():
            size = layer.vocabulary_size() if layer is not None else (1 if output == "tf_idf" else 2)
            if output == "tf_idf":
                out.append(InputSpec(name=self.key(output), field=self.name, kind="tf_idf", width=size))
            else:
                out.append(InputSpec(name=self.key(output), field=self.name, kind="tokens",
                                     width=self.spec.sequence_length, vocabulary_size=size))
        return out

    def transform(self, texts: np.ndarray) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for spec, (output, layer) in zip(self.specs(), self.layers.items()):
            if layer is None or len(texts) == 0:
                out[spec.name] = np.zeros((len(texts), spec.width), dtype=spec.dtype)
            else:
                out[spec.name] = np.asarray(self._calls[output](texts)).astype(spec.dtype, copy=False)
        return out

    def vocabulary(self, output: str) -> list[str]:
        layer = self.layers[output]
        if layer is None:
            return [_OOV] if output == "tf_idf" else ["", _OOV]
        return [str(token) for token in layer.get_vocabulary()]

    def state(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for output, layer in self.layers.items():
            if layer is None:
                out[output] = None
                continue
            entry: dict[str, Any] = {"vocabulary": self.vocabulary(output)}
            if output == "tf_idf":
                store: dict[str, np.ndarray] = {}
                layer.save_own_variables(store)  # the public hook Keras' own saving uses
                # float32 -> Python float is exact, and JSON round-trips doubles exactly.
                entry["idf_weights"] = [float(w) for w in store["idf_weights"]]
            out[output] = entry
        return out

    def restore(self, state: dict[str, Any]) -> None:
        for output in self.spec.outputs:
            entry = state.get(output)
            self._set(output, None if entry is None else self._layer(output, entry))


class _CategoricalEncoder:
    """A categorical field: a StringLookup over the top-k values (0 = missing, 1 = OOV)."""

    def __init__(self, name: str, spec: CategoricalField) -> None:
        self.name, self.spec = name, spec
        self.layer: keras.layers.StringLookup | None = None

    def _layer(self, vocabulary: list[str] | None) -> keras.layers.StringLookup:
        # mask_token "" gives a missing value id 0, so it embeds apart from unknown values (1).
        return keras.layers.StringLookup(max_tokens=self.spec.top_k + 2, mask_token="", num_oov_indices=1,
                                         oov_token=_OOV, vocabulary=vocabulary)

    def prepare(self, values: Sequence[str]) -> np.ndarray:
        return np.array([_casefold(v, self.spec.max_chars) for v in values], dtype=object)

    def fit(self, values: np.ndarray) -> None:
        if not any(values):
            self.layer = None
            return
        self.layer = self._layer(None)
        self.layer.adapt(values)

    def specs(self) -> list[InputSpec]:
        size = self.layer.vocabulary_size() if self.layer is not None else 2
        return [InputSpec(name=self.name, field=self.name, kind="categorical", width=1, vocabulary_size=size,
                          embedding_dim=self.spec.embedding_dim)]

    def transform(self, values: np.ndarray) -> dict[str, np.ndarray]:
        if self.layer is None or len(values) == 0:
            return {self.name: np.zeros((len(values), 1), dtype=np.int32)}
        return {self.name: np.asarray(self.layer(values)).astype(np.int32).reshape(-1, 1)}

    def vocabulary(self) -> list[str]:
        return ["", _OOV] if self.layer is None else [str(v) for v in self.layer.get_vocabulary()]

    def state(self) -> dict[str, Any] | None:
        return None if self.layer is None else {"vocabulary": self.vocabulary()}

    def restore(self, state: dict[str, Any] | None) -> None:
        self.layer = None if state is None else self._layer(state["vocabulary"])


class _DenseEncoder:
    """The dense (image) field: vectors given beside the records; missing rows become zeros."""

    def __init__(self, name: str, spec: DenseField) -> None:
        self.name, self.spec = name, spec

    def specs(self) -> list[InputSpec]:
        return [InputSpec(name=self.name, field=self.name, kind="dense", width=self.spec.dim),
                InputSpec(name=f"{self.name}_mask", field=self.name, kind="mask", width=1)]

    def transform(self, vectors: np.ndarray | None, n: int) -> dict[str, np.ndarray]:
        dim = self.spec.dim
        if vectors is None:
            return {self.name: np.zeros((n, dim), np.float32), f"{self.name}_mask": np.zeros((n, 1), np.float32)}
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (n, dim):
            raise DataError(
                f"expected image_vectors of shape ({n}, {dim}) (one row per record, dim from fields."
                f"{self.name}.dim), received {vectors.shape}; pass a row of NaN for a record without an image"
            )
        # A row of NaN (or of zeros: an embedder's "no image") means the record has no image.
        present = np.isfinite(vectors).all(axis=1) & (vectors != 0).any(axis=1)
        out = np.where(present[:, None], vectors, 0.0).astype(np.float32)
        return {self.name: out, f"{self.name}_mask": present.astype(np.float32).reshape(-1, 1)}


# --------------------------------------------------------------------------------------------
# The featuriser
# --------------------------------------------------------------------------------------------


def _source_text(record: ProductRecord, source: str) -> str:
    if source == "category_path":
        return " > ".join(record.category_path)
    value = getattr(record, source)
    return value if isinstance(value, str) else ""


class Featuriser:
    """Turns product records into the named arrays every member reads (see the module docstring).

    >>> featuriser = Featuriser(FeatureConfig.from_yaml('''
    ... fields: {title: {kind: text, max_tokens: 50, sequence_length: 4}, image: {kind: dense, dim: 2}}
    ... '''))
    >>> records = [ProductRecord(id="1", title="Red shirt"), ProductRecord(id="2", title="Blue shirt")]
    >>> featuriser = featuriser.fit(records)
    >>> x = featuriser.transform([ProductRecord(id="3", title="Shirt!")])
    >>> sorted(x), x["title_tokens"].tolist()
    (['image', 'image_mask', 'title_tfidf', 'title_tokens'], [[2, 0, 0, 0]])
    """

    def __init__(self, config: FeatureConfig | None = None) -> None:
        self.config = config if config is not None else FeatureConfig.default()
        if not isinstance(self.config, FeatureConfig):
            raise ConfigError(
                f"expected a FeatureConfig (FeatureConfig.load(path)), received {type(self.config).__name__}"
            )
        self._text: dict[str, _TextEncoder] = {}
        self._categorical: dict[str, _CategoricalEncoder] = {}
        self._dense: _DenseEncoder | None = None
        for name in self.config.active_fields():
            spec = self.config.fields[name]
            if isinstance(spec, TextField):
                self._text[name] = _TextEncoder(name, spec)
            elif isinstance(spec, CategoricalField):
                self._categorical[name] = _CategoricalEncoder(name, spec)
            elif isinstance(spec, DenseField):
                self._dense = _DenseEncoder(name, spec)
        self.fitted = False

    # --- fitting and transforming ------------------------------------------------------------

    def _columns(self, records: Sequence[ProductRecord]) -> dict[str, np.ndarray]:
        for i, record in enumerate(records):
            if not isinstance(record, ProductRecord):
                raise DataError(
                    f"expected ProductRecord objects (see prodcat.record.parse_record), received "
                    f"{type(record).__name__} at position {i}"
                )
        out: dict[str, np.ndarray] = {}
        encoders: dict[str, _TextEncoder | _CategoricalEncoder] = {**self._text, **self._categorical}
        for name, encoder in encoders.items():
            source = self.config.source_of(name)
            out[name] = encoder.prepare([_source_text(r, source) for r in records])
        return out

    def fit(self, records: Iterable[ProductRecord]) -> Featuriser:
        """Learn vocabularies (and IDF weights) from training records; returns ``self``."""
        records = list(records)
        if not records:
            raise DataError("expected at least one training record, received none")
        columns = self._columns(records)
        for name, encoder in {**self._text, **self._categorical}.items():
            encoder.fit(columns[name])
        self.fitted = True
        return self

    def transform(self, records: Sequence[ProductRecord],
                  image_vectors: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The named input arrays for ``records``; ``image_vectors`` is (n, dim) with NaN rows for no image."""
        self._check_fitted()
        records = list(records)
        columns = self._columns(records)
        out: dict[str, np.ndarray] = {}
        for name, encoder in {**self._text, **self._categorical}.items():
            out.update(encoder.transform(columns[name]))
        if self._dense is not None:
            out.update(self._dense.transform(image_vectors, len(records)))
        elif image_vectors is not None:
            raise DataError("received image_vectors but the feature config has no dense field; add "
                            "'image: {kind: dense, dim: ...}' under fields or pass image_vectors=None")
        return out

    # --- what the arrays are -----------------------------------------------------------------

    def input_spec(self, fields: Collection[str] | None = None) -> dict[str, InputSpec]:
        """Spec of every array :meth:`transform` returns, or of those made from ``fields`` (dropped ones skipped)."""
        self._check_fitted()
        if fields is not None:
            unknown = [f for f in fields if f not in self.config.fields]
            if unknown:
                raise ConfigError(f"unknown field(s) {unknown}; expected names from fields: "
                                  f"{sorted(self.config.fields)}")
        specs: list[InputSpec] = []
        for encoder in (*self._text.values(), *self._categorical.values(), self._dense):
            if encoder is not None and (fields is None or encoder.name in fields):
                specs.extend(encoder.specs())
        return {spec.name: spec for spec in specs}

    def vocabulary(self, feature: str) -> list[str]:
        """Tokens (or values) by column/id of a ``_tfidf``, ``_tokens`` or categorical feature."""
        self._check_fitted()
        for encoder in self._text.values():
            for output in encoder.layers:
                if encoder.key(output) == feature:
                    return encoder.vocabulary(output)
        if feature in self._categorical:
            return self._categorical[feature].vocabulary()
        known = [s.name for s in self.input_spec().values() if s.kind in ("tf_idf", "tokens", "categorical")]
        raise KeyError(f"no vocabulary for feature {feature!r}; expected one of {known}")

    # --- persistence -------------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments: ``Featuriser.from_config(f.get_config())`` is an unfitted copy."""
        return {"config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Featuriser:
        return cls(FeatureConfig.from_dict(config["config"], source="featuriser config"))

    def save(self, directory: str | Path) -> None:
        """Write ``features.yaml`` and ``featuriser.json`` (vocabularies, IDF weights) into ``directory``."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "features.yaml").write_text(self.config.to_yaml(), encoding="utf-8")
        state = {
            "format": _FORMAT,
            "text": {name: enc.state() for name, enc in self._text.items()},
            "categorical": {name: enc.state() for name, enc in self._categorical.items()},
        }
        (directory / "featuriser.json").write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path) -> Featuriser:
        """Rebuild a fitted featuriser from :meth:`save` output."""
        directory = Path(directory)
        config = FeatureConfig.load(directory / "features.yaml")
        try:
            state = json.loads((directory / "featuriser.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read {directory / 'featuriser.json'}: {exc}; pass a directory written by "
                            "Featuriser.save") from exc
        if state.get("format") != _FORMAT:
            raise DataError(f"expected featuriser format {_FORMAT!r}, received {state.get('format')!r}")
        featuriser = cls(config)
        try:
            for kind, encoders in (("text", featuriser._text), ("categorical", featuriser._categorical)):
                for name, encoder in encoders.items():
                    encoder.restore(state[kind][name])
        except KeyError as exc:
            raise DataError(f"{directory / 'featuriser.json'} has no state for field {exc}; it does not match "
                            "its features.yaml") from None
        featuriser.fitted = True
        return featuriser

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise NotFittedError("this Featuriser is not fitted; call fit(records) or Featuriser.load(directory)")
