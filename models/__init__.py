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
"""

from models.config import FeatureConfig
from models.errors import NotFittedError
from models.featuriser import Featuriser, InputSpec
from models.labels import LabelWeighting, TrainingWeights, label_matrix, labels_from_paths
from models.members import MEMBERS, Member, create_member, load_member
from models.classifier import Classifier
from models.artifact import load_classifier, save_classifier
from models.registry import ModelRegistry
from models.training import train_ensemble

__all__ = [
    "MEMBERS",
    "Classifier",
    "ModelRegistry",
    "FeatureConfig",
    "Featuriser",
    "InputSpec",
    "LabelWeighting",
    "Member",
    "NotFittedError",
    "TrainingWeights",
    "create_member",
    "label_matrix",
    "labels_from_paths",
    "load_classifier",
    "load_member",
    "save_classifier",
    "train_ensemble",
]
