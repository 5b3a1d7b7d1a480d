"""`prodcat train` says what it is scored against: --holdout scores held-out truth, --rules trains from a user's rules.

A small catalogue (JSONL, in ``tmp_path``) whose sandals are mostly called "flip flops": the
rules generated from the category names miss them, a user's edited rule file catches them. The
real CLI entry point runs in this process (one logreg member, two folds: seconds).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml

from prodcat.cli import run

KINDS = {
    "Clothing > Shirts": ["shirt", "oxford shirt", "linen shirt"],
    "Clothing > Jeans": ["jeans", "denim jeans", "skinny jeans"],
    "Footwear > Sandals": ["flip flop", "beach flip flop", "sandal"],
    "Footwear > Boots": ["boots", "ankle boots", "hiking boots"],
}
ADJECTIVES = ["classic", "slim", "soft", "light", "premium", "everyday", "organic", "vintage"]
PER_KIND = 40
COMMON = ["--members", "logreg", "--folds", "2", "--min-support", "5", "--json"]


def write_catalogue(path: Path, *, with_categories: bool = True) -> Path:
    rng = random.Random(3)
    with path.open("w", encoding="utf-8") as out:
        for n in range(PER_KIND * len(KINDS)):
            category = list(KINDS)[n % len(KINDS)]
            title = f"{rng.choice(ADJECTIVES).capitalize()} {rng.choice(KINDS[category])}"
            row = {"id": f"p{n}", "title": title, **({"category": category} if with_categories else {})}
            out.write(json.dumps(row) + "\n")
    return path


def train(args: list[str], tmp_path: Path, capsys) -> dict:
    code = run(["train", *args, "--registry", str(tmp_path / "models"), *COMMON])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


@pytest.fixture
def catalogue(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("PRODCAT_STATE_DIR", str(tmp_path / "state"))
    return write_catalogue(tmp_path / "shop.jsonl")


def test_holdout_scores_the_held_out_products_against_the_catalogues_categories(catalogue, tmp_path, capsys):
    result = train([str(catalogue), "--labels", "truth", "--holdout", "0.25"], tmp_path, capsys)
    holdout = result["holdout"]
    assert holdout["products"] == 40 and result["products"] == 120  # 160 products, a quarter held out
    assert holdout["against"] == "the catalogue's own categories"
    assert set(holdout["scores"]) == {"model"}  # no rules took part
    assert holdout["scores"]["model"]["n_products"] == 40
    assert result["validation"]["against"] == "the catalogue's own categories"
    # the same numbers as `evaluate` gives the registered model on exactly the held-out products
    held = set(holdout["ids"])
    rows = [line for line in catalogue.read_text().splitlines() if json.loads(line)["id"] in held]
    assert len(rows) == 40
    (tmp_path / "held.jsonl").write_text("\n".join(rows) + "\n")
    assert run(["evaluate", result["path"], str(tmp_path / "held.jsonl"), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)["metrics"]
    assert evaluated == pytest.approx(holdout["scores"]["model"])


def test_holdout_is_the_same_split_every_time(catalogue, tmp_path, capsys):
    first = train([str(catalogue), "--labels", "truth", "--holdout", "0.25"], tmp_path, capsys)
    second = train([str(catalogue), "--labels", "truth", "--holdout", "0.25"], tmp_path, capsys)
    assert first["holdout"]["ids"] == second["holdout"]["ids"]
    assert first["holdout"]["scores"] == second["holdout"]["scores"]  # seeded training too


def test_rules_trains_from_the_users_rule_file(catalogue, tmp_path, capsys):
    rules, taxonomy = tmp_path / "rules.yaml", tmp_path / "taxonomy.json"
    assert run(["rules", "generate", str(catalogue), "--rules", str(rules), "--taxonomy", str(taxonomy),
                "--min-support", "5"]) == 0
    capsys.readouterr()
    generated = train([str(catalogue), "--holdout", "0.25"], tmp_path, capsys)
    assert generated["validation"]["against"] == "the labels of rules generated from the category names"

    edited = yaml.safe_load(rules.read_text())
    assert any(rule["category"] == "Footwear > Sandals" for rule in edited)  # rules generate names paths
    edited.append({"id": "flip-flops", "category": "Footwear > Sandals",
                   "all": [{"field": "title", "phrase": "flip flop"}]})
    rules.write_text(yaml.safe_dump(edited))
    own = train([str(catalogue), "--rules", str(rules), "--taxonomy", str(taxonomy), "--holdout", "0.25"],
                tmp_path, capsys)
    assert own["validation"]["against"] == f"the labels of the rules in {rules}"
    # the same held-out products, scored for the rules themselves and for the model they taught
    generated_rules, own_rules = generated["holdout"]["scores"]["rules"], own["holdout"]["scores"]["rules"]
    assert own_rules["micro_recall"] > generated_rules["micro_recall"] + 0.1
    assert own["holdout"]["scores"]["model"]["micro_f1"] > generated["holdout"]["scores"]["model"]["micro_f1"]


def test_rules_and_taxonomy_from_rules_generate_match_train_by_default(catalogue, tmp_path, capsys):
    """Without --taxonomy, train derives the same tree `rules generate` wrote with the same options."""
    rules = tmp_path / "rules.yaml"
    assert run(["rules", "generate", str(catalogue), "--rules", str(rules), "--taxonomy",
                str(tmp_path / "taxonomy.json"), "--min-support", "5"]) == 0
    capsys.readouterr()
    result = train([str(catalogue), "--rules", str(rules)], tmp_path, capsys)
    assert result["categories"] == 6 and "holdout" not in result


@pytest.mark.parametrize(("extra", "expected"), [
    (["--labels", "truth", "--rules", "{tmp}/rules.yaml"], "--rules labels the products, so it goes with --labels rules"),
    (["--rules", "{tmp}/missing.yaml"], "--rules: file {tmp}/missing.yaml does not exist"),
    (["--taxonomy", "{tmp}/missing.json"], "--taxonomy: file {tmp}/missing.json does not exist"),
    (["--rules", "{tmp}/rules.yaml"], "unknown category 'Toys > Kites'"),
    (["--taxonomy", "{tmp}/rules.yaml"], "--taxonomy: {tmp}/rules.yaml: taxonomy snapshot is not JSON"),
    (["--holdout", "0"], "--holdout: expected a fraction of the products above 0 and at most 0.9, received 0"),
    (["--holdout", "0.95"], "received 0.95"),
    (["--holdout", "half"], "'--holdout'"),
])
def test_train_option_mistakes_are_one_line(extra, expected, catalogue, tmp_path, capsys):
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump([{"id": "kites", "category": "Toys > Kites",
                                                          "all": [{"field": "title", "word": "kite"}]}]))
    code = run(["train", str(catalogue), *[a.replace("{tmp}", str(tmp_path)) for a in extra], *COMMON])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    (line,) = captured.err.strip().splitlines()
    assert expected.replace("{tmp}", str(tmp_path)) in " ".join(line.split()) or expected in line, line
    if "unknown category" in expected:
        assert "pass the --taxonomy file written with them" in line


def test_holdout_needs_the_catalogues_categories(catalogue, tmp_path, capsys):
    """Labels from a file, a taxonomy from a file, and no category in the catalogue: nothing to score against."""
    taxonomy = tmp_path / "taxonomy.json"
    assert run(["rules", "generate", str(catalogue), "--rules", str(tmp_path / "rules.yaml"), "--taxonomy",
                str(taxonomy), "--min-support", "5"]) == 0
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"id": f"p{n}", "categories": [list(KINDS)[n % len(KINDS)]]}) + "\n"
                              for n in range(PER_KIND * len(KINDS))))
    bare = write_catalogue(tmp_path / "bare.jsonl", with_categories=False)
    capsys.readouterr()
    code = run(["train", str(bare), "--labels", str(labels), "--taxonomy", str(taxonomy), "--holdout", "0.25",
                *COMMON, "--registry", str(tmp_path / "models")])
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert "--holdout scores against the catalogue's own category paths" in " ".join(captured.err.split())
    # the same without --holdout trains: the file's labels on the file's taxonomy
    assert train([str(bare), "--labels", str(labels), "--taxonomy", str(taxonomy)], tmp_path, capsys)[
        "validation"]["against"] == f"the labels of {labels}"


def test_weak_labels_train_from_the_rules_and_the_semantic_matcher(catalogue, tmp_path, capsys):
    """--labels weak: the installed MiniLM encoder matches titles to categories, the label model weighs it."""
    result = train([str(catalogue), "--labels", "weak", "--holdout", "0.25"], tmp_path, capsys)
    assert result["validation"]["against"] == ("the label model over rules generated from the category names "
                                               "and the semantic matcher")
    assert set(result["holdout"]["scores"]) == {"model", "rules"}


def test_self_training_rounds_run_before_the_final_fit_and_are_reported(catalogue, tmp_path, capsys):
    result = train([str(catalogue), "--self-training", "2", "--holdout", "0.25"], tmp_path, capsys)
    assert result["validation"]["against"] == ("the labels of rules generated from the category names, "
                                               "then 2 rounds of self-training")
    rounds = result["self_training"]
    assert 1 <= len(rounds) <= 2 and [r["round"] for r in rounds] == list(range(1, len(rounds) + 1))
    assert all(r["added_pairs"] >= r["added_products"] >= 0 for r in rounds)
    assert len(rounds) == 2 or rounds[-1]["added_pairs"] == 0  # it stops early only when a round adds nothing
