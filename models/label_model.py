"""A label model: probabilistic (product, category) labels from noisy sources, weighted by how
accurate each source appears from the way the sources agree.

Sources are the rules (each rule one source), the semantic matcher, the feed's own category path
where a feed has one, and later human labels. Each source observes a block of pairs (some
products x some categories) and, inside it, says "yes" (fires) or, by staying silent, "no"; outside
it, it abstains. A rule observes its own category on every product; the semantic matcher, the
categories of each depth on the products it matched that deep.

**The model** is Dawid and Skene's (1979) with two coins per source, fitted by EM, the binary
special case of Snorkel's generative label model with conditionally independent sources:

* every pair (i, c) has a hidden true label y with prior ``prior_[c]`` (one per category);
* given y, each observing source j fires independently, with probability ``recall_[j]`` if
  y = 1 and ``false_positive_rate_[j]`` if y = 0;
* E-step: the posterior P(y = 1 | votes) of every pair; M-step: expected counts give each
  source's recall and false-positive rate and each category's prior.

Why this and not a triplet method or Snorkel's matrix completion: rules are positive-only and
each sees one category, so most pairs have only two observers (a rule and the matcher), too few
for closed-form triplet estimates per category. EM pools evidence across categories through
shared parameters instead. To keep many small sources (a rule firing on 12 products) estimable,
each source's counts are shrunk towards its *group* (all rules, or one depth of the matcher):
``prior_strength`` pseudo-observations at the group's pooled rates (empirical Bayes). A source's
precision is then estimated as the posterior mean of the truth over its "yes" votes
(:attr:`LabelModel.precision_`).

The assumption that sources are independent given the truth is the model's weak point: a rule and
the matcher both read the title, so their errors correlate and EM overrates both. The benchmark
(``benchmarks/weak_labels.py``) reports each source's estimated against its true precision.

The posteriors are per pair; :func:`ancestor_consistent` makes them respect the tree (a category
implies its ancestors, so P(parent) >= P(child)), and :func:`training_labels` turns them into
the hard labels and per-entry weights :meth:`models.members.base.Member.fit` takes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.errors import ConfigError, DataError, NotFittedError
from models.labels import TrainingWeights
from prodcat.rules import RuleMatch, RuleSet
from prodcat.taxonomy import Taxonomy

__all__ = [
    "LabelModel",
    "LabelSource",
    "ancestor_consistent",
    "descendant_sources",
    "rule_sources",
    "training_labels",
]

_EPS = 1e-4


@dataclass(frozen=True)
class LabelSource:
    """One source's votes: it observes ``rows`` x ``columns`` (``None`` = all) and says "yes" at
    ``positives`` (a pair of index arrays inside that block); silence in the block is "no".

    ``group`` names the sources whose rates its estimates are shrunk towards (default: its name).
    """

    name: str
    positive_rows: np.ndarray
    positive_columns: np.ndarray
    rows: np.ndarray | None = None  # int indices of the products it observes
    columns: np.ndarray | None = None  # int indices of the categories it observes
    group: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("Expected a source name. Received: an empty string.")
        if len(self.positive_rows) != len(self.positive_columns):
            raise DataError(f"source {self.name!r}: expected as many positive rows as columns. Received: "
                            f"{len(self.positive_rows)} rows, {len(self.positive_columns)} columns")
        object.__setattr__(self, "group", self.group or self.name)

    @classmethod
    def from_matrix(cls, name: str, votes: np.ndarray, *, rows: np.ndarray | None = None,
                    columns: np.ndarray | None = None, group: str = "") -> LabelSource:
        """A source from a boolean ``n x C`` vote matrix; votes outside ``rows`` x ``columns`` are dropped."""
        votes = np.asarray(votes, dtype=bool)
        mask = np.zeros_like(votes)
        r = slice(None) if rows is None else np.asarray(rows, dtype=np.int64)
        c = slice(None) if columns is None else np.asarray(columns, dtype=np.int64)
        if isinstance(r, slice) or isinstance(c, slice):
            mask[r, c] = True
        else:
            mask[np.ix_(r, c)] = True
        pr, pc = np.nonzero(votes & mask)
        return cls(name, pr, pc, None if rows is None else np.asarray(rows, dtype=np.int64),
                   None if columns is None else np.asarray(columns, dtype=np.int64), group)

    def observed(self, n_rows: int, n_columns: int) -> int:
        """How many pairs the source observes."""
        return (n_rows if self.rows is None else len(self.rows)) * (n_columns if self.columns is None
                                                                    else len(self.columns))

    def block(self) -> tuple[slice | np.ndarray, ...]:
        """An index into an ``n x C`` matrix selecting the observed block."""
        if self.rows is None:
            return (slice(None), slice(None) if self.columns is None else self.columns)
        if self.columns is None:
            return (self.rows, slice(None))
        return np.ix_(self.rows, self.columns)


def rule_sources(matches: Sequence[RuleMatch], rules: RuleSet, taxonomy: Taxonomy, *,
                 group: str = "rules") -> list[LabelSource]:
    """One source per rule: it observes its own category on every product and fires where it fired.

    Rules that never fired on ``matches`` are left out (they carry no evidence). A rule's labels
    for its category's ancestors are not its votes: :func:`ancestor_consistent` carries them up.
    """
    fired: dict[str, list[int]] = defaultdict(list)
    target: dict[str, int] = {}
    for i, match in enumerate(matches):
        for rule_id, category in match.fired:
            fired[rule_id].append(i)
            target[rule_id] = taxonomy.index(category)
    out = []
    for rule in rules.rules:
        rows = fired.get(rule.id)
        if rows:
            col = target[rule.id]
            unique = np.unique(np.asarray(rows, dtype=np.int64))
            out.append(LabelSource(f"rule:{rule.id}", unique, np.full(len(unique), col, dtype=np.int64),
                                   columns=np.array([col], dtype=np.int64), group=group))
    return out


def descendant_sources(votes: np.ndarray, taxonomy: Taxonomy, *, name: str = "rules-below") -> list[LabelSource]:
    """``votes`` for deeper categories carried up the tree, as one source per depth.

    ``votes`` is a boolean ``n x C`` matrix of sources' own-category "yes" (e.g. every rule's
    firing on its category). Source ``{name}:depth{d}`` observes the depth-d categories that have
    a voted descendant and says "yes" where one of them was voted. It is a third view of a parent
    category beside its own rule and the matcher ("a rule for some kind of shirt fired" vs "the
    rule for Clothing fired"), which the two-view case lacks to tell which source is right.
    """
    votes = np.asarray(votes, dtype=bool)
    if votes.ndim != 2 or votes.shape[1] != len(taxonomy):
        raise DataError(f"Expected votes of shape (n, {len(taxonomy)}). Received: {votes.shape}")
    below = np.zeros_like(votes)
    for col in range(len(taxonomy) - 1, -1, -1):  # children come after parents in column order
        parent = taxonomy.parent(taxonomy.id_at(col))
        if parent is not None:
            p = taxonomy.index(parent)
            below[:, p] |= below[:, col] | votes[:, col]
    has_voted_descendant = below.any(axis=0)
    depth = np.array([taxonomy.depth(c) for c in taxonomy.ids])
    out = []
    for d in range(1, taxonomy.max_depth + 1):
        columns = np.flatnonzero(has_voted_descendant & (depth == d))
        if len(columns):
            out.append(LabelSource.from_matrix(f"{name}:depth{d}", below, columns=columns, group=f"{name}:depth{d}"))
    return out


class LabelModel:
    """Two-coin Dawid-Skene over (product, category) pairs, fitted by EM (module docstring).

    ``prior_strength``: pseudo-observations pulling each source's rates towards its group's;
    ``max_iter``/``tol``: EM stops when no rate or prior moves by more than ``tol``.
    """

    def __init__(self, *, prior_strength: float = 20.0, max_iter: int = 200, tol: float = 1e-5) -> None:
        if prior_strength < 0:
            raise ConfigError(f"Expected prior_strength >= 0. Received: prior_strength={prior_strength}")
        if max_iter < 1 or tol <= 0:
            raise ConfigError(f"Expected max_iter >= 1 and tol > 0. Received: max_iter={max_iter}, tol={tol}")
        self.prior_strength = prior_strength
        self.max_iter = max_iter
        self.tol = tol
        self.source_names_: list[str] | None = None
        self.recall_: np.ndarray | None = None
        self.false_positive_rate_: np.ndarray | None = None
        self.precision_: np.ndarray | None = None
        self.prior_: np.ndarray | None = None
        self.n_iter_ = 0
        self._shape: tuple[int, int] = (0, 0)
        self._posterior: np.ndarray | None = None

    def fit(self, sources: Sequence[LabelSource], shape: tuple[int, int]) -> LabelModel:
        """Estimate every source's rates and every category's prior from the votes on ``shape`` pairs."""
        n, n_cols = shape
        self._check(sources, shape)
        self.source_names_ = [s.name for s in sources]
        self._shape = (n, n_cols)
        # Initialise from a soft majority vote of the observers of each pair: sources that agree
        # with the others start as accurate, which also picks the mode where "fires" means "yes".
        votes = np.zeros(shape, dtype=np.float64)
        seen = np.zeros(shape, dtype=np.float64)
        for s in sources:
            seen[s.block()] += 1.0
            np.add.at(votes, (s.positive_rows, s.positive_columns), 1.0)
        q = np.where(seen > 0, (votes + 0.1) / (seen + 0.2), 0.0)
        params = self._m_step(sources, q)
        for iteration in range(1, self.max_iter + 1):
            q = self._e_step(sources, *params)
            new = self._m_step(sources, q)
            change = max(float(np.abs(a - b).max()) if len(a) else 0.0 for a, b in zip(new, params, strict=True))
            params = new
            self.n_iter_ = iteration
            if change < self.tol:
                break
        self.recall_, self.false_positive_rate_, self.prior_ = params
        self._posterior = self._e_step(sources, *params)
        self.precision_ = np.array([float(self._posterior[s.positive_rows, s.positive_columns].mean())
                                    if len(s.positive_rows) else float("nan") for s in sources])
        return self

    def predict_proba(self, sources: Sequence[LabelSource] | None = None, *, n_rows: int | None = None,
                      ) -> np.ndarray:
        """``n x C`` float32 P(y = 1 | votes): of the fitted votes, or of new votes on ``n_rows``
        products by the same sources (same names, same order), with the fitted rates."""
        if self.recall_ is None or self.false_positive_rate_ is None or self.prior_ is None or self._posterior is None:
            raise NotFittedError("LabelModel is not fitted; call fit(sources, shape) first")
        if sources is None:
            return self._posterior.astype(np.float32)
        names = [s.name for s in sources]
        if names != self.source_names_:
            fitted = self.source_names_ or []
            raise DataError(f"Expected the {len(fitted)} sources the model was fitted on, in order (first "
                            f"{fitted[:3]}). Received: {len(names)} sources, first {names[:3]}")
        if n_rows is None or n_rows < 0:
            raise ConfigError(f"Expected n_rows >= 0 with new sources. Received: n_rows={n_rows}")
        shape = (n_rows, self._shape[1])
        self._check(sources, shape)
        return self._e_step(sources, self.recall_, self.false_positive_rate_, self.prior_, shape=shape
                            ).astype(np.float32)

    # --- EM --------------------------------------------------------------------------------

    def _e_step(self, sources: Sequence[LabelSource], recall: np.ndarray, fpr: np.ndarray, prior: np.ndarray,
                shape: tuple[int, int] | None = None) -> np.ndarray:
        n, n_cols = shape or self._shape
        logit = np.broadcast_to(np.log(prior) - np.log1p(-prior), (n, n_cols)).copy()
        for j, s in enumerate(sources):
            silent = np.log1p(-recall[j]) - np.log1p(-fpr[j])  # evidence of a "no"
            fires = np.log(recall[j]) - np.log(fpr[j])  # evidence of a "yes"
            logit[s.block()] += silent
            np.add.at(logit, (s.positive_rows, s.positive_columns), fires - silent)
        return 1.0 / (1.0 + np.exp(-np.clip(logit, -50.0, 50.0)))

    def _m_step(self, sources: Sequence[LabelSource], q: np.ndarray,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n, n_cols = self._shape
        m = len(sources)
        yes_pos, yes_all = np.zeros(m), np.zeros(m)  # expected true pairs: among its "yes", observed
        fired, observed = np.zeros(m), np.zeros(m)
        for j, s in enumerate(sources):
            yes_pos[j] = q[s.positive_rows, s.positive_columns].sum()
            yes_all[j] = q[s.block()].sum()
            fired[j] = len(s.positive_rows)
            observed[j] = s.observed(n, n_cols)
        no_pos, no_all = fired - yes_pos, observed - yes_all
        groups: dict[str, list[int]] = defaultdict(list)
        for j, s in enumerate(sources):
            groups[s.group].append(j)
        group_recall, group_fpr = np.zeros(m), np.zeros(m)
        for members in groups.values():
            # the group's pooled rates, with one pseudo-count each way so an empty group is defined
            group_recall[members] = (yes_pos[members].sum() + 1.0) / (yes_all[members].sum() + 2.0)
            group_fpr[members] = (no_pos[members].sum() + 1.0) / (no_all[members].sum() + 2.0)
        k = self.prior_strength
        recall = (yes_pos + k * group_recall) / (yes_all + k)
        fpr = (no_pos + k * group_fpr) / (no_all + k)
        prior = (q.sum(axis=0) + 0.5) / (n + 1.0)
        return (np.clip(recall, _EPS, 1 - _EPS), np.clip(fpr, _EPS, 1 - _EPS), np.clip(prior, _EPS, 1 - _EPS))

    @staticmethod
    def _check(sources: Sequence[LabelSource], shape: tuple[int, int]) -> None:
        n, n_cols = shape
        if not sources:
            raise DataError("Expected at least one label source. Received: none.")
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            dup = sorted({x for x in names if names.count(x) > 1})[:3]
            raise DataError(f"Expected unique source names. Received duplicates: {dup}")
        for s in sources:
            for what, idx, bound in (("positive rows", s.positive_rows, n), ("positive columns", s.positive_columns,
                                                                             n_cols),
                                     ("rows", s.rows, n), ("columns", s.columns, n_cols)):
                if idx is not None and len(idx) and (idx.min() < 0 or idx.max() >= bound):
                    raise DataError(f"source {s.name!r}: expected {what} in [0, {bound}). "
                                    f"Received: {int(idx.min())}..{int(idx.max())}")
            flat = s.positive_rows.astype(np.int64) * n_cols + s.positive_columns
            for what, idx in (("positive pairs", flat), ("rows", s.rows), ("columns", s.columns)):
                if idx is not None and len(np.unique(idx)) != len(idx):
                    raise DataError(f"source {s.name!r}: expected unique {what}. Received: repeats; "
                                    "build the source with LabelSource.from_matrix")
            inside = np.ones(len(flat), dtype=bool)
            if s.rows is not None:
                inside &= np.isin(s.positive_rows, s.rows)
            if s.columns is not None:
                inside &= np.isin(s.positive_columns, s.columns)
            if not inside.all():
                raise DataError(f"source {s.name!r}: expected its positives inside the block it observes. "
                                f"Received: {int((~inside).sum())} outside it")


def ancestor_consistent(proba: np.ndarray, taxonomy: Taxonomy) -> np.ndarray:
    """``proba`` with every parent raised to at least its children's values: y(child) implies y(parent)."""
    proba = np.array(proba, dtype=np.float32, copy=True)
    if proba.ndim != 2 or proba.shape[1] != len(taxonomy):
        raise DataError(f"Expected probabilities of shape (n, {len(taxonomy)}). Received: {proba.shape}")
    # Columns are ordered by depth, so children come after their parents: walk backwards once.
    for col in range(len(taxonomy) - 1, -1, -1):
        parent = taxonomy.parent(taxonomy.id_at(col))
        if parent is not None:
            p = taxonomy.index(parent)
            np.maximum(proba[:, p], proba[:, col], out=proba[:, p])
    return proba


def training_labels(proba: np.ndarray, *, threshold: float = 0.5) -> tuple[np.ndarray, TrainingWeights]:
    """Hard labels (``proba >= threshold``, float32 0/1) and per-entry weights for ``Member.fit``.

    An entry weighs the probability that its hard label is right (``p`` for a 1, ``1 - p`` for a
    0): a pair the sources are sure about counts fully, a contested one about half. Apply
    :func:`ancestor_consistent` first so the labels stay closed under ancestors.
    """
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"Expected threshold in (0, 1). Received: threshold={threshold}")
    proba = np.asarray(proba, dtype=np.float32)
    y = (proba >= threshold).astype(np.float32)
    weight = np.where(y > 0, proba, 1.0 - proba).astype(np.float32)
    return y, TrainingWeights(class_weight_vector=None, sample_weight=weight)
