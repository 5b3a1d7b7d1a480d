"""Ensemble members: one model per file, all behind :class:`Member` and listed in :data:`MEMBERS`.

``joint`` is the jointly trained alternative to the ensemble (several towers, one output).

>>> sorted(MEMBERS)
['gru', 'image_head', 'joint', 'logreg', 'mlp', 'textcnn', 'wide_deep']
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from models.errors import ConfigError
from models.featuriser import Featuriser
from models.members.base import Member, Validation
from models.members.gru import TextGRU
from models.members.image_head import ImageHead
from models.members.joint import JointModel
from models.members.keras_member import KerasMember, read_state
from models.members.logreg import LogReg
from models.members.mlp import MLP
from models.members.textcnn import TextCNN
from models.members.wide_deep import WideDeep

__all__ = ["MEMBERS", "ImageHead", "JointModel", "KerasMember", "LogReg", "MLP", "Member", "TextCNN", "TextGRU", "Validation",
           "WideDeep", "create_member", "load_member"]

MEMBERS: dict[str, type[Member]] = {
    cls.name: cls for cls in (LogReg, MLP, WideDeep, TextCNN, TextGRU, ImageHead, JointModel)
}


def _parameters(cls: type[Member]) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            names.update(p for p in inspect.signature(klass.__init__).parameters if p not in ("self", "kwargs"))
    return names - {"inputs"}


def create_member(name: str, featuriser: Featuriser, **params: Any) -> Member:
    """An untrained member ``name`` reading the fields the feature config lists for it.

    Hyper-parameters: the config's ``members.<name>.params``, overridden by ``params``.
    """
    if name not in MEMBERS:
        raise ConfigError(f"unknown member {name!r}; expected one of {sorted(MEMBERS)}")
    cls = MEMBERS[name]
    config = featuriser.config
    fields = config.active_fields(name)
    merged = {**(config.members[name].params if name in config.members else {}), **params}
    unknown = sorted(set(merged) - _parameters(cls))
    if unknown:
        raise ConfigError(f"member {name!r} has no parameter(s) {unknown}; expected some of "
                          f"{sorted(_parameters(cls))} (check members.{name}.params in features.yaml)")
    return cls(inputs=featuriser.input_spec(fields), **merged)


def load_member(directory: str | Path) -> Member:
    """Load a member saved with :meth:`Member.save`, whichever class it is."""
    name = read_state(directory)["name"]
    if name not in MEMBERS:
        raise ConfigError(f"{directory} holds an unknown member {name!r}; expected one of {sorted(MEMBERS)}")
    return MEMBERS[name].load(directory)
