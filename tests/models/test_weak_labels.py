"""Weak labels: the rules plus the semantic matcher, combined by the label model, reach a category
no rule labels. The bag-of-words encoder of test_semantic.py stands in for MiniLM."""

from __future__ import annotations

import numpy as np
import yaml

from models.semantic import SemanticMatcher
from models.weak_labels import seed_unlabelled, weak_labels
from prodcat.record import ProductRecord
from prodcat.rules import RuleSet
from prodcat.taxonomy import Taxonomy
from tests.models.test_semantic import WordsEncoder

TAXONOMY = Taxonomy.from_paths([["Footwear", "Sports Shoes"], ["Footwear", "Sandals"], ["Kitchen", "Cookware"],
                                ["Toys", "Scaled Models"]])
RULES = [{"id": "shoes", "category": "Footwear > Sports Shoes", "all": [{"field": "title", "word": "shoes"}]},
         {"id": "sandals", "category": "Footwear > Sandals", "all": [{"field": "title", "word": "sandals"}]},
         {"id": "cookware", "category": "Kitchen > Cookware", "all": [{"field": "title", "word": "pan"}]}]
TITLES = (["running sports shoes"] * 30 + ["beach sandals"] * 30 + ["cookware frying pan"] * 30
          + ["scaled model car"] * 30 + ["garden hose"] * 10)


def test_the_matcher_labels_a_category_no_rule_reaches() -> None:
    records = [ProductRecord(id=str(i), title=t) for i, t in enumerate(TITLES)]
    ruleset = RuleSet.from_yaml(yaml.safe_dump(RULES), TAXONOMY)
    weak = weak_labels(records, ruleset, TAXONOMY, matcher=SemanticMatcher(WordsEncoder(), threshold=0.4))

    models = TAXONOMY.find(["Toys", "Scaled Models"])
    assert not any(models in m.labels for m in ruleset.apply_many(records))  # no rule reaches it
    assert all(weak.label_sets[i] == {models, TAXONOMY.find(["Toys"])} for i in range(90, 120))
    assert all(weak.label_sets[i] == {TAXONOMY.find(["Footwear"]), TAXONOMY.find(["Footwear", "Sandals"])}
               for i in range(30, 60))  # the rules' labels stay where rules and matcher agree
    assert all(not weak.label_sets[i] for i in range(120, 130))  # nothing fired, nothing matched
    assert weak.weights.shape == weak.proba.shape == (len(records), len(TAXONOMY))
    assert ((weak.weights >= 0.5) & (weak.weights <= 1.0)).all()  # the weight of the side of 0.5 it is on
    assert {s.name for s in weak.sources} >= {"rule:shoes", "rule:sandals", "rule:cookware", "semantic:depth2"}
    assert weak.seeded == []  # every category got a label from a source


def test_a_category_no_source_labels_gets_its_most_similar_products_at_low_weight() -> None:
    taxonomy = Taxonomy.from_paths([["Toys", "Kites"], ["Toys", "Cars"], ["Kitchen"]])
    kites, cars, toys = taxonomy.find(["Toys", "Kites"]), taxonomy.find(["Toys", "Cars"]), taxonomy.find(["Toys"])
    y = np.zeros((6, len(taxonomy)), np.float32)
    y[0, [taxonomy.index(toys), taxonomy.index(cars)]] = 1.0  # cars and its parent are labelled once
    weights = np.full_like(y, 0.9)
    similarity = np.full_like(y, 0.1)
    similarity[[4, 2, 5], taxonomy.index(kites)] = [0.8, 0.7, 0.6]
    similarity[:, taxonomy.index(taxonomy.find(["Kitchen"]))] = -1.0  # empty texts: nothing to go on

    seeded = seed_unlabelled(y, weights, similarity, taxonomy, per_category=2, weight=0.5)

    assert seeded == [kites]  # Kitchen has no usable similarity; Toys and Cars have labels
    assert taxonomy.from_matrix(y > 0.5) == [{toys, cars}, set(), {toys, kites}, set(), {toys, kites}, set()]
    k, t = taxonomy.index(kites), taxonomy.index(toys)
    assert weights[[2, 4], k].tolist() == [0.5, 0.5] and weights[[2, 4], t].tolist() == [0.5, 0.5]
    assert weights[0, t] == np.float32(0.9)  # an existing label keeps its weight


def test_without_a_matcher_the_label_model_weighs_the_rules_alone() -> None:
    records = [ProductRecord(id=str(i), title=t) for i, t in enumerate(TITLES)]
    ruleset = RuleSet.from_yaml(yaml.safe_dump(RULES), TAXONOMY)
    weak = weak_labels(records, ruleset, TAXONOMY)
    assert not any(s.name.startswith("semantic") for s in weak.sources)
    closed = [TAXONOMY.close(s) for s in weak.label_sets]
    assert closed == weak.label_sets  # ancestors included
    assert np.allclose(weak.proba[90:], weak.proba[90])  # no vote on these: all at the prior


def test_an_uncalibrated_matcher_labels_only_what_no_rule_labels() -> None:
    records = [ProductRecord(id=str(i), title=t) for i, t in enumerate(TITLES)]
    ruleset = RuleSet.from_yaml(yaml.safe_dump(RULES), TAXONOMY)
    models = TAXONOMY.index(TAXONOMY.find(["Toys", "Scaled Models"]))
    # masked, the rule-labelled titles keep no category word: no threshold agrees with the rules at 0.9
    uncalibrated = SemanticMatcher(WordsEncoder(), target_precision=0.9)
    weak = weak_labels(records, ruleset, TAXONOMY, matcher=uncalibrated)
    assert not uncalibrated.calibrated_ and weak.matched is not None
    assert not weak.matched[:90].any()  # the rules fire there: the matcher stays out
    assert weak.matched[90:120, models].all()  # no rule fires on the model cars: the matcher labels them

    fixed = weak_labels(records, ruleset, TAXONOMY, matcher=SemanticMatcher(WordsEncoder(), threshold=0.35))
    assert fixed.matched is not None and fixed.matched[:30].any()  # a threshold the user set is trusted everywhere
