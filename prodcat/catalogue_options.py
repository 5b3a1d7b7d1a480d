"""The options of every command that reads a catalogue, and the catalogue they describe.

``feed``, ``rules generate``, ``train``, ``evaluate``, ``embed`` and ``similar-ui`` take the same
``--preset``, ``--columns``, ``--mapping`` and ``--no-header`` (declared once here) and turn them
into a :class:`Catalogue` with :meth:`Catalogue.from_options`; reading goes through
:func:`prodcat.catalogue.read_catalogue`, the one place a mapping is applied.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from prodcat.catalogue import read_catalogue
from prodcat.mapping import ColumnMapping, mapping_from_options

__all__ = ["Catalogue", "ColumnsOpt", "MappingOpt", "NoHeaderOpt", "PresetOpt"]

PresetOpt = Annotated[str, typer.Option(help="Catalogue format: auto, jsonl, csv, flipkart, flipkart-names, "
                                             "flipkart-images, myntra, myntra-images, bigbasket.")]
ColumnsOpt = Annotated[Optional[str], typer.Option(
    "--columns", help="Which column holds which field, for a CSV/JSONL prodcat does not know: fields in column "
                      "order (id,title,category,brand,price; '-' skips a column), or column=field pairs by "
                      "position from 0 or header name (0=id,1=title or sku=id). Fields: id, title, category, "
                      "brand, price, description, image_url, url, gender, size, currency, retailer, network, "
                      "updated_at.")]
MappingOpt = Annotated[Optional[Path], typer.Option(
    "--mapping", help="A YAML/JSON file with 'columns' (column -> field, as --columns) and optionally "
                      "'header: false' and 'delimiter'; --columns entries go on top of it.")]
NoHeaderOpt = Annotated[bool, typer.Option(
    "--no-header", help="The CSV's first row is a product, not column names (needs --columns or --mapping).")]


@dataclass(frozen=True)
class Catalogue:
    """A catalogue file and how to read it: its preset, an optional column mapping and photo folder."""

    path: Path
    preset: str = "auto"
    mapping: ColumnMapping | None = None
    images_dir: Path | None = None

    @classmethod
    def from_options(cls, path: Path, preset: str = "auto", columns: str | None = None,
                     mapping: Path | None = None, *, no_header: bool = False,
                     images_dir: Path | None = None) -> Catalogue:
        """The catalogue the command-line options describe; a bad mapping is a one-line error here."""
        return cls(path, preset, mapping_from_options(columns, mapping, no_header=no_header), images_dir)

    def read(self) -> Iterator[dict[str, Any]]:
        """The raw records (see :func:`read_catalogue`)."""
        return read_catalogue(self.path, self.preset, mapping=self.mapping, images_dir=self.images_dir)

    def describe(self) -> str:
        """How the file is read, for messages: "preset 'auto'" or "preset 'auto', --columns with --no-header"."""
        return f"preset {self.preset!r}" + (f", {self.mapping.source}" if self.mapping is not None else "")
