"""The ridge linear probe (eval/linear_probe.py): it reads labels out of informative features only."""

import numpy as np

from aigc_jax.eval.linear_probe import probe_accuracy


def _features(rng, labels, signal: float):
    informative = signal * np.eye(10)[labels] + rng.normal(size=(len(labels), 10))
    return np.concatenate([informative, rng.normal(size=(len(labels), 22))], axis=1)


def test_probe_reads_informative_features_and_not_noise():
    rng = np.random.default_rng(0)
    train_y, test_y = rng.integers(0, 10, 600), rng.integers(0, 10, 200)
    strong = probe_accuracy(_features(rng, train_y, 4.0), train_y, _features(rng, test_y, 4.0), test_y)
    weak = probe_accuracy(_features(rng, train_y, 1.0), train_y, _features(rng, test_y, 1.0), test_y)
    noise = probe_accuracy(rng.normal(size=(600, 32)), train_y, rng.normal(size=(200, 32)), test_y)
    assert strong > 0.9 and weak > noise + 0.1
    assert noise < 0.2  # chance is 0.1


def test_probe_is_invariant_to_feature_scale():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 10, 400)
    x = _features(rng, y, 1.5)
    assert probe_accuracy(x[:300], y[:300], x[300:], y[300:]) == probe_accuracy(
        1e3 * x[:300] + 5.0, y[:300], 1e3 * x[300:] + 5.0, y[300:])
