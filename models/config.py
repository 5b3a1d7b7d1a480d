"""The feature configuration: how each input field is represented and which members read it.

ONE file (``models/features.yaml`` by default) is used by training and serving: the featuriser
saves a copy inside every artifact, so a served model preprocesses exactly as it was trained.
Each entry of ``fields`` names a model input and says how to represent it:

* ``text``: a free-text field, as a TF-IDF vector (``tf_idf``, for the linear and MLP members)
  and/or a padded sequence of token ids (``int``, for the embedding members).
* ``categorical``: one value from a vocabulary of the ``top_k`` most frequent values, embedded in
  ``embedding_dim`` dimensions (or one-hot in the wide members).
* ``dense``: a fixed-length float vector supplied beside the records (the CNN image vector).
* ``drop``: not used. A member listing a dropped field skips it, so one ``kind: drop`` switches
  a field off everywhere.

``members`` lists, per member (keys of :data:`models.members.MEMBERS`), the fields it reads and
optional hyper-parameters passed to its constructor.

>>> config = FeatureConfig.from_yaml('''
... fields:
...   title: {kind: text, max_tokens: 8000, ngrams: 2}
...   price: {kind: drop}
... members:
...   logreg: {fields: [title, price]}
... ''')
>>> config.active_fields("logreg")
['title']
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from prodcat.errors import ConfigError

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "CategoricalField",
    "DenseField",
    "DropField",
    "FeatureConfig",
    "FieldSpec",
    "MemberInputs",
    "TextField",
    "TextSource",
]

DEFAULT_CONFIG_PATH = Path(__file__).with_name("features.yaml")

# ProductRecord attributes a text or categorical field can read; "category_path" is the list of
# levels joined with " > " (the raw "category" string keeps the feed's own delimiters).
TextSource = Literal["title", "brand", "category", "category_path", "description", "gender", "size",
                     "retailer", "network"]
_SOURCES: tuple[str, ...] = get_args(TextSource)


class _Field(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextField(_Field):
    """Free text: TF-IDF over word n-grams and/or padded sequences of word ids."""

    kind: Literal["text"]
    source: TextSource | None = Field(None, description="record field to read; defaults to the field's key")
    max_tokens: int = Field(ge=2, description="vocabulary size, including the out-of-vocabulary token")
    ngrams: int = Field(1, ge=1, le=3, description="TF-IDF uses all word n-grams up to this length")
    outputs: tuple[Literal["tf_idf", "int"], ...] = Field(("tf_idf", "int"), min_length=1)
    sequence_length: int = Field(32, ge=1, description="length of the int sequence (truncated/padded)")
    max_chars: int = Field(2000, ge=1, description="text is cut to this many characters first")

    @field_validator("outputs")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError(f"expected each output once, received {list(value)}")
        return value


class CategoricalField(_Field):
    """One value per product (brand, gender, the raw category string) from a top-k vocabulary."""

    kind: Literal["categorical"]
    source: TextSource | None = None
    top_k: int = Field(ge=1, description="keep the most frequent values; others share one OOV id")
    embedding_dim: int = Field(ge=1)
    max_chars: int = Field(200, ge=1)


class DenseField(_Field):
    """A float vector given beside the records (the image vector); rows may be missing."""

    kind: Literal["dense"]
    dim: int = Field(ge=1)


class DropField(_Field):
    """A field the models do not use (price by default)."""

    kind: Literal["drop"]


FieldSpec = Annotated[TextField | CategoricalField | DenseField | DropField, Field(discriminator="kind")]


class MemberInputs(BaseModel):
    """The fields one member reads and the hyper-parameters its constructor gets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fields: tuple[str, ...] = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class FeatureConfig(BaseModel):
    """The validated content of ``features.yaml``; build with :meth:`load`, :meth:`from_yaml` or :meth:`default`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    fields: dict[str, FieldSpec] = Field(min_length=1)
    members: dict[str, MemberInputs] = Field(default_factory=dict)

    @field_validator("fields")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name, spec in value.items():
            # Keys become Keras input names and feature keys ("title_tfidf"), so keep them plain.
            if not name.isidentifier() or name.startswith("_"):
                raise ValueError(f"expected field names like 'title' or 'brand_2', received {name!r}")
            if spec.kind in ("text", "categorical") and spec.source is None and name not in _SOURCES:
                raise ValueError(
                    f"field {name!r} needs a 'source': expected one of {list(_SOURCES)}, received none "
                    "(the key is not a record field)"
                )
        dense = [name for name, spec in value.items() if spec.kind == "dense"]
        if len(dense) > 1:
            raise ValueError(f"expected at most one dense field (the image vector), received {dense}")
        return value

    @model_validator(mode="after")
    def _members_read_known_fields(self) -> FeatureConfig:
        for member, inputs in self.members.items():
            unknown = [f for f in inputs.fields if f not in self.fields]
            if unknown:
                raise ValueError(
                    f"member {member!r} reads unknown field(s) {unknown}; expected names from fields: "
                    f"{sorted(self.fields)}"
                )
        return self

    # --- reading ---------------------------------------------------------------------------

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "<features>") -> FeatureConfig:
        """Parse and validate YAML text; :class:`ConfigError` names the source and the bad setting."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(
                f"{source}: expected a mapping with 'fields' and 'members', received {type(data).__name__}"
            )
        return cls.from_dict(data, source=source)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "<features>") -> FeatureConfig:
        """Validate a plain dict (e.g. :meth:`to_dict` output); errors as in :meth:`from_yaml`."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"{source}: {problems}; fix these settings in the feature config") from None

    @classmethod
    def load(cls, path: str | Path) -> FeatureConfig:
        """Read a feature config file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read the feature config {path}: {exc}; pass an existing YAML file") from exc
        return cls.from_yaml(text, source=str(path))

    @classmethod
    def default(cls) -> FeatureConfig:
        """The packaged ``models/features.yaml`` (the originating study's representation)."""
        return cls.load(DEFAULT_CONFIG_PATH)

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON/YAML-serialisable dict that :meth:`from_dict` reads back."""
        return self.model_dump(mode="json", exclude_defaults=False)

    def to_yaml(self) -> str:
        """YAML text that :meth:`from_yaml` reads back."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    # --- derived views ---------------------------------------------------------------------

    def with_fields(self, **fields: FieldSpec | dict[str, Any]) -> FeatureConfig:
        """A copy with some fields replaced, e.g. ``with_fields(category={"kind": "drop"})``."""
        data = self.to_dict()
        for name, spec in fields.items():
            data["fields"][name] = spec.model_dump(mode="json") if isinstance(spec, BaseModel) else dict(spec)
        return self.from_dict(data, source="with_fields()")

    def active_fields(self, member: str | None = None) -> list[str]:
        """Non-dropped fields, in config order: all of them, or those ``member`` reads."""
        if member is None:
            names: tuple[str, ...] | list[str] = list(self.fields)
        else:
            if member not in self.members:
                raise ConfigError(
                    f"no member {member!r} in the feature config; expected one of {sorted(self.members)}, "
                    "or add it under 'members' in features.yaml"
                )
            names = self.members[member].fields
        return [name for name in names if self.fields[name].kind != "drop"]

    def source_of(self, name: str) -> str:
        """The record field that feeds field ``name`` (its ``source``, else its own key)."""
        spec = self.fields[name]
        return getattr(spec, "source", None) or name
