"""Semantic bootstrap: candidate labels from the similarity of a product's text to category paths.

Rules only reach categories whose names are words of the titles. A sentence encoder reaches the
others: each category is embedded as its path ("Footwear > Sports Shoes") plus, optionally, the
synonyms and description a user adds to the taxonomy file; each product as its title (plus brand
and the feed's category string where present). A product's candidate label is its single most
similar category, when the cosine similarity clears a threshold, plus that category's ancestors.

**Calibration without true labels.** The threshold is chosen on the products the rules DO label,
with the words of their rule categories' names removed from their text ("Women's Cotton Kurta"
labelled "Clothing > Women's Clothing > Kurtas" becomes "Cotton"): the rules fire where a title
holds a category's name, so unmasked these products are the easy ones and would let any threshold
pass; masked, they look like what the matcher is for, titles without the category's words.
Sorted by their best similarity, the threshold is the lowest similarity at which the matches above
it still agree with the rule labels at ``target_precision``. A match (its deepest category) is
judged only where the rules can judge it: confirmed when the rules give the product that category,
refuted when they place the product elsewhere at or above its depth; a category the rules never
label, or a depth below the rules' deepest label, is left out. This precision against rule labels
on masked titles is a pessimistic proxy of the precision on real titles (the masked words are
gone, the rules' own errors count as the matcher's); the default target 0.6 was chosen on
Flipkart's sweep in ``benchmarks/results/weak_labels.md`` (threshold 0.35 there) and is not
validated on another catalogue. The same products give the similarity -> agreement curve
(isotonic, increasing) that :meth:`SemanticMatcher.predict_proba` reports as the probability of
each candidate pair. The threshold is shared by all categories, so it transfers to the categories
no rule labels.

**When calibration finds no threshold.** Masking fails where a category's own words are a title's
only telling words (BigBasket: "Fresho Onion 1 kg" masked is "Fresho kg", which no category
resembles; its masked agreement peaks at 0.13) and where the rules leave almost nothing to judge
(Myntra). The matcher then falls back to :data:`FALLBACK_THRESHOLD` (Flipkart's calibrated value)
and :attr:`SemanticMatcher.calibrated_` is False: nothing shows that it beats the rules where they
fire, so ``models.weak_labels`` uses its matches only on products no rule labels. Measured on the
training products (weak labels vs truth, micro-F1): BigBasket 0.364 without the matcher -> 0.423,
Myntra photos 0.911 -> 0.921; matching every product at 0.35 instead gives 0.478 and 0.874 (it
helps where the rules are weak and hurts where they are strong, and nothing without the truth
tells which is which).

**Category descriptions** live in the taxonomy JSON (``prodcat.taxonomy/1``) as optional keys of a
node; older files without them read as before (:meth:`Taxonomy.from_json` ignores extra keys)::

    {"id": "c8cc6a2544d", "path": ["Footwear", "Sports Shoes"],
     "synonyms": ["running shoes", "trainers"], "description": "shoes for running and the gym"}

A category's similarity is the maximum over its texts: the path, each synonym, and
"path: description".

The encoder is any object with ``version`` and ``embed(texts) -> L2-normalised rows``
(``embedder.text.TextEncoder``, e.g. ``embedder.backends.minilm.MiniLMEncoder``); models does not
import embedder (the two are sibling floors), so the caller passes one in. Matching is CPU-bound
and synchronous: run it in a worker thread, not on an event loop.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from sklearn.isotonic import IsotonicRegression

from models.errors import ConfigError, DataError, NotFittedError
from models.labels import reliable_negatives
from prodcat.record import ProductRecord
from prodcat.taxonomy import Taxonomy

__all__ = [
    "CategoryDescription",
    "SemanticMatcher",
    "FALLBACK_THRESHOLD",
    "SupportsEmbed",
    "calibrate_threshold",
    "category_texts",
    "mask_words",
    "product_text",
    "read_category_descriptions",
]

_FORMAT = "prodcat.semantic/1"
FALLBACK_THRESHOLD = 0.35  # when calibration finds none (module docstring)
_WORD = re.compile(r"[^\W\d_]+")
ProductField = str  # a ProductRecord text field: title, brand, category, description


class SupportsEmbed(Protocol):
    """What the matcher needs of an encoder: ``embedder.text.TextEncoder`` satisfies it."""

    @property
    def version(self) -> str: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class CategoryDescription:
    """A user's extra words for one category: other names for it and a sentence about it."""

    synonyms: tuple[str, ...] = ()
    description: str | None = None


