"""Linear-probe accuracy of frozen features: how much of the label a representation makes linear.

As big_vision's few-shot evaluator does, the probe is closed-form ridge regression onto one-hot
targets (centred to -1/+1), not an iteratively trained logistic regression: no learning rate, no
steps, no randomness, so two encoders are compared by their features alone. Features are
standardised with the train split's statistics first, so `l2` means the same for any encoder.
"""

import numpy as np

L2 = 1e-2  # ridge penalty on standardised features (per train example)


def fit_ridge(features: np.ndarray, labels: np.ndarray, num_classes: int, l2: float = L2):
    """(mean, std, weights [D + 1, classes]) of the ridge fit of one-hot(labels) on `features`."""
    x = np.asarray(features, np.float64)
    mean, std = x.mean(0), x.std(0) + 1e-6
    x = np.concatenate([(x - mean) / std, np.ones((len(x), 1))], axis=1)
    y = 2.0 * np.eye(num_classes)[np.asarray(labels)] - 1.0
    gram = x.T @ x + l2 * len(x) * np.eye(x.shape[1])
    return mean, std, np.linalg.solve(gram, x.T @ y)


def predict(fit, features: np.ndarray) -> np.ndarray:
    mean, std, w = fit
    x = (np.asarray(features, np.float64) - mean) / std
    return (np.concatenate([x, np.ones((len(x), 1))], axis=1) @ w).argmax(-1)


def probe_accuracy(train_features, train_labels, test_features, test_labels, num_classes: int = 10,
                   l2: float = L2) -> float:
    """Test accuracy of the ridge probe fitted on the train features."""
    fit = fit_ridge(train_features, train_labels, num_classes, l2)
    return float((predict(fit, test_features) == np.asarray(test_labels)).mean())


class LinearProbe:
    """An evaluator (a family lists it in `Task.evaluators`): the probe accuracy of the family's
    `probe_features`, fitted on the train split and scored on the evaluated split. The engine calls
    it with `features(split) -> (features [N, D], labels [N])`, its compiled `probe_features` over a
    whole split (in memory or read from disk) and that split's labels."""

    needs_features = True

    def __call__(self, features, train, test) -> dict:
        return {"probe_accuracy": probe_accuracy(*features(train), *features(test))}
