"""train_ensemble's options (images, importance weights, combiners, errors) and the models CLI commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from models.config import FeatureConfig
from models.errors import ConfigError, DataError
from models.labels import LabelWeighting
from models.training import train_ensemble
from prodcat.commands.models import evaluate, predict, train
from prodcat.errors import ProdcatError
from tests.models.conftest import Sample

N = 300


@pytest.fixture(scope="module")
def small(sample: Sample) -> Sample:
    return Sample(sample.records[:N], sample.taxonomy, sample.y[:N], sample.images[:N])


def test_image_vectors_add_the_image_head(small: Sample, config: FeatureConfig) -> None:
    weights = np.linspace(0.5, 2.0, N)
    classifier = train_ensemble(small.records, small.taxonomy.from_matrix(small.y), small.taxonomy, config=config,
                                members=("logreg",), combiner="weighted", folds=2, epochs=2,
                                image_vectors=small.images, sample_weight=weights, keep_oof=True,
                                weighting=LabelWeighting(pu_correction=True))
    assert list(classifier.members) == ["logreg", "image_head"]
    assert classifier.training["importance_weights"] is True
    oof = classifier.oof_
    assert oof.member_probs.shape == (2, N, len(small.taxonomy))
    missing = np.isnan(small.images).any(axis=1)
    assert np.isnan(oof.member_probs[1][missing]).all()  # the image head abstains without an image
    assert len(np.intersect1d(oof.fit_idx, oof.val_idx)) == 0
    by_id = {str(r.id): v for r, v in zip(small.records[:20], small.images[:20])}
    probs, member_probs = classifier.predict_proba(small.records[:20], by_id)
    assert np.isfinite(probs).all() and np.isnan(member_probs[1][missing[:20]]).all()
    results = classifier.categorise_batch(small.records[:20], by_id)
    assert all(r.uncertainty is not None for r in results)
    # without any image vector the text member still answers
    assert np.isfinite(classifier.predict_proba(small.records[:5])[0]).all()


def test_mean_combiner_and_progress(small: Sample, config: FeatureConfig) -> None:
    seen: list[tuple[str, int, int]] = []
    classifier = train_ensemble(small.records, small.taxonomy.from_matrix(small.y), small.taxonomy,
                                config=config.with_fields(image={"kind": "drop"}), members=("logreg",),
                                combiner="mean", folds=2, epochs={"logreg": 2},
                                on_progress=lambda *step: seen.append(step))
    assert classifier.combiner.kind == "mean"
    assert seen[-1][0] == "done" and seen[-1][1] == seen[-1][2]


@pytest.mark.parametrize("kwargs, error", [
    ({"combiner": "median"}, ConfigError),
    ({"folds": 1}, ConfigError),
    ({"members": ("nope",)}, ConfigError),
    ({"sample_weight": np.ones(3)}, DataError),
])
def test_mistakes_are_reported(small: Sample, config: FeatureConfig, kwargs: dict, error: type) -> None:
    with pytest.raises(error):
        train_ensemble(small.records, small.taxonomy.from_matrix(small.y), small.taxonomy, config=config,
                       **{"members": ("logreg",), "epochs": 1, "folds": 2, **kwargs})


def test_label_sets_must_match_records(small: Sample, config: FeatureConfig) -> None:
    with pytest.raises(DataError, match="one label set per record"):
        train_ensemble(small.records, [set()], small.taxonomy, config=config)


# --- CLI ---------------------------------------------------------------------------------------


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(train)
    app.command()(evaluate)
    app.command()(predict)
    return app


def test_cli_train_evaluate_predict(datasets: Path, tmp_path: Path) -> None:
    catalogue = datasets / "flipkart" / "products_20k_name_tree.csv"
    runner = CliRunner()
    app = _app()
    result = runner.invoke(app, ["train", str(catalogue), "--preset", "flipkart-names", "--labels", "truth",
                                 "--registry", str(tmp_path), "--max-depth", "1", "--min-support", "20",
                                 "--members", "logreg", "--folds", "2", "--limit", "400"])
    assert result.exit_code == 0, result.output
    assert "registered" in result.output
    (model_dir,) = [p for p in tmp_path.iterdir() if p.name.startswith("model-")]
    result = runner.invoke(app, ["evaluate", str(model_dir), str(catalogue), "--preset", "flipkart-names",
                                 "--limit", "200"])
    assert result.exit_code == 0, result.output
    assert "micro" in result.output and "per-level F1" in result.output
    product = json.dumps({"id": "p1", "title": "Alisha Solid Women's Cycling Shorts"})
    result = runner.invoke(app, ["predict", str(model_dir), product])
    assert result.exit_code == 0, result.output
    assert "uncertainty" in result.output


def test_cli_mistakes_are_prodcat_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    app = _app()
    result = runner.invoke(app, ["train", str(tmp_path / "missing.csv")])
    assert isinstance(result.exception, ProdcatError) and "does not exist" in str(result.exception)
    result = runner.invoke(app, ["train", str(tmp_path), "--labels", "nope.jsonl"])
    assert isinstance(result.exception, ProdcatError)
    result = runner.invoke(app, ["predict", str(tmp_path / "no-model"), '{"id": "1", "title": "x"}'])
    assert isinstance(result.exception, ProdcatError) and "does not exist" in str(result.exception)
