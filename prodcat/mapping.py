"""Column mappings: which column of a generic CSV/JSONL catalogue holds which prodcat field.

A catalogue whose columns prodcat does not recognise (a header-less CSV, a feed with its own
column names) is described without code, on the command line or in a small file::

    --columns id,title,category,brand,price          # fields in column order ("-" skips one)
    --columns 0=id,1=title,4=price                    # position (from 0) = field
    --columns "sku=id,Product Name=title"             # header name = field
    --mapping shop.yaml                               # the same as a YAML/JSON file, see below
    --no-header                                       # the CSV's first row is a product

A mapping file (YAML, or JSON, which YAML reads too)::

    header: false          # optional, default true (a CSV's first row names the columns)
    delimiter: ";"         # optional, default ","
    columns:               # position or header name -> prodcat field; a list maps by position
      0: id
      1: title
      2: category

:class:`ColumnMapping` validates the mapping itself (pydantic); whether a position or a header
name exists is checked against the file by :func:`prodcat.catalogue.read_catalogue`, which is
the one place a mapping is applied.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from prodcat.errors import ConfigError, DataError
from prodcat.record import FIELD_ALIASES, canonical_field

__all__ = ["FIELDS", "SKIP", "ColumnKey", "ColumnMapping", "load_mapping_file", "mapping_from_options",
           "parse_columns"]

FIELDS: tuple[str, ...] = tuple(FIELD_ALIASES)  # the fields a column can fill: id, network, ..., updated_at
SKIP = "-"  # a placeholder in a list of fields: this column holds nothing prodcat models
ColumnKey = int | str  # a position (from 0) or a header name / JSON key

_EXPECTED_FIELDS = f"expected one of {', '.join(FIELDS)} (or '{SKIP}' to skip a column)"


def _field_of(name: Any, column: ColumnKey) -> str | None:
    """The prodcat field a mapping entry names (aliases such as "name" or "sku" accepted); None for a skip."""
    if not isinstance(name, str):
        raise ValueError(f"column {column!r}: expected a field name, received {name!r}; {_EXPECTED_FIELDS}")
    text = name.strip()
    if text in ("", SKIP):
        return None
    field = text if text in FIELDS else canonical_field(text)
    if field is None:
        raise ValueError(f"column {column!r}: unknown field {text!r}; {_EXPECTED_FIELDS}")
    return field


def _key_of(key: Any) -> ColumnKey:
    """A position for integers and digit strings (JSON keys are strings), else a header name."""
    if isinstance(key, bool):
        raise ValueError(f"expected a column position or a header name, received {key!r}")
    if isinstance(key, int) or (isinstance(key, str) and key.strip().lstrip("-").isdigit()):
        position = int(key)
        if position < 0:
            raise ValueError(f"column positions count from 0, received {position}")
        return position
    if isinstance(key, str) and key.strip():
        return key.strip()
    raise ValueError(f"expected a column position or a header name, received {key!r}")


class ColumnMapping(BaseModel):
    """Which column (position or header name) holds which prodcat field, and how the file is laid out.

    ``columns`` maps a CSV position (from 0), a CSV header name or a JSONL key to one of
    :data:`FIELDS`; each field at most once. Columns it does not name stay in the record under
    their own header name (so prodcat's usual field aliases still apply) or, without a header,
    as ``column_<position>`` (kept as extras).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    columns: dict[ColumnKey, str] = Field(default_factory=dict,
                                          description="position or header name -> prodcat field")
    header: bool = Field(True, description="whether a CSV's first row names the columns")
    delimiter: str = Field(",", min_length=1, max_length=1, description="the CSV's cell separator")
    _source: str = PrivateAttr("the column mapping")

    @field_validator("columns", mode="before")
    @classmethod
    def _columns(cls, value: Any) -> dict[ColumnKey, str | None]:
        if isinstance(value, (list, tuple)):  # fields in column order
            value = dict(enumerate(value))
        if not isinstance(value, dict):
            raise ValueError(f"expected a list of fields in column order or a mapping column -> field, "
                             f"received {type(value).__name__}")
        fields: dict[ColumnKey, str] = {}
        seen: dict[str, ColumnKey] = {}
        for raw_key, name in value.items():
            key = _key_of(raw_key)
            if key in fields:
                raise ValueError(f"column {key!r} is mapped twice")
            field = _field_of(name, key)
            if field is None:
                continue
            if field in seen:
                raise ValueError(f"field {field!r} is mapped twice (columns {seen[field]!r} and {key!r}); "
                                 "map each field from one column")
            seen[field] = key
            fields[key] = field
        return fields

    @model_validator(mode="after")
    def _headerless_needs_positions_and_an_id(self) -> ColumnMapping:
        if not self.header:
            names = [k for k in self.columns if isinstance(k, str)]
            if names:
                raise ValueError(f"a file without a header has no column names, received {names[0]!r}; "
                                 "map columns by position (0=id,1=title) or in order (id,title)")
            if "id" not in self.columns.values():
                raise ValueError("a file without a header needs a column mapped to 'id' (the product id); "
                                 "received " + (", ".join(f"{k}={v}" for k, v in self.columns.items()) or "no column"))
        return self

    @property
    def source(self) -> str:
        """Where the mapping came from, for error messages ("--columns", "mapping file shop.yaml")."""
        return self._source

    @classmethod
    def build(cls, data: Any, source: str, error: type[ConfigError] | type[DataError] = ConfigError) -> ColumnMapping:
        """Validate ``data``; any problem is one ``error`` line that starts with ``source``."""
        try:
            mapping = cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            message = str(first["msg"]).removeprefix("Value error, ")
            if first["type"] == "extra_forbidden":
                message = f"unknown key {where!r}; expected header, delimiter and columns"
            elif where and where != "columns":  # the columns' own messages name the column
                message = f"{where}: {message}"
            raise error(f"{source}: {message}") from None
        mapping._source = source
        return mapping


def parse_columns(text: str) -> dict[ColumnKey, str]:
    """``--columns`` text as column -> field name: "id,title,-,brand" (in column order) or "0=id,name=title".

    Field names are checked by :class:`ColumnMapping`; this only splits the text.
    """
    items = [item.strip() for item in text.split(",")]
    if not any(items):
        raise ConfigError(f"--columns: expected fields in column order (id,title,category) or column=field pairs "
                          f"(0=id,1=title), received {text!r}")
    pairs = ["=" in item for item in items]
    if all(pairs):
        columns: dict[ColumnKey, str] = {}
        for item in items:
            column, _, field = item.partition("=")
            try:
                key = _key_of(column)
            except ValueError as exc:
                raise ConfigError(f"--columns: {exc} in {item!r}") from None
            if key in columns:
                raise ConfigError(f"--columns: column {key!r} is mapped twice in {text!r}")
            columns[key] = field.strip()
        return columns
    if any(pairs):
        raise ConfigError(f"--columns: expected either fields in column order (id,title,category) or column=field "
                          f"pairs (0=id,name=title), not both; received {text!r}")
    return dict(enumerate(items))


def load_mapping_file(path: Path) -> ColumnMapping:
    """A mapping file (YAML or JSON: ``header``, ``delimiter``, ``columns``), validated."""
    source = f"mapping file {path}"
    if not path.is_file():
        raise DataError(f"{source} does not exist; pass a YAML/JSON file with 'columns' (see README, "
                        "'Bring your own catalogue')")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DataError(f"{source}: not valid YAML/JSON ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict) or "columns" not in data:
        raise DataError(f"{source}: expected a mapping with a 'columns' key (and optionally 'header', 'delimiter'), "
                        f"received {type(data).__name__ if not isinstance(data, dict) else 'keys ' + str(list(data))}")
    return ColumnMapping.build(data, source, error=DataError)


def mapping_from_options(columns: str | None = None, mapping_file: Path | None = None,
                         *, no_header: bool = False) -> ColumnMapping | None:
    """The mapping ``--columns``, ``--mapping`` and ``--no-header`` describe; None when none is given.

    ``--columns`` entries go on top of the file's; ``--no-header`` overrides the file's ``header``.
    """
    if columns is None and mapping_file is None:
        if no_header:
            raise ConfigError("--no-header: a CSV without a header needs --columns or --mapping to say which column "
                              "holds what, e.g. --columns id,title,category")
        return None
    from_file = load_mapping_file(mapping_file) if mapping_file is not None else None
    if columns is None and not no_header:
        return from_file
    sources = [from_file.source] if from_file else []
    sources += [name for name, given in (("--columns", columns is not None), ("--no-header", no_header)) if given]
    return ColumnMapping.build({
        "columns": {**(from_file.columns if from_file else {}), **(parse_columns(columns) if columns else {})},
        "header": (from_file.header if from_file else True) and not no_header,
        "delimiter": from_file.delimiter if from_file else ",",
    }, " with ".join(sources))
