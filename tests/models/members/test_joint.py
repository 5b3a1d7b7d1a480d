"""The joint model: members' towers side by side under one output, trained in one optimisation."""

from __future__ import annotations

import numpy as np
import pytest

from models.errors import ConfigError
from models.members import JointModel, create_member

FIELDS = ["title", "brand", "gender", "image"]


def test_towers_are_sub_models_under_one_output(sample, featuriser, features) -> None:
    joint = JointModel(featuriser.input_spec(FIELDS), towers=["mlp", "textcnn", "image_head"], epochs=1, seed=0)
    joint.fit(features, sample.y)
    model = joint._model
    assert {layer.name for layer in model.layers} >= {"mlp_tower", "textcnn_tower", "image_head_tower"}
    assert model.outputs[0].shape[-1] == len(sample.taxonomy)
    # one optimisation: every tower's weights are trainable parts of the same model
    towers = [layer for layer in model.layers if layer.name.endswith("_tower")]
    assert sum(len(t.trainable_weights) for t in towers) + 2 == len(model.trainable_weights)
    # the compound embedding is the towers' embeddings side by side
    assert joint.embed(features).shape[1] == sum(t.outputs[0].shape[-1] for t in towers)


def test_unknown_or_unfed_tower_is_a_config_error(featuriser) -> None:
    with pytest.raises(ConfigError, match="towers"):
        create_member("joint", featuriser, towers=["logreg"])
    with pytest.raises(ConfigError, match="tower 'image_head' of the joint model"):
        JointModel(featuriser.input_spec(["title"]), towers=["mlp", "image_head"])


def test_image_rows_change_the_prediction(sample, featuriser, features) -> None:
    joint = JointModel(featuriser.input_spec(FIELDS), towers=["mlp", "image_head"], epochs=3, seed=0)
    joint.fit(features, sample.y)
    without = {**features}
    mask = next(name for name in features if name.endswith("_mask"))
    vector = next(name for name, spec in featuriser.input_spec(["image"]).items() if spec.kind == "dense")
    without[mask] = np.zeros_like(features[mask])
    without[vector] = np.zeros_like(features[vector])
    has_image = features[mask].ravel() > 0.5
    changed = np.abs(joint.predict_proba(features) - joint.predict_proba(without)).max(axis=1)
    assert (changed[has_image] > 1e-4).mean() > 0.9
