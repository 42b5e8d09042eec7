"""In-memory train/test splits, the form every dataset reaches a task in."""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Splits:
    """Named arrays per split, all with the example axis first. `test` is the split evaluation
    scores: the test split, or validation where a family's `eval_split` chooses it."""

    train: dict[str, np.ndarray]
    test: dict[str, np.ndarray]

    @property
    def num_train(self) -> int:
        return len(next(iter(self.train.values())))

    @property
    def num_test(self) -> int:
        return len(next(iter(self.test.values())))
