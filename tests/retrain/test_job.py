"""A retraining round's logic without services: targets, holdout, the promotion gate."""

from __future__ import annotations

import json

import pytest

from prodcat.record import ProductRecord
from prodcat.rules import RuleCategoriser, RuleSet
from prodcat.taxonomy import Taxonomy
from retrain.job import GatePolicy, importance_summary, in_holdout, run_round, training_targets
from retrain.resolution import ProductLabels

TAXONOMY = Taxonomy.from_paths([("Clothing", "Shorts"), ("Clothing", "Shirts"), ("Footwear", "Sneakers")])
SHORTS, SHIRTS = TAXONOMY.find(["Clothing", "Shorts"]), TAXONOMY.find(["Clothing", "Shirts"])
CLOTHING, SNEAKERS = TAXONOMY.find(["Clothing"]), TAXONOMY.find(["Footwear", "Sneakers"])

NARROW = "- {id: shorts, category: Clothing > Shorts, all: [{field: title, word: shorts}]}\n"
BROAD = NARROW + "- {id: shirts, category: Clothing > Shirts, all: [{field: title, word: shirt}]}\n"


def rules(text: str, version: str) -> RuleCategoriser:
    return RuleCategoriser(RuleSet.from_yaml(text, TAXONOMY), version=version)


def products(n: int) -> tuple[list[ProductRecord], dict[str, ProductLabels]]:
    records, human = [], {}
    for i in range(n):
        kind = ("shorts", SHORTS) if i % 2 else ("shirt", SHIRTS)
        records.append(ProductRecord(id=f"p{i}", title=f"Cotton {kind[0]} {i}"))
        human[f"p{i}"] = ProductLabels(positives=frozenset({kind[1]}), negatives=frozenset())
    return records, human


def test_holdout_is_stable_and_about_the_share():
    ids = [f"p{i}" for i in range(2000)]
    first = {i for i in ids if in_holdout(i, 0.3)}
    assert first == {i for i in ids if in_holdout(i, 0.3)}
    assert 0.25 < len(first) / len(ids) < 0.35


def test_human_labels_override_rule_labels_and_positives_bring_ancestors():
    rule = {"a": {SHORTS, CLOTHING}, "b": {SHIRTS, CLOTHING}}
    human = {"a": ProductLabels(positives=frozenset({SNEAKERS}), negatives=frozenset({SHORTS})),
             "c": ProductLabels(positives=frozenset({SHIRTS}), negatives=frozenset())}
    targets = training_targets(rule, human, TAXONOMY)
    assert targets["a"] == {CLOTHING, SNEAKERS, TAXONOMY.find(["Footwear"])}
    assert targets["b"] == {SHIRTS, CLOTHING}
    assert targets["c"] == {SHIRTS, CLOTHING}


def test_a_better_candidate_is_promoted_and_a_worse_one_is_not():
    records, human = products(200)
    narrow, broad = rules(NARROW, "narrow"), rules(BROAD, "broad")
    policy = GatePolicy(min_holdout=10)
    seen = {}

    def train(recs, labels, taxonomy, weights):
        seen["ids"] = {r.id for r in recs}
        return broad

    report, candidate = run_round(records, {}, human, narrow, policy=policy, train=train)
    assert report.promoted and candidate is broad, report.reason
    assert report.candidate_metrics["micro_f1"] > report.current_metrics["micro_f1"]
    held = {r.id for r in records if in_holdout(r.id, policy.holdout_share)}
    assert held and not (held & seen["ids"]), "held-out products are never trained on"

    worse, _ = run_round(records, {}, human, broad, policy=policy, train=lambda *a: narrow)
    assert not worse.promoted and "not better" in worse.reason


def test_failed_training_is_reported_not_promoted():
    records, human = products(100)

    def broken(*_args):
        raise RuntimeError("out of memory")

    report, candidate = run_round(records, {}, human, rules(NARROW, "n"), policy=GatePolicy(min_holdout=5),
                                  train=broken)
    assert candidate is None and not report.promoted and "out of memory" in report.reason


def test_too_small_a_holdout_never_promotes():
    records, human = products(10)
    report, _ = run_round(records, {}, human, rules(NARROW, "n"), policy=GatePolicy(min_holdout=50),
                          train=lambda *a: rules(BROAD, "b"))
    assert not report.promoted and "needs 50" in report.reason


def test_the_report_keeps_the_importance_weights_of_the_labelled_training_products():
    records, human = products(40)
    records.append(ProductRecord(id="rules-only", title="Cotton shorts"))  # no human label: not counted
    importance = {pid: (2.0 if i % 4 == 0 else 0.5) for i, pid in enumerate(human)}
    report, _ = run_round(records, {"rules-only": {SHORTS}}, human, rules(NARROW, "n"),
                          policy=GatePolicy(min_holdout=1), train=lambda *a: rules(BROAD, "b"), importance=importance)
    trained = [pid for pid in human if not in_holdout(pid, 0.3)]
    w = [importance[pid] for pid in trained]
    assert report.importance == pytest.approx({"n": len(trained), "min": 0.5, "max": 2.0, "mean": sum(w) / len(w),
                                               "effective": sum(w) ** 2 / sum(x * x for x in w)})
    assert json.loads(report.to_json())["importance"]["n"] == len(trained)


def test_importance_summary_of_equal_and_of_no_weights():
    assert importance_summary(["a", "b", "c"], {}) == {"n": 3, "min": 1.0, "max": 1.0, "mean": 1.0, "effective": 3.0}
    assert importance_summary([], {"a": 2.0}) == {"n": 0}
