"""Retraining: the human label store and active-learning batch selection.

Typical flow (periodic retraining)::

    store = LabelStore(es, index="labels", products_index=settings.es_index_products)
    targets = await store.resolved(taxonomy)              # product id -> positives / negatives
    pool = Pool(probabilities, thresholds, members=member_probabilities, texts=titles)
    batch = CombinedSelection(0.5, diverse=True).select(pool, 200, rng)
"""

from prodcat.lazy import lazy_exports

# imported on first use: `prodcat --help` should not pay for scikit-learn
_EXPORTS = {
    "Conflict": "retrain.label_store",
    "HumanLabel": "retrain.label_store",
    "LabelStore": "retrain.label_store",
    "ProductLabels": "retrain.label_store",
    "WriteResult": "retrain.label_store",
    "parse_label": "retrain.label_store",
    "CombinedSelection": "retrain.selection",
    "DisagreementSelection": "retrain.selection",
    "ImportanceWeightedSelection": "retrain.selection",
    "Pool": "retrain.selection",
    "RandomSelection": "retrain.selection",
    "Selection": "retrain.selection",
    "Strategy": "retrain.selection",
    "StreamSelection": "retrain.selection",
    "RuleTrust": "retrain.weights",
    "importance_weights": "retrain.weights",
    "UncertaintySelection": "retrain.selection",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
