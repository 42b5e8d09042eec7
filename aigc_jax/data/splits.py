"""In-memory train/test splits, the form every dataset reaches a task in."""

import dataclasses

import numpy as np

from aigc_jax.data.records import RecordSplit, split_size


@dataclasses.dataclass(frozen=True)
class Splits:
    """Named arrays per split, all with the example axis first. `test` is the split evaluation
    scores: the test split, or validation where a family's `eval_split` chooses it."""

    train: "dict[str, np.ndarray] | RecordSplit"  # in memory, or read batch by batch (data/records.py)
    test: dict[str, np.ndarray]
    # Host-side values a family's steps need besides examples (the judge classifier's params, the
    # caption gallery, the encoded prompt, a pretrained encoder): `Task.bind` hands them to a new
    # task, whose compiled steps close over them as constants.
    constants: dict = dataclasses.field(default_factory=dict)

    def with_constants(self, **constants) -> "Splits":
        return dataclasses.replace(self, constants={**self.constants, **constants})

    @property
    def num_train(self) -> int:
        return split_size(self.train)

    @property
    def num_test(self) -> int:
        return split_size(self.test)
