"""Regression for issue 13.4: the embedding members (GRU, TextCNN) trained as retraining trains them.

On Flipkart's true labels the GRU scored micro-F1 0.571 and TextCNN 0.821 against logreg's 0.942:
with a zero output bias every one of ~200 sigmoids starts at 0.5, and the small fixed epoch
budget went into pulling the biases down. Members trained on half the rows (out-of-fold, where the
thresholds are tuned) ended far less trained than the refit on all rows, so the thresholds did not
carry over. Here each member trains with its own default hyper-parameters (no learning-rate
override, no early stopping, class weights on) on the shared 500 real products and is scored on
the 100 held out, against logreg trained the same way. Measured (micro-F1 at 0.5, held out):
before the fix (zero bias, learning rate 1e-3) textcnn 0.376 and gru 0.462 vs logreg 0.608, both
failing; with it textcnn 0.728 and gru 0.737 vs logreg 0.583.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from models.labels import LabelWeighting
from models.members import create_member
from models.members.keras_member import prior_logits

TRAIN, HELD_OUT = slice(0, 500), slice(500, 600)
# One budget for all three (epochs x rows is what train_ensemble's fixed epochs give a member).
BUDGET = {"epochs": 8, "batch_size": 64, "seed": 0}


def rows(features: dict[str, np.ndarray], index: slice) -> dict[str, np.ndarray]:
    return {name: array[index] for name, array in features.items()}


@pytest.fixture(scope="module")
def held_out_f1(sample, featuriser, features) -> dict[str, float]:
    y = sample.y[TRAIN]
    weights = LabelWeighting().compute(y, sample.taxonomy)._asdict()
    out = {}
    for name in ("logreg", "textcnn", "gru"):
        member = create_member(name, featuriser, **BUDGET).fit(rows(features, TRAIN), y, **weights)
        p = member.predict_proba(rows(features, HELD_OUT))
        out[name] = float(f1_score(sample.y[HELD_OUT], p > 0.5, average="micro", zero_division=0))
    print("held-out micro-F1 at 0.5:", {k: round(v, 3) for k, v in out.items()})
    return out


@pytest.mark.parametrize("name", ["textcnn", "gru"])
def test_embedding_member_close_to_logreg(name, held_out_f1):
    assert held_out_f1[name] >= held_out_f1["logreg"] - 0.10, held_out_f1


def test_output_bias_starts_at_the_class_log_odds(sample, featuriser, features):
    """One tiny step leaves the outputs at the (weighted) class priors, not at 0.5."""
    y = sample.y[TRAIN]
    member = create_member("gru", featuriser, epochs=1, batch_size=500, learning_rate=1e-9, dropout=0.0, seed=0)
    member.fit(rows(features, TRAIN), y)
    p = member.predict_proba(rows(features, TRAIN))
    prior = 1.0 / (1.0 + np.exp(-prior_logits(y, np.ones_like(y))))
    # the words still move each row a little around the prior; the mean over rows stays on it
    np.testing.assert_allclose(p.mean(axis=0), prior, atol=0.02)  # measured 0.002; a zero bias: 0.49
