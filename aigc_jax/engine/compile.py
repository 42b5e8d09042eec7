"""Compile a task's train and eval steps in one of four parallel modes.

- `jit`: one device, the whole batch.
- `sharded` (default): `jax.jit` over a 1-D `Mesh` of all devices; the batch is split along the
  mesh axis with `NamedSharding`, the state is replicated, and XLA inserts the gradient all-reduce.
  This is the path that scales to many hosts.
- `shard_map`: the same mesh, but the step is written per device with `jax.shard_map`; gradients
  and metrics are averaged with `pmean` over the bound axis (see `parallel.py`).
- `pmap`: the legacy per-device map (maintenance mode in current JAX); the state carries a leading
  device axis and the batch is reshaped to [devices, batch / devices, ...].

Every mode donates the old state and draws one PRNG key per example for the *global* batch before
splitting it, so the four modes compute the same numbers. On CPU devices the `jit` and `sharded`
train steps are rewritten into operations XLA:CPU compiles well (`cpu_rewrites.py`: large sums
over leading axes as matrix products, argmax as two reductions).
"""

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from aigc_jax.engine import parallel
from aigc_jax.engine.guard import guarded
from aigc_jax.engine.host_memory import run_cpu_steps_inline
from aigc_jax.engine.cpu_rewrites import cpu_rewrites_on, rewritten_for_cpu
from aigc_jax.engine.config import PARALLEL_MODES
from aigc_jax.errors import UserError

# A CPU step's large temporaries stay mapped only if it runs on the calling thread. This must come
# before JAX starts its CPU backend, so here: every path to a compiled step (and the device checks
# the CLI makes first) imports this module before it asks for a device (engine/host_memory.py).
run_cpu_steps_inline()


def _with_example_keys(batch: dict, rng: jax.Array, batch_size: int) -> tuple[dict, jax.Array]:
    example_rng, task_rng = jax.random.split(rng)
    return {**batch, "key": jax.random.split(example_rng, batch_size)}, task_rng


def _global_batch_size(batch: dict, fallback: int) -> int:
    leaves = jax.tree.leaves(batch)
    return leaves[0].shape[0] if leaves else fallback


@dataclasses.dataclass(frozen=True)
class CompiledTask:
    """A task's steps compiled for one parallel mode, and how to move data in and out of them."""

    mode: str
    devices: tuple
    mesh: Mesh | None
    train_step: Callable  # (placed_state, placed_batch, rng) -> (placed_state, metrics)
    eval_step: Callable  # (state, placed_batch, rng) -> sums
    sample: Callable  # (state, rng, placed_batch) -> arrays
    place_state: Callable[[Any], Any]  # host/global state -> the layout train_step wants
    canonical: Callable[[Any], Any]  # train_step's layout -> one global state (eval, checkpoint)
    place_batch: Callable[[dict], dict]  # host batch -> device batch for train_step
    place_eval_batch: Callable[[dict], dict]
    probe_features: Callable | None = None  # (state, placed_batch) -> [B, D], for the task's evaluators

    @property
    def num_devices(self) -> int:
        return len(self.devices)


def check_batch_size(batch_size: int, mode: str, num_devices: int, key: str = "batch_size") -> None:
    if mode != "jit" and batch_size % num_devices:
        raise UserError(f"config.{key}={batch_size} is not divisible by the {num_devices} devices of "
                        f"parallel={mode}; expected a multiple of {num_devices}")


def check_fits(mode: str, batch_size: int, devices=None) -> tuple:
    """The devices `mode` runs on (one for jit), after checking that `mode` is a parallel mode and
    that the batch splits evenly over them: a UserError said before any data is read."""
    if mode not in PARALLEL_MODES:
        raise UserError(f"config.parallel={mode!r}: expected one of {', '.join(PARALLEL_MODES)}")
    devices = tuple(jax.devices() if devices is None else devices)
    if mode == "jit":
        devices = devices[:1]
    check_batch_size(batch_size, mode, len(devices))
    return devices