def read_category_descriptions(source: str | bytes | Path, taxonomy: Taxonomy) -> dict[str, CategoryDescription]:
    """The optional ``synonyms``/``description`` of a taxonomy JSON file's nodes, by category id.

    ``source`` is the JSON text or a path to the file. Nodes without either key are left out;
    a node whose id is not in ``taxonomy`` is an error (the file and the taxonomy disagree).
    """
    where = str(source) if isinstance(source, Path) else "<taxonomy JSON>"
    if isinstance(source, Path):
        try:
            source = source.read_text(encoding="utf-8")
        except OSError as exc:
            raise DataError(f"cannot read the taxonomy file {where}: {exc}") from exc
    try:
        data = json.loads(source)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: not JSON: {exc}") from exc
    nodes = data.get("nodes") if isinstance(data, dict) else None
    if not isinstance(nodes, list):
        raise DataError(f"{where}: expected a taxonomy snapshot with a 'nodes' list. "
                        f"Received: {type(data).__name__}")
    out: dict[str, CategoryDescription] = {}
    for n, node in enumerate(nodes):
        if not isinstance(node, dict) or ("synonyms" not in node and "description" not in node):
            continue
        cid = str(node.get("id"))
        if cid not in taxonomy:
            raise DataError(f"{where}: node #{n} has id {cid!r}, which is not in the taxonomy of {len(taxonomy)} "
                            "categories; describe the categories of the taxonomy the matcher is fitted on")
        synonyms = node.get("synonyms", [])
        if not isinstance(synonyms, list) or not all(isinstance(s, str) and s.strip() for s in synonyms):
            raise DataError(f"{where}: node {cid!r}: expected 'synonyms' as a list of non-empty strings. "
                            f"Received: {synonyms!r}")
        description = node.get("description")
        if description is not None and not isinstance(description, str):
            raise DataError(f"{where}: node {cid!r}: expected 'description' as a string. Received: {description!r}")
        out[cid] = CategoryDescription(tuple(s.strip() for s in synonyms),
                                       description.strip() if description and description.strip() else None)
    return out


def category_texts(taxonomy: Taxonomy, descriptions: Mapping[str, CategoryDescription] | None = None,
                   ) -> tuple[list[str], np.ndarray]:
    """Every text to embed for the categories and, for each, its column: ``(texts, columns)``."""
    texts: list[str] = []
    columns: list[int] = []
    for col, cid in enumerate(taxonomy.ids):
        # Names joined by spaces, not " > ": MiniLM reads the arrows as words (Flipkart depth 4,
        # zero-shot micro-F1 0.673 with " > ", 0.722 with spaces).
        path = " ".join(taxonomy.path(cid))
        extra = (descriptions or {}).get(cid, CategoryDescription())
        own = [path, *extra.synonyms] + ([f"{path}: {extra.description}"] if extra.description else [])
        texts.extend(own)
        columns.extend([col] * len(own))
    return texts, np.asarray(columns, dtype=np.int64)


def product_text(record: ProductRecord, fields: Sequence[ProductField] = ("title", "brand", "category")) -> str:
    """The product's text for the encoder: the non-empty ``fields`` joined with ". "."""
    parts: list[str] = []
    for field in fields:
        value = getattr(record, field)
        if value and str(value).strip() and str(value).strip() not in parts:
            parts.append(str(value).strip())
    return ". ".join(parts)


def _word_key(word: str) -> str:
    """A word as the mask compares it: case-folded, a plural "s" dropped ("Kurtas" ~ "kurta")."""
    word = word.casefold()
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


def mask_words(text: str, names: Sequence[str]) -> str:
    """``text`` without the words of ``names`` (the calibration's stand-in for a title the rules miss)."""
    banned = {_word_key(w) for name in names for w in _WORD.findall(name)}
    return " ".join(t for t in text.split() if not any(_word_key(w) in banned for w in _WORD.findall(t)))


