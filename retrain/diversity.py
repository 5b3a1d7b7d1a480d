"""Batch diversity: drop near-duplicate titles from a ranked shortlist."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer

__all__ = ["distinct_in_order"]


def distinct_in_order(order: np.ndarray, texts: Sequence[str | None], k: int, *, similarity: float = 0.8,
                      analyzer: Literal["char", "word"] = "char") -> np.ndarray:
    """The first ``k`` of ``order`` whose text has cosine < ``similarity`` to every one taken before.

    Texts become L2-normalised hashed counts of character 3-grams within words (``char``) or of
    words (``word``). Counts, not TF-IDF: in a shortlist full of one product family, IDF would
    discount the shared n-grams and make the variants look distinct. Fewer than ``k`` come back
    when ``order`` runs out of distinct texts: labels spent on near-duplicates are wasted.
    """
    vectoriser = (HashingVectorizer(analyzer="char_wb", ngram_range=(3, 3), alternate_sign=False, norm="l2")
                  if analyzer == "char" else HashingVectorizer(analyzer="word", alternate_sign=False, norm="l2"))
    x = vectoriser.transform(["" if texts[i] is None else str(texts[i]) for i in order]).tocsr()
    xt = x.T.tocsr()  # feature -> candidates: one candidate's similarities are one sparse row product
    taken: list[int] = []
    taken_mask = np.zeros(len(order), dtype=bool)
    for j in range(len(order)):
        if len(taken) == k:
            break
        sims = (x[j] @ xt).toarray().ravel()
        if not np.any(sims[taken_mask] >= similarity):
            taken.append(j)
            taken_mask[j] = True
    return np.asarray(order)[np.asarray(taken, dtype=np.int64)]
