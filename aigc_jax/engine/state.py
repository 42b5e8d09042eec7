"""Train-state pytrees.

`TrainState` is Flax's, plus optional BatchNorm statistics, and an `apply_gradients` that averages
gradients over data-parallel devices, so a task's step is written once for every parallel mode.
Families with several optimizers (GANs) keep one `TrainState` per network inside a
`flax.struct.dataclass` of their own.
"""

from typing import Any

import optax
from flax import struct
from flax.training import train_state

from aigc_jax.engine import parallel


class TrainState(train_state.TrainState):
    batch_stats: Any = None

    def apply_gradients(self, *, grads, **kwargs):
        return super().apply_gradients(grads=parallel.data_mean(grads), **kwargs)

    def variables(self, params=None) -> dict:
        """The variables dict for `module.apply`: params (or the given ones) and batch_stats."""
        out = {"params": self.params if params is None else params}
        if self.batch_stats is not None:
            out["batch_stats"] = self.batch_stats
        return out


def create_train_state(module, variables: dict, tx: optax.GradientTransformation) -> TrainState:
    """A TrainState for `module` from its initialised variables."""
    return TrainState.create(
        apply_fn=module.apply,
        params=variables["params"],
        batch_stats=variables.get("batch_stats"),
        tx=tx,
    )


@struct.dataclass
class PairState:
    """Two networks trained against each other (generator and discriminator)."""

    g: TrainState
    d: TrainState

    @property
    def step(self):
        return self.d.step
