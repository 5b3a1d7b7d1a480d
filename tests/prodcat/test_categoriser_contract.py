"""The Categoriser contract, run over every categoriser in the registry: no one is exempt from a check.

What the stream relies on, whichever categoriser is announced: one Categorisation per record, in
order; categories that are ids of the categoriser's taxonomy, closed under ancestors; scores in
[0, 1]; an empty batch gives []; and a failure raises, never a silent "no category" (the error
policy dead-letters the record it belongs to). A new implementation is covered by adding a
builder to ``CATEGORISERS``.

The classifier trains once per module on 160 synthetic products (one quick logreg member), so
the suite stays fast and needs no dataset.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from models.classifier import Classifier
from models.training import train_ensemble
from prodcat.categoriser import Categorisation, Categoriser
from prodcat.errors import ProdcatError
from prodcat.record import ProductRecord
from prodcat.rules import RuleCategoriser, RuleSet
from prodcat.taxonomy import Taxonomy, path_id
from tests.helpers import implementations

TAXONOMY = Taxonomy.from_paths([("Clothing", "Shorts"), ("Clothing", "Shirts"), ("Footwear", "Sneakers")])
RULES = """
- id: shorts
  category: Clothing > Shorts
  all: [{field: title, word: shorts}]
- id: shirts
  category: Clothing > Shirts
  all: [{field: title, word: shirt}]
- id: sneakers
  category: Footwear > Sneakers
  any: [{field: title, word: sneaker}, {field: category, word: sneakers}]
"""
KINDS = {("Clothing", "Shorts"): "running shorts", ("Clothing", "Shirts"): "cotton shirt",
         ("Footwear", "Sneakers"): "white sneaker"}


def records() -> list[ProductRecord]:
    """Products of every kind, some without a title, some with noise or nothing a model knows."""
    titles = [*KINDS.values(), None, "", "👟🔥", "unknown gadget", "shorts and a shirt"]
    return [ProductRecord(id=f"p{i}", title=title, brand="acme") for i, title in enumerate(titles * 3)]


def rules() -> Categoriser:
    return RuleCategoriser(RuleSet.from_yaml(RULES, TAXONOMY))


def classifier() -> Categoriser:
    rng = np.random.default_rng(0)
    train, labels = [], []
    for i in range(160):
        path = list(KINDS)[i % len(KINDS)]
        noise = " ".join(rng.choice(["blue", "red", "men", "women", "sale", "new"], size=2))
        train.append(ProductRecord(id=f"t{i}", title=f"{KINDS[path]} {noise}", brand="acme"))
        labels.append({path_id(path)})
    return train_ensemble(train, labels, TAXONOMY, members=("logreg",), combiner="mean", folds=2,
                          epochs=3, seed=0)


# every Categoriser of the project, by class: the builder gives a working instance
CATEGORISERS: dict[type[Categoriser], Callable[[], Categoriser]] = {RuleCategoriser: rules, Classifier: classifier}


@pytest.fixture(scope="module", params=list(CATEGORISERS), ids=lambda cls: cls.__name__)
def categoriser(request) -> Categoriser:
    built = CATEGORISERS[request.param]()
    assert type(built) is request.param
    return built


class Broken:
    """A record whose fields cannot be read: stands for any failure inside a categoriser."""

    id = "broken"

    def __getattr__(self, name: str):
        raise RuntimeError(f"corrupt field {name}")


def test_registry_covers_every_categoriser_in_the_project() -> None:
    assert set(CATEGORISERS) == implementations(Categoriser)


def test_names_its_version_and_taxonomy(categoriser: Categoriser) -> None:
    assert isinstance(categoriser.version, str) and categoriser.version
    assert isinstance(categoriser.taxonomy, Taxonomy) and len(categoriser.taxonomy) > 0


def test_one_categorisation_per_record_in_order(categoriser: Categoriser) -> None:
    batch = records()
    out = categoriser.categorise_batch(batch)
    assert len(out) == len(batch) and all(isinstance(c, Categorisation) for c in out)
    # in order: each record categorised alone gets what it got in the batch
    alone = [categoriser.categorise_batch([record])[0] for record in batch[:7]]
    assert [c.categories for c in alone] == [c.categories for c in out[:7]]
    reversed_out = categoriser.categorise_batch(batch[::-1])
    assert [c.categories for c in reversed_out] == [c.categories for c in out[::-1]]


def test_categories_are_taxonomy_ids_closed_under_ancestors(categoriser: Categoriser) -> None:
    taxonomy = categoriser.taxonomy
    out = categoriser.categorise_batch(records())
    assert any(c.categories for c in out), "the contract needs a categoriser that decides something"
    for c in out:
        assert set(c.categories) <= set(taxonomy.ids)
        assert set(c.categories) == taxonomy.close(c.categories)
        assert len(set(c.categories)) == len(c.categories)


def test_scores_and_signals_are_in_the_unit_interval(categoriser: Categoriser) -> None:
    for c in categoriser.categorise_batch(records()):
        assert set(c.scores) <= set(categoriser.taxonomy.ids)
        assert set(c.categories) <= set(c.scores), "every decided category has its score"
        assert all(0.0 <= s <= 1.0 for s in c.scores.values())
        assert set(c.explanation) <= set(c.categories)
        for signal in (c.uncertainty, c.disagreement):
            assert signal is None or 0.0 <= signal <= 1.0


def test_an_empty_batch_gives_an_empty_list(categoriser: Categoriser) -> None:
    assert categoriser.categorise_batch([]) == []
    assert categoriser.categorise_batch([], {}) == []


def test_image_vectors_it_cannot_use_are_ignored(categoriser: Categoriser) -> None:
    batch = records()[:4]
    with_vectors = categoriser.categorise_batch(batch, {"p0": np.ones(3, np.float32), "nobody": np.ones(3)})
    assert [c.categories for c in with_vectors] == [c.categories for c in categoriser.categorise_batch(batch)]


def test_a_failure_raises_instead_of_giving_no_category(categoriser: Categoriser) -> None:
    # the failure itself, or the project's error naming it (a classifier checks its input first)
    with pytest.raises((RuntimeError, ProdcatError), match="corrupt field|Broken at position 2"):
        categoriser.categorise_batch([*records()[:2], Broken()])  # type: ignore[list-item]
    # and the categoriser still works afterwards
    assert len(categoriser.categorise_batch(records()[:2])) == 2
