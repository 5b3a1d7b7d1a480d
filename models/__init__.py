"""Models: the config-driven featuriser, label weighting and the ensemble members.

Typical training flow (the ensemble, thresholds and artifacts build on it)::

    featuriser = Featuriser(FeatureConfig.load("features.yaml")).fit(train_records)
    x = featuriser.transform(train_records, image_vectors)
    y = label_matrix(label_sets, taxonomy)
    weights = LabelWeighting(pu_correction=True).compute(y, taxonomy)  # rule labels
    member = create_member("logreg", featuriser).fit(x, y, **weights._asdict())
"""

from models.config import FeatureConfig
from models.errors import NotFittedError
from models.featuriser import Featuriser, InputSpec
from models.labels import LabelWeighting, TrainingWeights, label_matrix, labels_from_paths
from models.members import MEMBERS, Member, create_member, load_member

__all__ = [
    "MEMBERS",
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
    "load_member",
]
