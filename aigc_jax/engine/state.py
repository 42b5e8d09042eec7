"""Train-state pytrees.

`TrainState` is Flax's, plus optional BatchNorm statistics, and an `apply_gradients` that averages
gradients over data-parallel devices, so a task's step is written once for every parallel mode.
Families with several optimizers (GANs) keep one `TrainState` per network inside a
`flax.struct.dataclass` of their own.

`regularise` adds the engine-wide `config.l1` / `config.l2` to every `TrainState` in a task's
state right after `task.init`, by wrapping its optimizer, so families need no code for it.
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct
from flax.training import train_state

from aigc_jax.engine import parallel
from aigc_jax.errors import UserError


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


class EMATrainState(TrainState):
    """A TrainState that also keeps an exponential moving average of its params (`config.ema_decay`
    > 0, `engine_options`), updated with every apply_gradients and checkpointed with the state;
    evaluation and samples read it (`evaluation_view`). A subclass, so that runs without an EMA keep
    the checkpoint layout they always had."""

    ema_params: Any = None
    ema_decay: float = struct.field(pytree_node=False, default=0.0)

    def apply_gradients(self, *, grads, **kwargs):
        new = super().apply_gradients(grads=grads, **kwargs)
        d = self.ema_decay
        return new.replace(ema_params=jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, self.ema_params, new.params))


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


def decayed(params):
    """Which parameters l1/l2 act on: those with >= 2 dims (dense and conv kernels, embedding
    tables); biases and normalisation scales/offsets (1-D) are left alone."""
    return jax.tree.map(lambda p: jnp.ndim(p) >= 2, params)


def l1_subgradient(l1: float) -> optax.GradientTransformation:
    """grads += l1 * sign(w) on the `decayed` weights: the (sub)gradient of the loss term
    l1 * sum|w|, so it goes through the family's optimizer (clipping, Adam) like the loss does."""
    def update(grads, state, params):
        return jax.tree.map(lambda g, p: g + l1 * jnp.sign(p).astype(g.dtype), grads, params), state

    return optax.masked(optax.GradientTransformation(lambda params: optax.EmptyState(), update), decayed)


def regularised_tx(tx: optax.GradientTransformation, l1: float, decay: float) -> optax.GradientTransformation:
    """`tx` with the L1 subgradient added before it and decoupled weight decay after it:
    updates -= decay * w (AdamW's form; `decay` = learning_rate * l2).

    The added transforms are stateless, so the optimizer state is `tx`'s own, unchanged: checkpoints
    keep their layout and a run may resume with other l1/l2 values.
    """
    before = l1_subgradient(l1) if l1 else None
    # The updates are already signed steps (-lr * ...), so decay is added with a minus sign.
    after = optax.add_decayed_weights(-decay, mask=decayed) if decay else None

    def update(grads, state, params=None, **extra):
        if before is not None:
            grads, _ = before.update(grads, before.init(params), params)
        updates, state = tx.update(grads, state, params, **extra)
        if after is not None:
            updates, _ = after.update(updates, after.init(params), params)
        return updates, state

    return optax.GradientTransformation(tx.init, update)


def regularise(state, config, family: str):
    """Every `TrainState` in `state` (a task's whole state) with `config.l1`/`config.l2` applied.

    L2 is decoupled weight decay: w -= config.learning_rate * l2 * w at every optimizer update,
    after the family's optimizer (as optax.adamw, but with the config's base learning rate, not the
    family's warm-up/cosine schedule). L1 adds l1 * sign(w) to the gradients before the optimizer
    (the loss term l1 * sum|w|; the logged loss does not include it). Both act on the `decayed`
    weights. A state without a TrainState (the n-gram's count tables) cannot take them: UserError.
    """
    l1, l2 = float(config.get("l1", 0.0)), float(config.get("l2", 0.0))
    if not (l1 or l2):
        return state
    is_train_state = _is_train_state
    if not _has_train_state(state):
        key = "l1" if l1 else "l2"
        raise UserError(f"config.{key}={config[key]!r}: family {family!r} has no trained weights "
                        f"(no TrainState); expected {key}=0")
    decay = float(config.learning_rate) * l2

    def wrap(x):
        return x.replace(tx=regularised_tx(x.tx, l1, decay)) if is_train_state(x) else x

    return jax.tree.map(wrap, state, is_leaf=is_train_state)


def _is_train_state(x) -> bool:
    return isinstance(x, train_state.TrainState)  # ours or Flax's


def _has_train_state(state) -> bool:
    return any(_is_train_state(x) for x in jax.tree.leaves(state, is_leaf=_is_train_state))


def engine_options(state, config, family: str):
    """Every `TrainState` in `state` with the engine options every family gets:

    - `config.grad_accum` = N > 1: the optimizer (`optax.MultiSteps`) averages the gradients of N
      consecutive steps and updates the weights on every N-th, so N steps of batch B update as one
      step of batch N * B (the same examples: batches are consecutive slices of one epoch order).
      Each engine step is one micro-batch: `config.steps` counts micro-batches.
    - `config.ema_decay` = d > 0: an EMA of the weights (`EMATrainState.ema_params`), used by
      evaluation and samples.
    """
    accumulate, decay = int(config.get("grad_accum", 1)), float(config.get("ema_decay", 0.0))
    if accumulate <= 1 and decay <= 0.0:
        return state
    if not _has_train_state(state):
        key = "grad_accum" if accumulate > 1 else "ema_decay"
        raise UserError(f"config.{key}={config[key]!r}: family {family!r} has no trained weights (no TrainState); "
                        f"expected the default, {key}={1 if key == 'grad_accum' else 0.0}")

    def wrap(x):
        if not _is_train_state(x):
            return x
        if accumulate > 1:
            tx = optax.MultiSteps(x.tx, every_k_schedule=accumulate).gradient_transformation()
            x = x.replace(tx=tx, opt_state=tx.init(x.params))
        if decay > 0.0:
            if not isinstance(x, TrainState):
                raise UserError(f"config.ema_decay={decay!r}: family {family!r} keeps a Flax TrainState, not "
                                "aigc_jax's; expected ema_decay=0")
            fields = {f.name: getattr(x, f.name) for f in dataclasses.fields(x)}
            # A copy: the train step donates its state, and one buffer cannot be donated twice.
            x = EMATrainState(**fields, ema_params=jax.tree.map(jnp.copy, x.params), ema_decay=decay)
        return x

    return jax.tree.map(wrap, state, is_leaf=_is_train_state)


def evaluation_view(state):
    """`state` as evaluation and samples see it: each TrainState's EMA weights (when kept) in place
    of its trained ones. Training and checkpoints use the state itself."""
    def view(x):
        if isinstance(x, EMATrainState):
            return x.replace(params=x.ema_params)
        return x

    return jax.tree.map(view, state, is_leaf=_is_train_state)
