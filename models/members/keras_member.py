"""The training, prediction and persistence every Keras member shares; subclasses only build a network.

Training: Adam, binary cross-entropy per (row, class) entry averaged over rows and classes,
with each entry weighted by ``sample_weight`` (per row or per entry) times the class's positive
weight when the entry is a positive; early stopping on the validation loss restores the best
epoch; seeds are set from ``seed`` before the network is built, so a fit is repeatable.
Fine-tuning (``fit(..., warm_start_from=previous)``) builds the network the same way, then copies
the previous member's weights into it before compiling: the optimiser (Adam) starts fresh, the
prior bias below is not applied (the previous output bias is kept), and ``epochs`` epochs follow.

With ``prior_bias`` the output bias starts at each class's (weighted) log-odds in the training
labels, not at 0: with ~200 sigmoid outputs that are mostly rare, a zero bias starts every output
at 0.5, and the first epochs of a small fixed budget go into pushing ~200 biases down instead of
learning words (issue 13.4). On by default for the embedding members (GRU, TextCNN), off for the
others, whose numbers it was not needed for (logreg on Flipkart true labels: 0.942 -> 0.943).
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, cast

import keras
import numpy as np
import tensorflow as tf

from models.errors import ConfigError, DataError, NotFittedError
from models.featuriser import FeatureKind, InputSpec
from models.members.base import Member, Validation

__all__ = ["EntryBCE", "KerasMember", "prior_logits"]

_FORMAT = "prodcat.member/1"
_WEIGHTS = "model.weights.h5"
_PREDICT_BATCH = 1024


class EntryBCE(keras.losses.Loss):
    """Binary cross-entropy per entry, so an (n, C) ``sample_weight`` weighs every (row, class).

    Keras reduces the weighted (n, C) losses with "sum_over_batch_size": the mean over rows and
    classes, i.e. the class-averaged loss the members are specified with.
    """

    def __init__(self, name: str = "entry_bce", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return keras.ops.binary_crossentropy(y_true, y_pred)


def entry_weights(y: np.ndarray, sample_weight: np.ndarray | None,
                  class_weight_vector: np.ndarray | None) -> np.ndarray:
    """(n, C) float32: ``sample_weight`` (row or entry) x the class weight on positive entries."""
    n, n_classes = y.shape
    weights = np.ones((n, n_classes), dtype=np.float32)
    if sample_weight is not None:
        sw = np.asarray(sample_weight, dtype=np.float32)
        if sw.shape not in ((n,), (n, n_classes)):
            raise DataError(f"expected sample_weight of shape ({n},) or ({n}, {n_classes}), received {sw.shape}")
        weights *= sw[:, None] if sw.ndim == 1 else sw
    if class_weight_vector is not None:
        cw = np.asarray(class_weight_vector, dtype=np.float32)
        if cw.shape != (n_classes,):
            raise DataError(f"expected class_weight_vector of shape ({n_classes},), received {cw.shape}; "
                            "one weight per category column")
        weights *= np.where(y > 0.5, cw[None, :], 1.0)
    return weights


def prior_logits(y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(C,) float32 log-odds of each class under the entry ``weights``: the bias of the best constant predictor.

    Half a positive and half a negative are added per class, so a class without positives (or
    without negatives) gets a large finite bias, not an infinite one.
    """
    positive = (weights * y).sum(axis=0) + 0.5
    negative = (weights * (1.0 - y)).sum(axis=0) + 0.5
    return np.log(positive / negative).astype(np.float32)


