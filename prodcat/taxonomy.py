"""An immutable category tree with stable ids, column order for model outputs and ancestor closure.

A category is identified by a stable string id:

* Google's product taxonomy keeps its own numeric ids (as strings, e.g. ``"1604"``).
* Trees read from datasets get an id derived from the full path alone, so the same path gets
  the same id in every run and every dataset::

      "c" + sha1(" > ".join(normalise(name) for name in path)).hexdigest()[:10]

  where ``normalise`` case-folds a name and collapses runs of white space (see :func:`path_id`).
  Ten hex digits (40 bits) keep collisions negligible for trees of millions of nodes; a
  collision is detected at build time and raised as a :class:`~prodcat.errors.DataError`.

Ids are ordered by depth, then by the normalised path; that order is the column order of model
outputs (:meth:`Taxonomy.index`, :meth:`Taxonomy.id_at`), so it must not depend on the order
in which paths were read.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from prodcat.errors import DataError

__all__ = ["DEFAULT_MAX_DEPTH", "DEFAULT_MIN_SUPPORT", "PATH_SEPARATOR", "Taxonomy", "normalise_name", "path_id"]

PATH_SEPARATOR = " > "
# how `rules generate` and `train` cut a catalogue's tree by default: the same, so rules written
# by one resolve in the taxonomy the other derives
DEFAULT_MAX_DEPTH = 3
DEFAULT_MIN_SUPPORT = 20
_JSON_FORMAT = "prodcat.taxonomy/1"
_SPACES = re.compile(r"\s+")
_GOOGLE_LINE = re.compile(r"^\s*(\d+)\s+-\s+(.+?)\s*$")


def normalise_name(name: str) -> str:
    """Case-fold and collapse white space: the form in which category names are compared."""
    return _SPACES.sub(" ", name).strip().casefold()


def path_id(path: Sequence[str]) -> str:
    """The stable id of a dataset category: ``"c"`` + 10 hex digits of sha1 of the normalised path."""
    key = PATH_SEPARATOR.join(normalise_name(name) for name in path)
    return "c" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:10]


def _clean_path(path: Sequence[str]) -> tuple[str, ...]:
    """Strip names and collapse their inner white space; empty names end the path (they are gaps)."""
    out: list[str] = []
    for name in path:
        name = _SPACES.sub(" ", str(name)).strip()
        if not name:
            break
        out.append(name)
    return tuple(out)


class Taxonomy:
    """An immutable tree of categories, built once (by a ``from_*`` constructor) and then only read.

    Every node's ancestors are in the tree. Depth 1 is the top level; there is no explicit root.
    """

    __slots__ = (
        "_ids", "_paths", "_index", "_parent", "_children", "_ancestors", "_by_path", "_anc_table",
    )

    def __init__(self, nodes: Iterable[tuple[str, Sequence[str]]]) -> None:
        """Build from ``(id, path)`` pairs; prefer the ``from_*`` constructors, which make the ids."""
        by_norm: dict[tuple[str, ...], tuple[str, tuple[str, ...]]] = {}
        seen_ids: dict[str, tuple[str, ...]] = {}
        for node_id, raw_path in nodes:
            path = _clean_path(raw_path)
            if not path:
                raise DataError(f"category {node_id!r} has an empty path; every category needs a name")
            norm = tuple(normalise_name(n) for n in path)
            if node_id in seen_ids and seen_ids[node_id] != norm:
                raise DataError(
                    f"category id {node_id!r} is used for two paths: "
                    f"{PATH_SEPARATOR.join(seen_ids[node_id])!r} and {PATH_SEPARATOR.join(norm)!r}"
                )
            if norm in by_norm and by_norm[norm][0] != node_id:
                raise DataError(
                    f"path {PATH_SEPARATOR.join(path)!r} has two ids: {by_norm[norm][0]!r} and {node_id!r}"
                )
            seen_ids[node_id] = norm
            by_norm.setdefault(norm, (node_id, path))
        for norm, (node_id, path) in by_norm.items():
            if len(norm) > 1 and norm[:-1] not in by_norm:
                raise DataError(
                    f"category {node_id!r} ({PATH_SEPARATOR.join(path)!r}) has no parent category "
                    f"{PATH_SEPARATOR.join(path[:-1])!r}; add it or build with Taxonomy.from_paths, "
                    "which adds every prefix"
                )
        order = sorted(by_norm, key=lambda norm: (len(norm), norm))
        self._ids: tuple[str, ...] = tuple(by_norm[n][0] for n in order)
        self._paths: tuple[tuple[str, ...], ...] = tuple(by_norm[n][1] for n in order)
        self._index: dict[str, int] = {node_id: i for i, node_id in enumerate(self._ids)}
        self._by_path: dict[tuple[str, ...], int] = {n: i for i, n in enumerate(order)}
        parent = [self._by_path[n[:-1]] if len(n) > 1 else -1 for n in order]
        self._parent: tuple[int, ...] = tuple(parent)
        children: list[list[int]] = [[] for _ in order]
        for i, p in enumerate(parent):
            if p >= 0:
                children[p].append(i)
        self._children: tuple[tuple[int, ...], ...] = tuple(tuple(c) for c in children)
        # Parents sort before children (depth first in the order), so one pass builds every chain.
        ancestors: list[tuple[int, ...]] = []
        for p in parent:
            ancestors.append(() if p < 0 else ancestors[p] + (p,))
        self._ancestors: tuple[tuple[int, ...], ...] = tuple(ancestors)
        # The ancestor matrix in ELLPACK form: row i holds i and its ancestors, padded with i.
        # It is the sparse matrix A (C x C, A[i, j] = j is i or an ancestor of i) that
        # close_matrix applies; a padded index table needs no scipy and is one fancy-index.
        width = max((len(a) + 1 for a in ancestors), default=1)
        table = np.empty((len(order), width), dtype=np.int32)
        for i, anc in enumerate(ancestors):
            row = anc + (i,)
            table[i, : len(row)] = row
            table[i, len(row):] = i
        self._anc_table = table

    # --- constructors ----------------------------------------------------------------------

    @classmethod
    def from_google(cls, path: str | Path) -> Taxonomy:
        """Read Google's ``taxonomy-with-ids`` file (``1604 - Apparel & Accessories > Clothing``)."""
        source = Path(path)
        try:
            text = source.read_text(encoding="utf-8")
        except OSError as exc:
            raise DataError(f"cannot read the Google taxonomy {source}: {exc}") from exc
        nodes: list[tuple[str, tuple[str, ...]]] = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            match = _GOOGLE_LINE.match(line)
            if match is None:
                raise DataError(
                    f"{source}:{lineno}: expected '<numeric id> - <A > B > C>', received {line[:80]!r}"
                )
            nodes.append((match.group(1), tuple(match.group(2).split(">"))))
        if not nodes:
            raise DataError(f"{source} holds no categories; is it the taxonomy-with-ids file?")
        try:
            return cls(nodes)
        except DataError as exc:
            raise DataError(f"{source}: {exc}") from exc

    @classmethod
    def from_paths(cls, paths: Iterable[Sequence[str]], max_depth: int | None = None) -> Taxonomy:
        """Build from category paths (e.g. read from a dataset), adding every prefix of every path.

        ``max_depth`` truncates longer paths. Empty paths are ignored. Ids come from :func:`path_id`.
        """
        if max_depth is not None and max_depth < 1:
            raise ValueError(f"Expected max_depth >= 1 or None. Received: max_depth={max_depth}")
        nodes: dict[tuple[str, ...], tuple[str, ...]] = {}
        for raw in paths:
            path = _clean_path(raw)[:max_depth]
            for d in range(1, len(path) + 1):
                norm = tuple(normalise_name(n) for n in path[:d])
                nodes.setdefault(norm, path[:d])  # the first spelling seen is the display name
        return cls((path_id(p), p) for p in nodes.values())

    @classmethod
    def from_catalogue(cls, paths: Sequence[Sequence[str]], *, max_depth: int = DEFAULT_MAX_DEPTH,
                       min_support: int = DEFAULT_MIN_SUPPORT) -> tuple[Taxonomy, dict[str, int]]:
        """The tree a catalogue's category paths form, cut at ``max_depth``, without categories of
        fewer than ``min_support`` products; with the support of the uncut tree (products per
        category, ancestors included), which rule generation weighs branches by.
        """
        full = cls.from_paths(paths, max_depth=max_depth)
        deepest = [full.find_deepest(path) if path else None for path in paths]
        support = full.support({d} if d is not None else set() for d in deepest)
        return full.prune(support=support, min_support=min_support), support

    @classmethod
    def from_json(cls, text: str | bytes) -> Taxonomy:
        """Rebuild a taxonomy from :meth:`to_json` output (e.g. inside a model artifact)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"taxonomy snapshot is not JSON: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != _JSON_FORMAT:
            received = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise DataError(
                f"Expected a taxonomy snapshot with format {_JSON_FORMAT!r}. Received: {received!r}"
            )
        try:
            nodes = [(str(n["id"]), tuple(n["path"])) for n in data["nodes"]]
        except (KeyError, TypeError) as exc:
            raise DataError(f"taxonomy snapshot nodes must be objects with 'id' and 'path': {exc!r}") from exc
        return cls(nodes)

    def to_json(self) -> str:
        """A JSON snapshot (ids and paths in column order) that :meth:`from_json` reads back."""
        nodes = [{"id": i, "path": list(p)} for i, p in zip(self._ids, self._paths)]
        return json.dumps({"format": _JSON_FORMAT, "nodes": nodes}, ensure_ascii=False)

    # --- size, order, lookup ---------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, category_id: object) -> bool:
        return category_id in self._index

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Taxonomy):
            return NotImplemented
        return self._ids == other._ids and self._paths == other._paths

    def __hash__(self) -> int:
        return hash(self._ids)

    def __repr__(self) -> str:
        return f"Taxonomy({len(self)} categories, {len(self.roots())} roots, depth {self.max_depth})"

    @property
    def ids(self) -> tuple[str, ...]:
        """All ids in column order: by depth, then by normalised path."""
        return self._ids

    @property
    def max_depth(self) -> int:
        """The depth of the deepest category (0 for an empty tree)."""
        return int(self._anc_table.shape[1]) if self._ids else 0

    def index(self, category_id: str) -> int:
        """The column of ``category_id`` in model outputs."""
        try:
            return self._index[category_id]
        except KeyError:
            raise KeyError(
                f"unknown category id {category_id!r}; it is not in this taxonomy of {len(self)} categories"
            ) from None

    def id_at(self, i: int) -> str:
        """The category id of column ``i``."""
        return self._ids[i]

    def name(self, category_id: str) -> str:
        """The category's own name (the last element of its path)."""
        return self._paths[self.index(category_id)][-1]

    def path(self, category_id: str) -> tuple[str, ...]:
        """Names from the top level down to the category itself."""
        return self._paths[self.index(category_id)]

    def path_str(self, category_id: str) -> str:
        """The path joined with ``" > "``."""
        return PATH_SEPARATOR.join(self.path(category_id))

    def parent(self, category_id: str) -> str | None:
        """The parent id, or ``None`` for a top-level category."""
        p = self._parent[self.index(category_id)]
        return None if p < 0 else self._ids[p]

    def children(self, category_id: str) -> tuple[str, ...]:
        """Direct children, in column order."""
        return tuple(self._ids[c] for c in self._children[self.index(category_id)])

    def ancestors(self, category_id: str) -> tuple[str, ...]:
        """Ancestors from the top level down, excluding the category itself."""
        return tuple(self._ids[a] for a in self._ancestors[self.index(category_id)])

    def depth(self, category_id: str) -> int:
        """1 for a top-level category."""
        return len(self._ancestors[self.index(category_id)]) + 1

    def at_level(self, category_id: str, level: int) -> str | None:
        """The category's ancestor (or itself) at ``level``; ``None`` if it is shallower than that."""
        if level < 1:
            raise ValueError(f"Expected level >= 1 (1 is the top level). Received: level={level}")
        i = self.index(category_id)
        chain = self._ancestors[i] + (i,)
        return self._ids[chain[level - 1]] if level <= len(chain) else None

    def find(self, path: Sequence[str]) -> str | None:
        """The id of the category whose names equal ``path`` ignoring case and spacing, else ``None``."""
        i = self._by_path.get(tuple(normalise_name(n) for n in path))
        return None if i is None else self._ids[i]

    def find_deepest(self, path: Sequence[str]) -> str | None:
        """The deepest category along ``path`` (maps a deep path onto a pruned tree), else ``None``."""
        norm = tuple(normalise_name(n) for n in _clean_path(path))
        for d in range(len(norm), 0, -1):
            i = self._by_path.get(norm[:d])
            if i is not None:
                return self._ids[i]
        return None

    def roots(self) -> tuple[str, ...]:
        """Top-level categories, in column order."""
        return tuple(self._ids[i] for i, p in enumerate(self._parent) if p < 0)

    def leaves(self) -> tuple[str, ...]:
        """Categories without children, in column order."""
        return tuple(self._ids[i] for i, c in enumerate(self._children) if not c)

    def descendants(self, category_id: str) -> tuple[str, ...]:
        """Every category below ``category_id`` (not itself), in column order."""
        out: list[int] = []
        stack = list(self._children[self.index(category_id)])
        while stack:
            i = stack.pop()
            out.append(i)
            stack.extend(self._children[i])
        return tuple(self._ids[i] for i in sorted(out))

    # --- ancestor closure ------------------------------------------------------------------

    def close(self, labels: Iterable[str]) -> set[str]:
        """``labels`` plus all their ancestors: a positive for a category implies its ancestors."""
        out: set[str] = set()
        ids, ancestors = self._ids, self._ancestors
        for label in labels:
            out.add(label)
            out.update(ids[a] for a in ancestors[self.index(label)])
        return out

    def close_many(self, label_sets: Iterable[Iterable[str]]) -> list[set[str]]:
        """:meth:`close` for many label sets, sharing the per-category closures."""
        # Cache the closed frozenset per id: label sets repeat the same few thousand ids.
        cache: dict[str, frozenset[str]] = {}
        out: list[set[str]] = []
        for labels in label_sets:
            closed: set[str] = set()
            for label in labels:
                anc = cache.get(label)
                if anc is None:
                    i = self.index(label)
                    anc = cache[label] = frozenset(self._ids[a] for a in self._ancestors[i] + (i,))
                closed |= anc
            out.append(closed)
        return out

    def close_matrix(self, y: np.ndarray, *, inplace: bool = False) -> np.ndarray:
        """Ancestor closure of a boolean ``n x len(self)`` label matrix (columns in :attr:`ids` order).

        Returns a boolean matrix where every positive also marks its ancestors' columns: a new
        one, or ``y`` itself with ``inplace=True`` (saves allocating another n x C matrix, which
        costs more than the closure for large n).
        """
        y = np.asarray(y)
        if y.ndim != 2 or y.shape[1] != len(self):
            raise ValueError(f"Expected a matrix of shape (n, {len(self)}). Received: shape={y.shape}")
        if inplace and y.dtype != np.bool_:
            raise ValueError(f"Expected a bool matrix for inplace=True. Received: dtype={y.dtype}")
        out = y if inplace else y.astype(bool, copy=True)
        # flatnonzero on the flat view is ~5x faster than np.nonzero's per-axis bookkeeping.
        rows, cols = np.divmod(np.flatnonzero(out), out.shape[1])
        width = self._anc_table.shape[1]
        out[np.repeat(rows, width), self._anc_table[cols].ravel()] = True
        return out

    def to_matrix(self, label_sets: Sequence[Iterable[str]]) -> np.ndarray:
        """A boolean ``n x len(self)`` matrix with a column set for each label (no closure)."""
        out = np.zeros((len(label_sets), len(self)), dtype=bool)
        for r, labels in enumerate(label_sets):
            for label in labels:
                out[r, self.index(label)] = True
        return out

    def from_matrix(self, y: np.ndarray) -> list[set[str]]:
        """The label sets of a boolean ``n x len(self)`` matrix."""
        ids = self._ids
        return [{ids[c] for c in np.flatnonzero(row)} for row in np.asarray(y, dtype=bool)]

    # --- pruning ---------------------------------------------------------------------------

    def support(self, label_sets: Iterable[Iterable[str]]) -> dict[str, int]:
        """How many label sets contain each category after ancestor closure (the input of :meth:`prune`)."""
        counts: Counter[str] = Counter()
        for closed in self.close_many(label_sets):
            counts.update(closed)
        return dict(counts)

    def prune(
        self,
        *,
        max_depth: int | None = None,
        support: Mapping[str, int] | None = None,
        min_support: int = 1,
    ) -> Taxonomy:
        """A smaller tree without categories deeper than ``max_depth`` or with support below ``min_support``.

        ``support`` maps ids to the number of items labelled with the category after ancestor
        closure (see :meth:`support`); ids missing from it count 0. When ``support`` is ``None``
        only ``max_depth`` applies. Descendants of a dropped category are dropped too, so the
        result is a tree. Kept categories keep their ids; map items onto the smaller tree with
        :meth:`find_deepest`.
        """
        if max_depth is not None and max_depth < 1:
            raise ValueError(f"Expected max_depth >= 1 or None. Received: max_depth={max_depth}")
        keep = [False] * len(self._ids)
        for i, node_id in enumerate(self._ids):  # parents come first in column order
            p = self._parent[i]
            if p >= 0 and not keep[p]:
                continue
            if max_depth is not None and len(self._ancestors[i]) + 1 > max_depth:
                continue
            if support is not None and support.get(node_id, 0) < min_support:
                continue
            keep[i] = True
        return Taxonomy((self._ids[i], self._paths[i]) for i in range(len(self._ids)) if keep[i])

    # --- artifacts helpers -----------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Size, roots, depth and leaves: a summary for logs and model cards."""
        return {"categories": len(self), "roots": len(self.roots()), "max_depth": self.max_depth,
                "leaves": len(self.leaves())}