def calibrate_threshold(similarity: np.ndarray, hits: np.ndarray, pairs: np.ndarray, target_precision: float,
                        *, min_matches: int = 50) -> float:
    """The lowest similarity whose matches above it agree at ``target_precision``; ``inf`` if none does.

    ``similarity[i]`` is product i's best similarity, ``pairs[i]`` how many (product, category)
    pairs its match proposes and ``hits[i]`` how many of them the reference (rule labels) holds.
    Precision is pooled over pairs of the products at or above the threshold; at least
    ``min_matches`` products must be above it, so a handful of lucky matches does not set it.
    """
    order = np.argsort(-similarity, kind="stable")
    cum_hits = np.cumsum(hits[order], dtype=np.float64)
    cum_pairs = np.cumsum(pairs[order], dtype=np.float64)
    precision = np.divide(cum_hits, cum_pairs, out=np.zeros_like(cum_hits), where=cum_pairs > 0)
    ranked = similarity[order]
    # A threshold passes every product with that similarity: judge it at the end of each tie.
    last_of_tie = np.append(ranked[1:] < ranked[:-1], True)
    ok = np.flatnonzero((precision >= target_precision) & (np.arange(1, len(order) + 1) >= min_matches)
                        & last_of_tie)
    if not len(ok):
        return float("inf")
    return float(ranked[ok[-1]])


