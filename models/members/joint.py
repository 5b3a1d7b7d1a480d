"""One jointly trained model: several members' towers under a single shared output layer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import keras

from models.errors import ConfigError
from models.featuriser import FeatureKind, InputSpec
from models.members.blocks import concat
from models.members.gru import TextGRU
from models.members.image_head import ImageHead
from models.members.keras_member import KerasMember
from models.members.mlp import MLP
from models.members.textcnn import TextCNN
from models.members.wide_deep import WideDeep

__all__ = ["JointModel"]

TOWERS: dict[str, type[KerasMember]] = {cls.name: cls for cls in (MLP, WideDeep, TextCNN, TextGRU, ImageHead)}


class JointModel(KerasMember):
    """The towers of ``towers`` (members' networks up to their embedding layer) side by side, their
    embeddings concatenated, dropout, one sigmoid per category; trained in ONE optimisation.

    The alternative to the ensemble: instead of fitting members apart and combining their
    probabilities, the towers learn together which of them to rely on. ``tower_params`` passes
    hyper-parameters to a tower (``{"textcnn": {"filters": 32}}``). Each tower reads the joint
    model's fields of the kinds it consumes; a tower with none of them is a configuration error.
    """

    name = "joint"
    consumes: ClassVar[frozenset[FeatureKind]] = frozenset({"tf_idf", "tokens", "categorical", "dense", "mask"})

    def __init__(self, inputs: Mapping[str, InputSpec | Mapping[str, Any]], *,
                 towers: Sequence[str] = ("mlp", "textcnn"),
                 tower_params: Mapping[str, Mapping[str, Any]] | None = None, dropout: float = 0.3,
                 **kwargs: Any) -> None:
        super().__init__(inputs, **kwargs)
        unknown = [t for t in towers if t not in TOWERS]
        if not towers or unknown or not 0 <= dropout < 1:
            raise ConfigError(f"expected towers from {sorted(TOWERS)} (at least one) and 0 <= dropout < 1, "
                              f"received towers={list(towers)}, dropout={dropout}")
        self.towers, self.dropout = list(dict.fromkeys(towers)), dropout
        self.tower_params = {name: dict(params) for name, params in (tower_params or {}).items()}
        # built now, so a tower without suitable inputs fails at construction, not mid-training
        self._towers = []
        for name in self.towers:
            try:
                self._towers.append(TOWERS[name](self.inputs, **self.tower_params.get(name, {})))
            except ConfigError as exc:
                raise ConfigError(f"tower {name!r} of the joint model: {exc} (for the joint model: list the "
                                  "field under members.joint.fields)") from exc

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "towers": self.towers, "tower_params": self.tower_params,
                "dropout": self.dropout}

    def _network(self, inputs: dict[str, Any], n_classes: int) -> tuple[Any, Any]:
        embeddings = []
        for tower in self._towers:
            # each tower is its own sub-model: its layer names ("embedding", ...) do not clash
            own = {name: keras.Input(shape=(spec.width,), dtype=spec.dtype, name=name)
                   for name, spec in tower.inputs.items()}
            embedding, _ = tower._network(own, n_classes)  # its output layer is not used
            sub = keras.Model(own, embedding, name=f"{tower.name}_tower")
            embeddings.append(sub({name: inputs[name] for name in tower.inputs}))
        embedding = concat(embeddings, name="embedding")
        x = keras.layers.Dropout(self.dropout)(embedding)
        return embedding, keras.layers.Dense(n_classes, activation="sigmoid", name="probabilities")(x)