def compile_task(task, mode: str, batch_size: int, devices=None) -> CompiledTask:
    """Compile `task`'s train/eval/sample steps for `mode` over `devices` (default: all devices)."""
    devices = check_fits(mode, batch_size, devices)
    mesh = Mesh(np.asarray(devices), (parallel.DATA_AXIS,))
    replicated = NamedSharding(mesh, P())
    split = NamedSharding(mesh, P(parallel.DATA_AXIS))

    def place_split(batch):
        # Each process passes its own slice; on one process this is the whole batch.
        return jax.tree.map(lambda x: jax.make_array_from_process_local_data(split, np.asarray(x)), batch)

    # Every mode's step flags non-finite updates; under nan_policy=skip it also keeps the old state.
    guard = functools.partial(guarded, policy=task.config.nan_policy)

    @guard
    def plain_step(state, batch, rng):
        batch, task_rng = _with_example_keys(batch, rng, _global_batch_size(batch, batch_size))
        return task.train_step(state, batch, task_rng)

    def eval_fn(state, batch, rng):
        batch, task_rng = _with_example_keys(batch, rng, _global_batch_size(batch, 1))
        return task.eval_step(state, batch, task_rng)

    # Replicated outputs: every process can read them (several hosts), and they are small.
    eval_step = jax.jit(eval_fn, out_shardings=replicated)
    sample = jax.jit(task.sample, out_shardings=replicated)
    needs_features = any(getattr(e, "needs_features", False) for e in task.evaluators)
    probe = jax.jit(task.probe_features, out_shardings=replicated) if needs_features else None
    identity = lambda state: state  # noqa: E731

    if mode in ("jit", "sharded"):
        state_sharding = replicated
        step = rewritten_for_cpu(plain_step) if cpu_rewrites_on(devices) else plain_step
        train_step = jax.jit(step, donate_argnums=0, out_shardings=(replicated, replicated))
        return CompiledTask(
            mode, devices, mesh, train_step, eval_step, sample,
            place_state=lambda s: jax.device_put(s, state_sharding),
            canonical=identity, place_batch=place_split, place_eval_batch=place_split, probe_features=probe)

    if mode == "shard_map":
        @guard
        def per_device(state, batch, rng):
            state, metrics = task.train_step(state, batch, rng)
            return state, parallel.data_mean(metrics)

        def step(state, batch, rng):
            batch, task_rng = _with_example_keys(batch, rng, _global_batch_size(batch, batch_size))
            # check_vma=False: with it on, JAX would already psum the gradients of replicated
            # params (the transpose of its implicit pvary); the step averages them itself, as under pmap.
            mapped = jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P(parallel.DATA_AXIS), P()),
                                   out_specs=(P(), P()), check_vma=False)
            return mapped(state, batch, task_rng)

        return CompiledTask(
            mode, devices, mesh, jax.jit(step, donate_argnums=0), eval_step, sample,
            place_state=lambda s: jax.device_put(s, replicated),
            canonical=identity, place_batch=place_split, place_eval_batch=place_split, probe_features=probe)

    # pmap: the legacy path. Keys are drawn for the global batch, then reshaped per device.
    n = len(devices)

    @guard
    def per_device_pmap(state, batch, rng):
        state, metrics = task.train_step(state, batch, rng)
        return state, parallel.data_mean(metrics)

    pmapped = jax.pmap(per_device_pmap, axis_name=parallel.DATA_AXIS, devices=devices,
                       donate_argnums=0, in_axes=(0, 0, None))
    draw_keys = jax.jit(_with_example_keys, static_argnums=2)

    def to_devices(x):
        return x.reshape((n, x.shape[0] // n, *x.shape[1:]))

    def pmap_step(state, batch, rng):
        batch, task_rng = draw_keys(batch, rng, _global_batch_size(batch, batch_size))
        state, metrics = pmapped(state, jax.tree.map(to_devices, batch), task_rng)
        return state, jax.tree.map(lambda m: m[0], metrics)  # identical on every device after pmean

    # One copy per device, laid out along the mesh axis as pmap expects (a replicated input
    # broadcast to [n, ...] keeps its replicated sharding, which pmap rejects); one compiled
    # function for the whole tree rather than one per leaf shape.
    stack = jax.jit(lambda state: jax.tree.map(lambda x: jnp.broadcast_to(x, (n, *jnp.shape(x))), state),
                    out_shardings=split)

    def first(state):
        return jax.device_put(jax.tree.map(lambda x: x[0], state), replicated)

    return CompiledTask(
        mode, devices, mesh, pmap_step, eval_step, sample,
        place_state=stack, canonical=first,
        place_batch=lambda b: jax.tree.map(jnp.asarray, b), place_eval_batch=place_split,
        probe_features=probe)
