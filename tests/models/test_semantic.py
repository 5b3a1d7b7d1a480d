"""The semantic matcher: category texts (path, synonyms, description from the taxonomy file), the
best match plus ancestors, the threshold calibrated on rule labels, save/load. A bag-of-words
encoder stands in for MiniLM (tests/embedder/test_minilm.py tests the real one), so these are fast."""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from models.errors import ConfigError, DataError, NotFittedError
from models.semantic import (
    FALLBACK_THRESHOLD,
    CategoryDescription,
    SemanticMatcher,
    calibrate_threshold,
    category_texts,
    mask_words,
    product_text,
    read_category_descriptions,
)
from prodcat.record import ProductRecord
from prodcat.taxonomy import Taxonomy


class WordsEncoder:
    """Hashed bag of lower-case words (singular), L2-normalised: similar texts share words."""

    version = "words-v1"
    dim = 256

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"[a-z]+", text.lower()):
                out[i, zlib.crc32(word.rstrip("s").encode()) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


@pytest.fixture
def taxonomy() -> Taxonomy:
    return Taxonomy.from_paths([["Footwear", "Sports Shoes"], ["Footwear", "Sandals"], ["Kitchen", "Cookware"],
                                ["Kitchen", "Cutlery"], ["Toys", "Scaled Models"]])


def _records(titles: Sequence[str]) -> list[ProductRecord]:
    return [ProductRecord(id=str(i), title=t) for i, t in enumerate(titles)]


def _col(tax: Taxonomy, *path: str) -> int:
    return tax.index(tax.find(list(path)))


def test_descriptions_are_optional_keys_of_the_taxonomy_file(taxonomy: Taxonomy, tmp_path: Path) -> None:
    data = json.loads(taxonomy.to_json())
    models = taxonomy.find(["Toys", "Scaled Models"])
    for node in data["nodes"]:
        if node["id"] == models:
            node["synonyms"] = ["die cast car", " model train "]
            node["description"] = "miniature vehicles built to scale"
    path = tmp_path / "taxonomy.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert Taxonomy.from_json(path.read_text(encoding="utf-8")) == taxonomy  # older readers are unaffected
    found = read_category_descriptions(path, taxonomy)
    assert found == {models: CategoryDescription(("die cast car", "model train"), "miniature vehicles built to scale")}
    assert read_category_descriptions(taxonomy.to_json(), taxonomy) == {}  # a file without them
    texts, columns = category_texts(taxonomy, found)
    mine = [t for t, c in zip(texts, columns, strict=True) if c == taxonomy.index(models)]
    assert mine == ["Toys Scaled Models", "die cast car", "model train",
                    "Toys Scaled Models: miniature vehicles built to scale"]
    node = next(n for n in data["nodes"] if n["id"] == models)
    node["synonyms"] = "die cast car"
    with pytest.raises(DataError, match="expected 'synonyms' as a list"):
        read_category_descriptions(json.dumps(data), taxonomy)
    node["synonyms"], node["id"] = [], "c0000000000"
    with pytest.raises(DataError, match="not in the taxonomy"):
        read_category_descriptions(json.dumps(data), taxonomy)


def test_best_match_with_ancestors_and_synonyms(taxonomy: Taxonomy) -> None:
    described = {taxonomy.find(["Toys", "Scaled Models"]): CategoryDescription(("die cast car",))}
    matcher = SemanticMatcher(WordsEncoder(), threshold=0.3).fit(taxonomy, descriptions=described)
    records = _records(["Nike running sports shoes", "die cast car red", "stainless steel cookware set", "zzz", ""])
    labels = matcher.predict(records)
    assert set(np.flatnonzero(labels[0])) == {_col(taxonomy, "Footwear"), _col(taxonomy, "Footwear", "Sports Shoes")}
    assert set(np.flatnonzero(labels[1])) == {_col(taxonomy, "Toys"), _col(taxonomy, "Toys", "Scaled Models")}
    assert labels[2, _col(taxonomy, "Kitchen", "Cookware")] and labels[2, _col(taxonomy, "Kitchen")]
    assert not labels[3].any() and not labels[4].any()  # nothing similar enough; nothing to match
    proba = matcher.predict_proba(records)
    assert ((proba > 0) == labels).all()  # no calibration curve: the similarity itself
    sim = matcher.similarity(records)
    assert sim.shape == (5, len(taxonomy)) and (sim[4] == -1).all()


def test_threshold_calibrated_on_rule_labels(taxonomy: Taxonomy) -> None:
    titles = (["sports shoes"] * 60 + ["cookware pan"] * 60 + ["shoes cookware cutlery sandals"] * 60
              + ["sandals"] * 60 + ["cutlery set"] * 60)
    records = _records(titles)
    rules = np.zeros((len(records), len(taxonomy)), dtype=bool)
    rules[:60, [_col(taxonomy, "Footwear"), _col(taxonomy, "Footwear", "Sports Shoes")]] = True
    rules[60:120, [_col(taxonomy, "Kitchen"), _col(taxonomy, "Kitchen", "Cookware")]] = True
    rules[120:180, [_col(taxonomy, "Toys"), _col(taxonomy, "Toys", "Scaled Models")]] = True  # the matcher is wrong
    rules[180:240, [_col(taxonomy, "Footwear"), _col(taxonomy, "Footwear", "Sandals")]] = True
    rules[240:, _col(taxonomy, "Kitchen")] = True  # stops above the match: it cannot judge "Kitchen > Cutlery"
    # unmasked: these titles are nothing but their categories' words
    matcher = SemanticMatcher(WordsEncoder(), target_precision=0.9, mask_rule_words=False).fit(
        taxonomy, records=records, rule_labels=rules)
    sim = matcher.similarity(records).max(axis=1)
    assert sim[120] < matcher.threshold_ <= min(sim[0], sim[60])  # the right matches pass, the wrong ones do not
    assert matcher.calibration_["precision_vs_rules"] >= 0.9 and matcher.calibration_["products"] == 240
    proba = matcher.predict_proba(records)
    assert proba[0].max() == pytest.approx(1.0) and not proba[120].any()
    with pytest.raises(ConfigError, match="calibrate the threshold"):
        SemanticMatcher(WordsEncoder()).fit(taxonomy)


def test_calibration_masks_the_words_the_rules_read(taxonomy: Taxonomy) -> None:
    assert mask_words("Women's Cotton Kurtas (Blue)", ["Clothing", "Women's Clothing", "Kurtas"]) == "Cotton (Blue)"
    assert mask_words("Stainless Steel Cookware", ["Kitchen", "Cookware"]) == "Stainless Steel"
    # "pan" is no category word: masked, the cookware titles still match Cookware; the shoe titles
    # ("sports shoes" under Sports Shoes) have nothing left and drop out of the calibration
    records = _records(["sports shoes"] * 60 + ["cookware pan"] * 60)
    rules = np.zeros((len(records), len(taxonomy)), dtype=bool)
    rules[:60, [_col(taxonomy, "Footwear"), _col(taxonomy, "Footwear", "Sports Shoes")]] = True
    rules[60:, [_col(taxonomy, "Kitchen"), _col(taxonomy, "Kitchen", "Cookware")]] = True
    described = {taxonomy.find(["Kitchen", "Cookware"]): CategoryDescription(("pan",))}
    matcher = SemanticMatcher(WordsEncoder(), target_precision=0.9).fit(taxonomy, records=records, rule_labels=rules,
                                                                        descriptions=described)
    assert matcher.calibration_["products"] == 60 and matcher.threshold_ == pytest.approx(1.0)


def test_a_calibration_that_finds_no_threshold_falls_back_and_says_so(taxonomy: Taxonomy, tmp_path: Path) -> None:
    records = _records(["sports shoes"] * 60 + ["cookware pan"] * 60)
    rules = np.zeros((len(records), len(taxonomy)), dtype=bool)
    rules[:, [_col(taxonomy, "Toys"), _col(taxonomy, "Toys", "Scaled Models")]] = True  # every match disagrees
    matcher = SemanticMatcher(WordsEncoder(), mask_rule_words=False).fit(taxonomy, records=records, rule_labels=rules)
    assert not matcher.calibrated_ and matcher.calibration_["calibrated"] is False
    assert matcher.threshold_ == FALLBACK_THRESHOLD and matcher.predict(records[:1])[0, _col(taxonomy, "Footwear")]
    matcher.save(tmp_path / "m")
    assert not SemanticMatcher.load(tmp_path / "m", WordsEncoder()).calibrated_
    good = np.zeros_like(rules)
    good[:60, [_col(taxonomy, "Footwear"), _col(taxonomy, "Footwear", "Sports Shoes")]] = True
    good[60:, [_col(taxonomy, "Kitchen"), _col(taxonomy, "Kitchen", "Cookware")]] = True
    matcher.fit(taxonomy, records=records, rule_labels=good)  # a refit that calibrates is trusted again
    assert matcher.calibrated_ and matcher.threshold_ != FALLBACK_THRESHOLD


def test_calibrate_threshold() -> None:
    sim = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    hits = np.array([2, 2, 2, 1, 0, 0])
    pairs = np.full(6, 2)
    assert calibrate_threshold(sim, hits, pairs, 0.9, min_matches=1) == 0.7  # 6/6 above 0.7, 7/8 at 0.6
    assert calibrate_threshold(sim, hits, pairs, 0.8, min_matches=1) == 0.6
    assert calibrate_threshold(sim, hits, pairs, 0.9, min_matches=4) == float("inf")


def test_save_load_round_trip(taxonomy: Taxonomy, tmp_path: Path) -> None:
    records = _records(["sports shoes"] * 60 + ["cookware pan"] * 60)
    rules = np.zeros((len(records), len(taxonomy)), dtype=bool)
    rules[:60, _col(taxonomy, "Footwear")] = True
    rules[60:, _col(taxonomy, "Kitchen")] = True
    matcher = SemanticMatcher(WordsEncoder(), target_precision=0.6).fit(taxonomy, records=records, rule_labels=rules)
    matcher.save(tmp_path / "m")
    loaded = SemanticMatcher.load(tmp_path / "m", WordsEncoder())
    assert loaded.threshold_ == matcher.threshold_ and loaded.taxonomy_ == taxonomy
    np.testing.assert_allclose(loaded.predict_proba(records), matcher.predict_proba(records))

    class Other(WordsEncoder):
        version = "words-v2"

    with pytest.raises(ConfigError, match="refit the matcher"):
        SemanticMatcher.load(tmp_path / "m", Other())
    with pytest.raises(NotFittedError):
        SemanticMatcher(WordsEncoder(), threshold=0.5).predict(records)


def test_product_text_and_config_errors() -> None:
    record = ProductRecord(id="1", title="Air Zoom", brand="Nike", category="Shoes > Running")
    assert product_text(record) == "Air Zoom. Nike. Shoes > Running"
    assert product_text(record, ("title",)) == "Air Zoom"
    with pytest.raises(ConfigError, match="fields of a ProductRecord"):
        SemanticMatcher(WordsEncoder(), fields=("colour",))
    with pytest.raises(ConfigError, match="target_precision"):
        SemanticMatcher(WordsEncoder(), target_precision=1.5)
