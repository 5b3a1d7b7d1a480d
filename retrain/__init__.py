"""Retraining: the human label store and active-learning batch selection.

Typical flow (periodic retraining)::

    store = LabelStore(es, index="labels", products_index=settings.es_index_products)
    targets = await store.resolved(taxonomy)              # product id -> positives / negatives
    pool = Pool(probabilities, thresholds, members=member_probabilities, texts=titles)
    batch = CombinedSelection(0.5, diverse=True).select(pool, 200, rng)
"""

from retrain.labels import (
    Conflict,
    HumanLabel,
    LabelStore,
    ProductLabels,
    WriteResult,
    parse_label,
)
from retrain.selection import (
    CombinedSelection,
    DisagreementSelection,
    ImportanceWeightedSelection,
    Pool,
    RandomSelection,
    Selection,
    Strategy,
    UncertaintySelection,
)

__all__ = [
    "CombinedSelection",
    "Conflict",
    "DisagreementSelection",
    "HumanLabel",
    "ImportanceWeightedSelection",
    "LabelStore",
    "Pool",
    "ProductLabels",
    "RandomSelection",
    "Selection",
    "Strategy",
    "UncertaintySelection",
    "WriteResult",
    "parse_label",
]
