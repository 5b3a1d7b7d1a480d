"""A small real sample shared by the models tests: 600 Flipkart products, true labels, one fitted featuriser."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from models.config import FeatureConfig
from models.featuriser import Featuriser
from models.labels import label_matrix, labels_from_paths
from prodcat.catalogue import read_catalogue
from prodcat.record import ProductRecord, parse_record
from prodcat.taxonomy import Taxonomy

SAMPLE_SIZE = 600
IMAGE_DIM = 32


@dataclass(frozen=True)
class Sample:
    records: list[ProductRecord]
    taxonomy: Taxonomy
    y: np.ndarray
    images: np.ndarray  # (n, IMAGE_DIM), NaN rows = no image


@pytest.fixture(scope="session")
def config() -> FeatureConfig:
    """The default config with the label-bearing category fields dropped and a small image vector.

    In this dataset the category path IS the label, so reading it would make learning trivial.
    """
    return FeatureConfig.default().with_fields(category={"kind": "drop"}, category_path={"kind": "drop"},
                                               image={"kind": "dense", "dim": IMAGE_DIM})


@pytest.fixture(scope="session")
def sample(datasets: Path) -> Sample:
    path = datasets / "flipkart" / "products_20k_name_tree.csv"
    rows = list(read_catalogue(path, "flipkart-names"))[::33][:SAMPLE_SIZE]  # spread over the file
    records = []
    for raw in rows:
        record = parse_record(raw)
        # No brand column here; as in most feeds the brand is the title's first word, which gives
        # the categorical encoders a real vocabulary to learn.
        brand = record.title.split()[0] if record.title else None
        records.append(record.model_copy(update={"brand": brand}))
    paths = [r.category_path for r in records]
    taxonomy = Taxonomy.from_paths(paths, max_depth=2)
    taxonomy = taxonomy.prune(support=taxonomy.support(labels_from_paths(paths, taxonomy)), min_support=8)
    y = label_matrix(labels_from_paths(paths, taxonomy), taxonomy)
    # Class-correlated image vectors: a prototype per category plus noise; 20% of rows have none.
    rng = np.random.default_rng(0)
    images = y @ rng.normal(size=(len(taxonomy), IMAGE_DIM)) + rng.normal(size=(len(records), IMAGE_DIM))
    images[rng.random(len(records)) < 0.2] = np.nan
    return Sample(records, taxonomy, y, images.astype(np.float32))


@pytest.fixture(scope="session")
def featuriser(sample: Sample, config: FeatureConfig) -> Featuriser:
    return Featuriser(config).fit(sample.records)


@pytest.fixture(scope="session")
def features(sample: Sample, featuriser: Featuriser) -> dict[str, np.ndarray]:
    return featuriser.transform(sample.records, sample.images)


@pytest.fixture
def bad_records() -> list[ProductRecord]:
    """Records at the edges: empty, huge, emoji, wrong types coerced by ProductRecord, raw-feed garbage."""
    return [
        ProductRecord(id="empty"),
        ProductRecord(id="huge", title="cotton " * 20_000, description="x" * 100_000, brand="B" * 50_000),
        ProductRecord(id="emoji", title="👟🔥 Running Shoes 👟", brand="🙂", description="💥💥💥"),
        ProductRecord(id=12345, title=67890, brand=3.5, category_path=["A", 7], gender="women", size=42),
        ProductRecord(id="punct", title="!!! ??? ---", description="   "),
        parse_record({"product_id": 7, "name": "<b>Blue &amp; Red</b> T-Shirt", "description": "<p></p>",
                      "category": "Clothing // Tops", "price": "1.299,00 €"}),
    ]


