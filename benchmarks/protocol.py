"""The models report's evaluation protocol, shared by the benchmarks that compare against it.

A seeded 90/10 split, and the taxonomy cut at ``depth`` and pruned to ``min_support`` on the
training products only, so the test products never shape the categories they are scored on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from prodcat.taxonomy import Taxonomy

DATASETS = {  # the report's name -> (file under ../shared/datasets, catalogue preset)
    "flipkart": ("flipkart/products_20k_name_tree.csv", "flipkart-names"),
    "myntra": ("myntra/styles.csv", "myntra"),
    "myntra-images": ("myntra/images.csv", "myntra-images"),  # the 10,000 products with a photo
    "bigbasket": ("bigbasket/products_27k.csv", "bigbasket"),
}


T = TypeVar("T")


def subsample(records: Sequence[T], limit: int | None) -> list[T]:
    """A fixed random ``limit`` of ``records`` in their order (all of them without a limit): every
    benchmark that passes the same ``--limit`` sees the same products."""
    if not limit or limit >= len(records):
        return list(records)
    keep = np.sort(np.random.default_rng(1).permutation(len(records))[:limit])
    return [records[i] for i in keep]


def split_and_taxonomy(paths: Sequence[Sequence[str]], *, depth: int, min_support: int,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray, Taxonomy, dict[str, int]]:
    """(train indices, test indices, pruned taxonomy, support of the full training taxonomy)."""
    order = np.random.default_rng(seed).permutation(len(paths))
    n_test = len(paths) // 10
    test_idx, train_idx = np.sort(order[:n_test]), np.sort(order[n_test:])
    taxonomy, support = Taxonomy.from_catalogue([paths[i] for i in train_idx], max_depth=depth,
                                                min_support=min_support)
    return train_idx, test_idx, taxonomy, support