class SemanticMatcher:
    """Zero-shot candidate labels: each product's most similar category above a calibrated threshold,
    with its ancestors (module docstring).

    ``threshold``: a fixed cosine similarity; ``None`` calibrates it in :meth:`fit` from rule
    labels at ``target_precision``. ``fields``: the product fields embedded. ``min_matches``: the
    fewest rule-labelled products above a calibrated threshold. ``mask_rule_words``: calibrate on
    the texts without their rule categories' words (module docstring); off, on the texts as they are.
    ``calibrated_`` is False after a fit whose calibration found no threshold (the threshold is then
    :data:`FALLBACK_THRESHOLD`).
    """

    def __init__(self, encoder: SupportsEmbed, *, threshold: float | None = None, target_precision: float = 0.6,
                 fields: Sequence[ProductField] = ("title", "brand", "category"), min_matches: int = 50,
                 mask_rule_words: bool = True) -> None:
        if threshold is not None and not -1.0 <= threshold <= 1.0:
            raise ConfigError(f"Expected threshold as a cosine similarity in [-1, 1] or None (calibrate). "
                              f"Received: threshold={threshold}")
        if not 0.0 < target_precision < 1.0:
            raise ConfigError(f"Expected target_precision in (0, 1). Received: target_precision={target_precision}")
        unknown = set(fields) - set(ProductRecord.model_fields)
        if unknown or not fields:
            raise ConfigError(f"Expected fields of a ProductRecord (title, brand, category, description). "
                              f"Received: {list(fields)}")
        self.encoder = encoder
        self.threshold = threshold
        self.target_precision = target_precision
        self.fields = tuple(fields)
        self.min_matches = min_matches
        self.mask_rule_words = mask_rule_words
        self.taxonomy_: Taxonomy | None = None
        self.category_vectors_: np.ndarray | None = None
        self.text_columns_: np.ndarray | None = None
        self.threshold_: float | None = None
        self.calibrated_ = True
        self.calibration_: dict[str, Any] = {}
        self._curve: IsotonicRegression | None = None

    # --- fitting ---------------------------------------------------------------------------

    def fit(self, taxonomy: Taxonomy, *, records: Sequence[ProductRecord] | None = None,
            rule_labels: np.ndarray | None = None,
            descriptions: Mapping[str, CategoryDescription] | None = None) -> SemanticMatcher:
        """Embed the categories; calibrate on ``records`` and their ``rule_labels`` (``n x C``, closed).

        Without records and rule labels a fixed ``threshold`` is required, and
        :meth:`predict_proba` reports the raw similarity for lack of a calibration curve.
        """
        if len(taxonomy) == 0:
            raise DataError("Expected a taxonomy with categories. Received: an empty one.")
        texts, columns = category_texts(taxonomy, descriptions)
        self.taxonomy_, self.text_columns_ = taxonomy, columns
        self.category_vectors_ = self._embed(texts)
        self.calibration_, self._curve, self.calibrated_ = {}, None, True
        if records is None or rule_labels is None:
            if self.threshold is None:
                raise ConfigError("Expected records and rule_labels to calibrate the threshold, or a fixed "
                                  "threshold= in SemanticMatcher(...). Received: neither.")
            self.threshold_ = float(self.threshold)
            return self
        self._calibrate(records, np.asarray(rule_labels) > 0.5)
        return self

    def _calibrate(self, records: Sequence[ProductRecord], rules: np.ndarray) -> None:
        taxonomy = self._taxonomy()
        if rules.shape != (len(records), len(taxonomy)):
            raise DataError(f"Expected rule_labels of shape ({len(records)}, {len(taxonomy)}). "
                            f"Received: {rules.shape}")
        labelled = np.flatnonzero(rules.any(axis=1))
        covered = rules.any(axis=0)  # the rules can confirm or refute only these categories
        texts = [product_text(records[int(i)], self.fields) for i in labelled]
        if self.mask_rule_words:
            texts = [mask_words(text, [name for c in np.flatnonzero(rules[i]) for name in taxonomy.path(taxonomy.id_at(c))])
                     for text, i in zip(texts, labelled, strict=True)]
        sim_all = self._similarity_of(texts)
        best = sim_all.argmax(axis=1) if sim_all.size else np.zeros(0, dtype=np.int64)
        sim = sim_all[np.arange(len(best)), best] if sim_all.size else np.zeros(0, np.float32)
        # Judge the match itself (its deepest category), not its chain: ancestors are right far more
        # often and would let almost any match pass. It is confirmed when the rules hold it, refuted
        # when the rules put the product elsewhere at or above its depth (a reliable negative), and
        # unjudged otherwise (a category the rules never label, or a path they stop above).
        rows = np.arange(len(labelled))
        confirmed = rules[labelled][rows, best]
        refuted = reliable_negatives(rules[labelled], taxonomy)[rows, best]
        keep = covered[best] & (confirmed | refuted) & np.array([bool(t) for t in texts], dtype=bool)
        hits, pairs = confirmed.astype(np.int64), np.ones(len(best), dtype=np.int64)
        threshold = calibrate_threshold(sim[keep], hits[keep], pairs[keep], self.target_precision,
                                        min_matches=self.min_matches)
        self.calibrated_ = self.threshold is not None or bool(np.isfinite(threshold))
        self.threshold_ = float(self.threshold if self.threshold is not None
                                else threshold if self.calibrated_ else FALLBACK_THRESHOLD)
        if keep.sum() >= 2:
            self._curve = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
            self._curve.fit(sim[keep], hits[keep] / pairs[keep], sample_weight=pairs[keep])
        above = keep & (sim >= self.threshold_)
        self.calibration_ = {
            "products": int(keep.sum()), "covered_categories": int(covered.sum()),
            "threshold": self.threshold_, "calibrated": self.calibrated_,
            "target_precision": self.target_precision, "matched_share": float(above.sum() / max(keep.sum(), 1)),
            "precision_vs_rules": float(hits[above].sum() / max(pairs[above].sum(), 1)),
        }

    # --- predicting ------------------------------------------------------------------------

    def similarity(self, records: Sequence[ProductRecord]) -> np.ndarray:
        """``(n, C)`` float32: each product's cosine similarity to each category (max over its texts)."""
        return self._similarity_of([product_text(r, self.fields) for r in records])

    def _similarity_of(self, texts: list[str]) -> np.ndarray:
        cats, columns = self._fitted()
        text_sim = self._embed(texts) @ cats.T
        if np.array_equal(columns, np.arange(len(self._taxonomy()))):
            out = text_sim.astype(np.float32, copy=False)
        else:  # a category with synonyms has several texts: its similarity is the best of them
            out = np.full((len(texts), len(self._taxonomy())), -1.0, dtype=np.float32)
            np.maximum.at(out.T, columns, text_sim.T)
        out[[i for i, text in enumerate(texts) if not text]] = -1.0  # an empty text's vector is noise
        return out

    def _best(self, records: Sequence[ProductRecord]) -> tuple[np.ndarray, np.ndarray]:
        sim = self.similarity(records)
        best = sim.argmax(axis=1) if sim.size else np.zeros(0, dtype=np.int64)
        return best, sim[np.arange(len(records)), best] if sim.size else np.zeros(0, np.float32)

    def _chains(self, best: np.ndarray) -> np.ndarray:
        chains = np.zeros((len(best), len(self._taxonomy())), dtype=bool)
        chains[np.arange(len(best)), best] = True
        return self._taxonomy().close_matrix(chains, inplace=True)

    def predict(self, records: Sequence[ProductRecord]) -> np.ndarray:
        """``(n, C)`` bool: the best category and its ancestors where the similarity clears the threshold."""
        return self.decide(self.similarity(records))

    def decide(self, similarity: np.ndarray) -> np.ndarray:
        """:meth:`predict` from an ``(n, C)`` :meth:`similarity` already computed (embedding is the cost)."""
        best = similarity.argmax(axis=1) if similarity.size else np.zeros(0, dtype=np.int64)
        chains = self._chains(best)
        chains[similarity[np.arange(len(best)), best] < self._threshold()] = False
        return chains

    def predict_proba(self, records: Sequence[ProductRecord]) -> np.ndarray:
        """``(n, C)`` float32: for matched products, the calibrated probability that a pair of the
        match's chain is right (rule agreement at that similarity); 0 elsewhere."""
        best, sim = self._best(records)
        chains = self._chains(best)
        chains[sim < self._threshold()] = False
        score = self._curve.predict(sim) if self._curve is not None else np.clip(sim, 0.0, 1.0)
        return (chains * score[:, None]).astype(np.float32)

    # --- saving ----------------------------------------------------------------------------

    def save(self, directory: str | Path) -> None:
        """Write the category vectors, the threshold and the calibration curve to ``directory``."""
        cats, columns = self._fitted()
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        curve = self._curve
        np.savez(out / "semantic.npz", category_vectors=cats, text_columns=columns,
                 curve_x=curve.X_thresholds_ if curve is not None else np.zeros(0),
                 curve_y=curve.y_thresholds_ if curve is not None else np.zeros(0))
        meta = {"format": _FORMAT, "encoder_version": self.encoder.version, "threshold": self._threshold(),
                "config": {"threshold": self.threshold, "target_precision": self.target_precision,
                           "fields": list(self.fields), "min_matches": self.min_matches,
                           "mask_rule_words": self.mask_rule_words},
                "calibration": self.calibration_, "taxonomy": json.loads(self._taxonomy().to_json())}
        (out / "semantic.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path, encoder: SupportsEmbed) -> SemanticMatcher:
        """Read a matcher written by :meth:`save`; ``encoder`` must be the version it was fitted with."""
        where = Path(directory)
        try:
            meta = json.loads((where / "semantic.json").read_text(encoding="utf-8"))
            arrays = np.load(where / "semantic.npz", allow_pickle=False)
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"cannot read a semantic matcher from {where}: {exc}") from exc
        if meta.get("format") != _FORMAT:
            raise DataError(f"Expected a semantic matcher with format {_FORMAT!r} in {where}. "
                            f"Received: {meta.get('format')!r}")
        if meta["encoder_version"] != encoder.version:
            raise ConfigError(f"Expected the encoder {meta['encoder_version']!r} the matcher in {where} was fitted "
                              f"with. Received: {encoder.version!r}; refit the matcher with this encoder.")
        matcher = cls(encoder, **meta["config"])
        matcher.taxonomy_ = Taxonomy.from_json(json.dumps(meta["taxonomy"]))
        matcher.category_vectors_ = arrays["category_vectors"]
        matcher.text_columns_ = arrays["text_columns"]
        matcher.threshold_ = float(meta["threshold"])
        matcher.calibration_ = meta["calibration"]
        matcher.calibrated_ = bool(matcher.calibration_.get("calibrated", True))  # older files: a threshold was found
        if len(arrays["curve_x"]):
            curve = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
            # the fitted curve is piecewise linear through these points: refitting on them restores it
            curve.fit(arrays["curve_x"], arrays["curve_y"])
            matcher._curve = curve
        return matcher

    # --- helpers ---------------------------------------------------------------------------

    def _embed(self, texts: list[str]) -> np.ndarray:
        vectors = np.asarray(self.encoder.embed(texts), dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise DataError(f"Expected the encoder to return ({len(texts)}, dim) vectors. "
                            f"Received: shape {vectors.shape}")
        return vectors

    def _fitted(self) -> tuple[np.ndarray, np.ndarray]:
        if self.category_vectors_ is None or self.text_columns_ is None:
            raise NotFittedError("SemanticMatcher is not fitted; call fit(taxonomy, ...) or SemanticMatcher.load")
        return self.category_vectors_, self.text_columns_

    def _taxonomy(self) -> Taxonomy:
        if self.taxonomy_ is None:
            raise NotFittedError("SemanticMatcher is not fitted; call fit(taxonomy, ...) or SemanticMatcher.load")
        return self.taxonomy_

    def _threshold(self) -> float:
        if self.threshold_ is None:
            raise NotFittedError("SemanticMatcher is not fitted; call fit(taxonomy, ...) or SemanticMatcher.load")
        return self.threshold_
