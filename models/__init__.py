"""Models: the config-driven featuriser, label weighting and the ensemble members.

Typical training flow (the ensemble, thresholds and artifacts build on it)::

    featuriser = Featuriser(FeatureConfig.load("features.yaml")).fit(train_records)
    x = featuriser.transform(train_records, image_vectors)
    y = label_matrix(label_sets, taxonomy)
    weights = LabelWeighting(pu_correction=True).compute(y, taxonomy)  # rule labels
    member = create_member("logreg", featuriser).fit(x, y, **weights._asdict())

The whole classifier in one call (out-of-fold stacking, thresholds, refit)::

    classifier = train_ensemble(records, label_sets, taxonomy, config=config, combiner="stacked")
    ModelRegistry(root).register(classifier)  # -> version; load_classifier(path) in the worker

Names are imported on first use, so ``import prodcat.commands.models`` (and ``prodcat --help``) does not load
TensorFlow.
"""

from prodcat.lazy import lazy_exports

_EXPORTS = {
    "FeatureConfig": "models.config",
    "NotFittedError": "models.errors",
    "Featuriser": "models.featuriser",
    "InputSpec": "models.featuriser",
    "LabelWeighting": "models.labels",
    "TrainingWeights": "models.labels",
    "label_matrix": "models.labels",
    "labels_from_paths": "models.labels",
    "MEMBERS": "models.members",
    "Member": "models.members",
    "create_member": "models.members",
    "load_member": "models.members",
    "Classifier": "models.classifier",
    "load_classifier": "models.artifact",
    "save_classifier": "models.artifact",
    "ModelRegistry": "models.registry",
    "train_ensemble": "models.training",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