class KerasMember(Member):
    """A member whose model is a Keras network over the featuriser's arrays.

    Subclasses set ``name`` and ``consumes`` (the :data:`FeatureKind` values they read) and
    implement :meth:`_network`; they may override :meth:`_available` to abstain on rows.
    ``bias_layer`` names the Dense layer whose bias is the output logits' bias (``prior_bias``).

    Parameters common to all Keras members: ``inputs`` (from ``Featuriser.input_spec``; kinds
    the member does not consume are dropped), ``epochs``, ``batch_size``, ``learning_rate``,
    ``patience`` (early-stopping epochs without improvement), ``prior_bias`` (start the output
    bias at the classes' log-odds), ``seed`` and ``verbose``.
    """

    consumes: ClassVar[frozenset[FeatureKind]]
    bias_layer: ClassVar[str] = "probabilities"

    def __init__(self, inputs: Mapping[str, InputSpec | Mapping[str, Any]], *, epochs: int = 20,
                 batch_size: int = 128, learning_rate: float = 1e-3, patience: int = 2, prior_bias: bool = False,
                 seed: int = 0, verbose: int = 0) -> None:
        specs = {name: spec if isinstance(spec, InputSpec) else InputSpec.model_validate(spec)
                 for name, spec in inputs.items()}
        self.inputs: dict[str, InputSpec] = {n: s for n, s in sorted(specs.items()) if s.kind in self.consumes}
        if not self.inputs:
            raise ConfigError(
                f"member {self.name!r} reads features of kind {sorted(self.consumes)}, received only "
                f"{sorted({s.kind for s in specs.values()})}; list a suitable field for it under "
                f"members.{self.name}.fields in features.yaml"
            )
        if epochs < 1 or batch_size < 1 or learning_rate <= 0 or patience < 0:
            raise ConfigError(f"expected epochs >= 1, batch_size >= 1, learning_rate > 0 and patience >= 0, "
                              f"received epochs={epochs}, batch_size={batch_size}, "
                              f"learning_rate={learning_rate}, patience={patience}")
        self.epochs, self.batch_size, self.learning_rate = epochs, batch_size, learning_rate
        self.patience, self.prior_bias, self.seed, self.verbose = patience, bool(prior_bias), seed, verbose
        self._model: keras.Model | None = None
        self._encoder: keras.Model | None = None
        self._calls: dict[int, Any] = {}
        self.n_classes_: int | None = None
        self.history_: dict[str, list[float]] = {}

    def get_config(self) -> dict[str, Any]:
        return {"inputs": {name: spec.model_dump() for name, spec in self.inputs.items()},
                "epochs": self.epochs, "batch_size": self.batch_size, "learning_rate": self.learning_rate,
                "patience": self.patience, "prior_bias": self.prior_bias, "seed": self.seed, "verbose": self.verbose}

    def __repr__(self) -> str:
        state = f"{self.n_classes_} classes" if self.fitted else "unfitted"
        return f"{type(self).__name__}({len(self.inputs)} inputs, {state})"

    @property
    def fitted(self) -> bool:
        return self._model is not None

    # --- what subclasses provide -------------------------------------------------------------

    @abstractmethod
    def _network(self, inputs: dict[str, Any], n_classes: int) -> tuple[Any, Any]:
        """(embedding, probabilities) tensors built on the Keras ``inputs`` (one per ``self.inputs``)."""

    def _available(self, features: dict[str, np.ndarray], n: int) -> np.ndarray:
        """Boolean (n,): rows the member has input for; the rest are abstentions (NaN)."""
        return np.ones(n, dtype=bool)

    # --- shared machinery --------------------------------------------------------------------

    def _build(self, n_classes: int) -> tuple[keras.Model, keras.Model]:
        inputs = {name: keras.Input(shape=(spec.width,), dtype=spec.dtype, name=name)
                  for name, spec in self.inputs.items()}
        embedding, probabilities = self._network(inputs, n_classes)
        return keras.Model(inputs, probabilities, name=self.name), keras.Model(inputs, embedding)

    def _select(self, features: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int]:
        if not isinstance(features, Mapping):
            raise DataError(f"expected a dict of feature arrays (Featuriser.transform), received "
                            f"{type(features).__name__}")
        missing = [name for name in self.inputs if name not in features]
        if missing:
            raise DataError(f"member {self.name!r} expected feature(s) {missing}, received {sorted(features)}; "
                            "transform the records with the featuriser the member was built from")
        out: dict[str, np.ndarray] = {}
        for name, spec in self.inputs.items():
            array = np.asarray(features[name], dtype=spec.dtype)
            if array.ndim != 2 or array.shape[1] != spec.width:
                raise DataError(f"feature {name!r}: expected shape (n, {spec.width}), received {array.shape}; "
                                "the featuriser differs from the one the member was built from")
            out[name] = array
        sizes = {len(a) for a in out.values()}
        if len(sizes) != 1:
            raise DataError(f"expected every feature array to have the same number of rows, received {sorted(sizes)}")
        return out, sizes.pop()

    @staticmethod
    def _rows(x: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
        return {name: array[rows] for name, array in x.items()}

    def _labels(self, y: np.ndarray, n: int) -> np.ndarray:
        y = np.asarray(y, dtype=np.float32)
        if y.ndim != 2 or len(y) != n or y.shape[1] < 1:
            raise DataError(f"expected labels of shape ({n}, C) matching the features, received {y.shape}; "
                            "build them with models.labels.label_matrix")
        return y

    def fit(self, features: dict[str, np.ndarray], y: np.ndarray, *, sample_weight: np.ndarray | None = None,
            class_weight_vector: np.ndarray | None = None, validation: Validation | None = None,
            warm_start_from: Member | None = None) -> KerasMember:
        x, n = self._select(features)
        y = self._labels(y, n)
        weights = entry_weights(y, sample_weight, class_weight_vector)
        rows = self._available(features, n)
        if not rows.any():
            raise DataError(f"member {self.name!r} has no training row with input (e.g. no image vector); "
                            "pass features with at least one usable row")
        validation_data = None
        if validation is not None:
            v_features, v_y, *rest = validation
            vx, vn = self._select(v_features)
            v_y = self._labels(v_y, vn)
            if v_y.shape[1] != y.shape[1]:
                raise DataError(f"expected validation labels with {y.shape[1]} columns, received {v_y.shape[1]}")
            vw = entry_weights(v_y, rest[0] if rest else None, class_weight_vector)
            v_rows = self._available(v_features, vn)
            if v_rows.any():
                validation_data = (self._rows(vx, v_rows), v_y[v_rows], vw[v_rows])
        keras.utils.set_random_seed(self.seed)  # initial weights, dropout and shuffling repeat
        model, encoder = self._build(y.shape[1])
        if warm_start_from is not None:  # fine-tuning: the previous weights (output bias included), a fresh Adam
            model.set_weights(self._warm_weights(warm_start_from, model, y.shape[1]))
        elif self.prior_bias:
            model.get_layer(self.bias_layer).bias.assign(prior_logits(y[rows], weights[rows]))
        model.compile(optimizer=keras.optimizers.Adam(self.learning_rate), loss=EntryBCE())
        callbacks = []
        if validation_data is not None:
            callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=self.patience,
                                                           restore_best_weights=True))
        history = model.fit(self._rows(x, rows), y[rows], sample_weight=weights[rows], batch_size=self.batch_size,
                            epochs=self.epochs, validation_data=validation_data, shuffle=True,
                            callbacks=callbacks, verbose=self.verbose)
        self._model, self._encoder, self.n_classes_ = model, encoder, y.shape[1]
        self._calls = {}
        self.history_ = {key: [float(v) for v in values] for key, values in history.history.items()}
        return self

    def _warm_weights(self, source: Member, model: keras.Model, n_classes: int) -> list[np.ndarray]:
        """``source``'s weights, checked to fit ``model`` (the network :meth:`fit` just built)."""
        if not isinstance(source, KerasMember) or source.name != self.name:
            raise ConfigError(f"member {self.name!r} can start only from a fitted {self.name!r} member; received "
                              f"{type(source).__name__} {getattr(source, 'name', '?')!r}; pass the previous "
                              f"classifier's members[{self.name!r}]")
        if source._model is None:
            raise NotFittedError(f"member {self.name!r}: the member to start from is not fitted; pass a fitted "
                                 "(or loaded) member, or warm_start_from=None to train from scratch")
        if source.n_classes_ != n_classes or source.inputs != self.inputs:
            raise DataError(f"member {self.name!r}: expected a member to start from with {n_classes} classes and "
                            f"inputs {sorted(self.inputs)} of widths {[s.width for s in self.inputs.values()]}; "
                            f"received {source.n_classes_} classes and inputs {sorted(source.inputs)} of widths "
                            f"{[s.width for s in source.inputs.values()]}; fine-tune with the previous model's "
                            "featuriser and taxonomy, or train from scratch")
        weights = source._model.get_weights()
        expected = [tuple(w.shape) for w in model.get_weights()]
        received = [tuple(w.shape) for w in weights]
        if expected != received:
            raise DataError(f"member {self.name!r}: expected weights of shapes {expected}, received {received}; the "
                            "member's hyper-parameters differ from the previous model's: use the same ones, or "
                            "train from scratch")
        return [np.array(w) for w in weights]

    def _run(self, model: keras.Model | None, features: dict[str, np.ndarray]) -> np.ndarray:
        if model is None:
            raise NotFittedError(f"member {self.name!r} is not fitted; call fit(features, y) or load(directory)")
        x, n = self._select(features)
        # model.predict builds a data pipeline per call: ~25x slower than a traced call on a stream
        # batch of 256 (measured). reduce_retracing: one trace serves every batch size.
        call = self._calls.get(id(model))
        if call is None:
            call = self._calls[id(model)] = tf.function(lambda d: model(d, training=False), reduce_retracing=True)
        parts = [np.asarray(call({k: v[i:i + _PREDICT_BATCH] for k, v in x.items()}), dtype=np.float32)
                 for i in range(0, n, _PREDICT_BATCH)]
        out = np.concatenate(parts) if parts else np.zeros((0, model.outputs[0].shape[-1]), np.float32)
        rows = self._available(features, n)
        if not rows.all():
            out[~rows] = np.nan
        return out

    def predict_proba(self, features: dict[str, np.ndarray]) -> np.ndarray:
        return self._run(self._model, features)

    def embed(self, features: dict[str, np.ndarray]) -> np.ndarray:
        return self._run(self._encoder, features)

    # --- persistence -------------------------------------------------------------------------

    def save(self, directory: str | Path) -> None:
        if self._model is None:
            raise NotFittedError(f"member {self.name!r} is not fitted; there is nothing to save")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {"format": _FORMAT, "name": self.name, "config": self.get_config(), "n_classes": self.n_classes_,
                 "history": self.history_}
        (directory / "member.json").write_text(json.dumps(state, indent=1), encoding="utf-8")
        self._model.save_weights(directory / _WEIGHTS)

    @classmethod
    def load(cls, directory: str | Path) -> KerasMember:
        state = read_state(directory)
        if state["name"] != cls.name:
            raise DataError(f"{directory} holds a {state['name']!r} member, not {cls.name!r}; load it with "
                            "models.members.load_member(directory)")
        member = cast(KerasMember, cls.from_config(state["config"]))
        member._model, member._encoder = member._build(int(state["n_classes"]))
        member._model.load_weights(Path(directory) / _WEIGHTS)
        member.n_classes_ = int(state["n_classes"])
        member.history_ = state.get("history", {})
        return member


def read_state(directory: str | Path) -> dict[str, Any]:
    """The ``member.json`` of a saved member (its name, config and number of classes)."""
    path = Path(directory) / "member.json"
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}; pass a directory written by Member.save") from exc
    if not isinstance(state, dict) or state.get("format") != _FORMAT:
        received = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise DataError(f"expected member format {_FORMAT!r} in {path}, received {received!r}")
    return state
