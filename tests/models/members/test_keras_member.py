"""The shared Keras training loop: how row, entry and class weights combine and reach the loss."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from models.errors import DataError
from models.members.keras_member import EntryBCE, entry_weights


def test_entry_weights_combine_row_entry_and_class_weights():
    y = np.array([[1, 0], [0, 1]], dtype=np.float32)
    assert entry_weights(y, None, None).tolist() == [[1, 1], [1, 1]]
    assert entry_weights(y, np.array([2.0, 0.5]), np.array([3.0, 4.0])).tolist() == [[6, 2], [0.5, 2]]
    assert entry_weights(y, np.array([[0.5, 0.25], [1, 1]]), None).tolist() == [[0.5, 0.25], [1, 1]]
    with pytest.raises(DataError, match=r"sample_weight of shape \(2,\) or \(2, 2\), received \(3,\)"):
        entry_weights(y, np.ones(3), None)
    with pytest.raises(DataError, match=r"class_weight_vector of shape \(2,\), received \(3,\)"):
        entry_weights(y, None, np.ones(3))


def test_entry_weights_reach_each_class_in_training():
    """A class whose entries all weigh 0 gets no gradient; the loss is the weighted mean over entries."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 5)).astype(np.float32)
    y = (rng.random((256, 3)) < 0.3).astype(np.float32)
    w = np.ones((256, 3), dtype=np.float32)
    w[:, 0] = 0.0
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5,))
    dense = keras.layers.Dense(3, activation="sigmoid")
    model = keras.Model(inputs, dense(inputs))
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=EntryBCE())
    before = np.asarray(dense.kernel).copy()
    model.fit(x, y, sample_weight=w, epochs=3, batch_size=32, verbose=0)
    after = np.asarray(dense.kernel)
    assert np.array_equal(after[:, 0], before[:, 0]) and not np.array_equal(after[:, 1], before[:, 1])
    p = model.predict(x, verbose=0)
    manual = (-(y * np.log(p) + (1 - y) * np.log(1 - p)) * w).mean()
    assert model.evaluate(x, y, sample_weight=w, verbose=0) == pytest.approx(manual, rel=1e-4)
