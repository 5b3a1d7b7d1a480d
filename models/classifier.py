"""The trained model the stream runs: featuriser -> members -> combiner -> thresholds, as a Categoriser.

Build one with :func:`models.training.train_ensemble`; save and load it with
:mod:`models.artifact` (``save_classifier`` / ``load_classifier``).

Per product, :meth:`Classifier.categorise_batch` returns a
:class:`~prodcat.categoriser.Categorisation`:

* ``categories``: ``Thresholds.decide`` on the ensemble probabilities, closed under ancestors;
* ``scores``: the ensemble probability of every decided category plus the ``n_extra_scores``
  most probable others (what a labeller looks at next);
* ``explanation``: per decided category, the input tokens with the largest contribution in the
  logistic-regression member (``"title:shorts"``, ``"brand=nike"``), when that member is present;
* ``uncertainty``: threshold uncertainty (1 = a probability on its threshold), at least
  ``1 - max p/t`` when nothing is decided (:func:`models.signals.product_signals`);
* ``disagreement``: vote entropy of the members' own decisions (:func:`models.signals.disagreement`).

A record that breaks featurisation or a member raises: there is no "no category" fallback. The
stream's error policy (``streams/policy.py``) finds the records a failure belongs to and
dead-letters them with stage ``model``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from models.ensemble import Ensemble
from models.explain import top_contributions_batch, wide_inputs, wide_matrix
from models.featuriser import Featuriser
from models.members.base import Member
from models.signals import product_signals
from models.thresholds import Thresholds
from prodcat.categoriser import Categorisation, Categoriser
from prodcat.errors import DataError
from prodcat.record import ProductRecord
from prodcat.taxonomy import Taxonomy

__all__ = ["Classifier"]

log = logging.getLogger(__name__)

_NOT_EVIDENCE = ("[UNK]", "<missing>")
ImageInput = Mapping[str, np.ndarray] | np.ndarray | None


class Classifier(Categoriser):
    """A trained ensemble behind the :class:`~prodcat.categoriser.Categoriser` interface.

    ``members`` is ordered (the combiner's member order); ``metrics`` and ``training`` are
    plain JSON kept with the artifact (validation metrics, training settings).
    """

    def __init__(self, *, featuriser: Featuriser, members: Mapping[str, Member], combiner: Ensemble,
                 thresholds: Thresholds, taxonomy: Taxonomy, version: str, metrics: dict[str, Any] | None = None,
                 training: dict[str, Any] | None = None, explain_tokens: int = 3, n_extra_scores: int = 3) -> None:
        if not members:
            raise DataError("Expected at least one trained member. Received: none")
        if combiner.n_members_ is not None and combiner.n_members_ != len(members):
            raise DataError(f"Expected a combiner fitted on {len(members)} members. Received one fitted on "
                            f"{combiner.n_members_}")
        self.featuriser = featuriser
        self.members: dict[str, Member] = dict(members)
        self.combiner = combiner
        self.thresholds = thresholds
        self.taxonomy = taxonomy
        self.version = version
        self.metrics: dict[str, Any] = metrics or {}
        self.training: dict[str, Any] = training or {}
        self.explain_tokens = explain_tokens
        self.n_extra_scores = n_extra_scores
        self.oof_: Any = None  # training's out-of-fold predictions when asked for (not saved)
        # (logreg coefficients, vocabularies, their joined weights, readable column labels, non-evidence columns)
        self._explainer: tuple[dict[str, np.ndarray], dict[str, list[str]], np.ndarray, list[str], list[int]] | None = None

    def __repr__(self) -> str:
        return (f"Classifier({self.version}, members={list(self.members)}, combiner={self.combiner.kind}, "
                f"{len(self.taxonomy)} categories)")

    # --- features ---------------------------------------------------------------------------

    @property
    def image_dim(self) -> int | None:
        for spec in self.featuriser.config.fields.values():
            if spec.kind == "dense":
                return int(spec.dim)
        return None

    def _image_matrix(self, records: Sequence[ProductRecord], image_vectors: ImageInput) -> np.ndarray | None:
        """(n, dim) with NaN rows for products without (a usable) vector; None when the model reads no image."""
        dim = self.image_dim
        if dim is None or image_vectors is None:
            return None
        if isinstance(image_vectors, np.ndarray):
            return image_vectors
        out = np.full((len(records), dim), np.nan, dtype=np.float32)
        for i, record in enumerate(records):
            vector = image_vectors.get(str(record.id))
            if vector is None:
                continue
            vector = np.asarray(vector, dtype=np.float32).ravel()
            if vector.shape == (dim,):
                out[i] = vector
            else:
                log.warning("image vector of %r has %d values, expected %d; ignoring it", record.id, vector.size, dim)
        return out

    def _transform(self, records: Sequence[ProductRecord], images: np.ndarray | None) -> dict[str, np.ndarray]:
        """Featurise (a failure raises: the stream's error policy finds the record it belongs to)."""
        return self.featuriser.transform(records, images)

    def features(self, records: Sequence[ProductRecord], image_vectors: ImageInput = None) -> dict[str, np.ndarray]:
        """The featuriser's arrays for ``records`` (image vectors by product id or as an n x dim matrix)."""
        records = list(records)
        return self._transform(records, self._image_matrix(records, image_vectors))

    # --- predicting ---------------------------------------------------------------------------

    def _member_probs(self, x: dict[str, np.ndarray]) -> np.ndarray:
        return np.stack([member.predict_proba(x) for member in self.members.values()]).astype(np.float32)

    def predict_proba(self, records: Sequence[ProductRecord],
                      image_vectors: ImageInput = None) -> tuple[np.ndarray, np.ndarray]:
        """(ensemble probabilities n x C, member probabilities m x n x C; NaN rows where a member abstains)."""
        records = list(records)
        n_cat = len(self.taxonomy)
        if not records:
            return np.zeros((0, n_cat), np.float32), np.zeros((len(self.members), 0, n_cat), np.float32)
        member_probs = self._member_probs(self.features(records, image_vectors))
        return self.combiner.predict_proba(list(member_probs)), member_probs

    def warm_up(self) -> Classifier:
        """Trace every member and text layer before the first real batch; returns ``self``.

        Two batch sizes, because a traced call relaxes to any batch size on its second shape.
        Without this the first batches after a start or a hot swap pay the tracing (seconds).
        """
        dim = self.image_dim
        for n in (1, 2):
            records = [ProductRecord(id=f"warm-up-{i}", title="warm up") for i in range(n)]
            vectors = None if dim is None else np.full((n, dim), 1 / np.sqrt(dim), dtype=np.float32)
            self.categorise_batch(records, vectors)
        return self

    def categorise_batch(self, records: Sequence[ProductRecord],
                         image_vectors: ImageInput = None) -> list[Categorisation]:
        """One :class:`Categorisation` per record, in order (see the module docstring).

        ``image_vectors`` by product id, as the interface has it, or as an n x dim matrix.
        """
        records = list(records)
        if not records:
            return []
        # no fallback here: a model failure must never look like "no category" (the stream
        # dead-letters the records it fails on, see streams/policy.py)
        x = self.features(records, image_vectors)
        member_probs = self._member_probs(x)
        probs = self.combiner.predict_proba(list(member_probs))
        decided = self.thresholds.decide(probs)
        # the same definitions the retrain service and the simulation use (models/signals.py)
        uncertainty, split = product_signals(probs, list(member_probs), self.thresholds)
        explanations = self._explain(x, decided)
        ids = self.taxonomy.ids
        # the n_extra_scores best undecided categories of every row in one sort (stable: ties by column)
        ranked = np.where(decided, -np.inf, np.nan_to_num(probs, nan=-1.0))
        extras = np.argsort(-ranked, axis=1, kind="stable")[:, : self.n_extra_scores]
        extras_undecided = ~np.take_along_axis(decided, extras, axis=1)
        out: list[Categorisation] = []
        for i in range(len(records)):
            cols = np.flatnonzero(decided[i]).tolist()
            shown = cols + extras[i][extras_undecided[i]].tolist()
            scores = {ids[c]: round(p, 6) for c, p in zip(shown, probs[i, shown].tolist(), strict=True)}
            # built from checked arrays: pydantic's validation is skipped
            out.append(Categorisation.model_construct(
                categories=[ids[c] for c in cols],
                scores=scores,
                explanation={ids[c]: tokens for c, tokens in explanations[i].items()},
                uncertainty=float(uncertainty[i]),
                disagreement=None if np.isnan(split[i]) else float(split[i]),
            ))
        return out

    def decide(self, records: Sequence[ProductRecord], image_vectors: ImageInput = None) -> np.ndarray:
        """Boolean n x C decisions (closed under ancestors): for evaluation."""
        return self.thresholds.decide(self.predict_proba(records, image_vectors)[0])

    # --- explanations and embeddings -----------------------------------------------------------

    def _explain(self, x: dict[str, np.ndarray], decided: np.ndarray) -> list[dict[int, list[str]]]:
        empty: list[dict[int, list[str]]] = [{} for _ in range(len(decided))]
        logreg = self.members.get("logreg")
        if logreg is None or not hasattr(logreg, "coefficients"):
            return empty
        try:
            if self._explainer is None:
                coefficients = logreg.coefficients()
                vocab = {name: self.featuriser.vocabulary(name) for name in coefficients}
                _, weights, labels = wide_inputs(x, coefficients, vocab)
                # out-of-vocabulary and missing values are not evidence a reader can check: left out
                hidden = [j for j, t in enumerate(labels) if t.endswith(_NOT_EVIDENCE)]
                self._explainer = (coefficients, vocab, weights, [_readable(t) for t in labels], hidden)
            coefficients, vocab, weights, readable, hidden = self._explainer
            xw = wide_matrix(x, coefficients, vocab)
            xw[:, hidden] = 0.0
            tops = top_contributions_batch(xw, weights, readable, decided, k=self.explain_tokens)
        except Exception:  # noqa: BLE001 - explanations are optional
            log.exception("explaining the decisions failed")
            return empty
        return [{c: [t for t, _ in contributions] for c, contributions in row.items()} for row in tops]

    def embed(self, records: Sequence[ProductRecord], image_vectors: ImageInput = None) -> np.ndarray:
        """The compound embedding: every member's penultimate layer, concatenated (NaN where a member abstains)."""
        x = self.features(list(records), image_vectors)
        return np.concatenate([member.embed(x) for member in self.members.values()], axis=1).astype(np.float32)


def _readable(label: str) -> str:
    """``title_tfidf:red shoes`` -> ``title:red shoes``; categorical ``brand=nike`` stays."""
    head, sep, token = label.partition(":")
    if sep and head.endswith("_tfidf"):
        return f"{head[:-len('_tfidf')]}:{token}"
    return label
