"""The task contract: what a model family gives the engine.

A task is constructed from its (validated) config and is immutable; its methods are pure
functions of their arguments, so the engine can compile them in any parallel mode:

- `load_data()` -> `Splits` of in-memory arrays, or None for families that make their own data
  (environments). Values the steps need besides examples (a judge's params, a gallery, an
  encoded prompt) go in `Splits.constants`; the engine runs the steps of `task.bind(data)`, a new
  task holding them (`self.constant(name)`): nothing is assigned to a task after construction. The engine slices batches out of it and adds `batch["key"]`: one PRNG key per
  example, drawn for the global batch, so per-example noise is the same however the batch is split.
- `init(rng, batch)` -> the train state pytree.
- `train_step(state, batch, rng)` -> (state, metrics): a flat dict of scalars. Gradients go through
  `TrainState.apply_gradients`, which averages them over data-parallel devices when needed.
- `eval_inputs()` -> for tasks without data: the test split to evaluate on, a dict of arrays with
  one row per example (e.g. `{"episode": arange(100)}`), or None (the default: no evaluation).
- `eval_step(state, batch, rng)` -> dict of *sums* over the batch's real examples (`batch["mask"]`
  is 1 for real examples and 0 for padding); arrays are allowed. The engine adds them up over the
  test split, divides by the number of examples and passes the means to `finalize_eval`.
- `evaluators`: host-side evaluations the engine runs after the summed eval, each called as
  `evaluator(features, train, test) -> metrics`, where `features(split)` runs the compiled
  `probe_features(state, batch)` ([B, D] frozen features) over a whole split and returns
  (features [N, D], the split's labels [N]) in one pass. Representation
  learners list `eval.linear_probe.LinearProbe()`: a ridge probe fitted on the train split's
  features, scored on the evaluated split (`probe_accuracy`).
- `sample(state, rng, batch)` -> {name: images [N, H, W, C] in [0, 1] or text}: what a person
  looks at; written as PNG grids or text files.
- `render_samples(outputs)` -> host-side post-processing of `sample`'s arrays (e.g. bytes -> text).
- `flops_per_step()` -> analytic FLOPs of one train step at the config's batch size (benchmarks),
  `tokens_per_step()` for sequence families, and `benchmark_presets` with the config overrides of
  the `tiny`, `cpu` and `gpu` benchmark shapes.

Tasks never call jit, pmap or device_put: the engine decides how a step runs.
"""

import abc
import inspect
from types import MappingProxyType
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import ml_collections

from aigc_jax.data.splits import Splits
from aigc_jax.errors import UserError

Batch = dict[str, Any]
Metrics = dict[str, Any]


class Task(abc.ABC):
    name: ClassVar[str]
    summary: ClassVar[str]
    main_metric: ClassVar[str] = "loss"  # shown in the progress bar
    # Extra validation for the family's own keys: key -> (low, high) and key -> allowed values.
    config_ranges: ClassVar[dict] = {}
    config_choices: ClassVar[dict] = {}
    # Keys of the family's own that a resumed run may change besides engine.config.RESUMABLE:
    # only keys that change nothing the run trains on (e.g. what samples continue).
    resumable_keys: ClassVar[tuple[str, ...]] = ()
    # Benchmark shapes: preset name ("tiny", "cpu", "gpu") -> config overrides (see benchmarks/).
    benchmark_presets: ClassVar[dict[str, dict]] = {}
    # Host-side evaluators run after the summed eval (e.g. eval.linear_probe.LinearProbe()).
    evaluators: ClassVar[tuple] = ()

    def __init__(self, config: ml_collections.ConfigDict, constants: dict | None = None):
        self.config = config
        self.constants = MappingProxyType(dict(constants or {}))  # from load_data, through bind()

    def bind(self, data: Splits | None) -> "Task":
        """This family's task for `data`: a new task holding the constants `load_data` returned
        (`Splits.constants`) for its steps to close over; this task is left as it was."""
        if data is None or not data.constants:
            return self
        try:
            inspect.signature(type(self)).bind(self.config, {})
        except TypeError:
            raise UserError(f"{type(self).__name__}.__init__ must take (config, constants=None) and pass both to "
                            f"Task.__init__: its data came with constants {sorted(data.constants)} (docs/your_family.md)") from None
        return type(self)(self.config, {**self.constants, **data.constants})

    def constant(self, name: str):
        """A value `load_data` prepared (see `bind`); an unbound task is the caller's mistake."""
        if name not in self.constants:
            raise RuntimeError(f"{self.name}: no {name!r} among the task's constants; expected a task bound to "
                               "its data (task.bind(task.load_data()), as aigc_jax.Run does)")
        return self.constants[name]

    @property
    def image_channels(self) -> int:
        """Channels of the images this task's data holds: 1 (grey) unless `load_data` found colour."""
        return int(self.constants.get("image_channels", 1))

    @property
    def image_size(self) -> int:
        """Side of the images this task's data holds: the digits' 28 unless `load_data` read a set
        stored at another size (32 for cifar10), which the loader records as a constant."""
        from aigc_jax.data.images import DEFAULT_SIZE  # here, not at the top: only image tasks ask, and it loads TFDS

        return int(self.constants.get("image_size", DEFAULT_SIZE))

    @property
    def compute_dtype(self) -> jnp.dtype:
        """`config.dtype`: what modules compute in (their `dtype`); parameters stay float32 and
        losses are taken in float32, i.e. mixed precision when it is bfloat16."""
        return jnp.dtype(self.config.get("dtype", "float32"))

    @staticmethod
    @abc.abstractmethod
    def default_config() -> ml_collections.ConfigDict: ...

    @abc.abstractmethod
    def load_data(self) -> Splits | None: ...

    @abc.abstractmethod
    def init(self, rng: jax.Array, batch: Batch) -> Any: ...

    @abc.abstractmethod
    def train_step(self, state, batch: Batch, rng: jax.Array) -> tuple[Any, Metrics]: ...

    def eval_step(self, state, batch: Batch, rng: jax.Array) -> Metrics:
        return {}

    def eval_inputs(self) -> dict | None:
        """Tasks without data: the examples `eval_step` is summed over (their keys come with them)."""
        return None

    def finalize_eval(self, means: Metrics) -> Metrics:
        """Turn the per-example means of `eval_step`'s sums into scalar metrics."""
        return means

    def probe_features(self, state, batch: Batch) -> jax.Array:
        """[B, D] frozen features of the batch's images, for the family's evaluators."""
        raise NotImplementedError(f"{self.name} lists evaluators but gives no probe_features")

    def sample(self, state, rng: jax.Array, batch: Batch) -> dict[str, Any]:
        return {}

    def render_samples(self, outputs: dict[str, Any]) -> dict[str, Any]:
        """Host-side: turn `sample`'s arrays into images in [0, 1] or text (e.g. decode tokens)."""
        return outputs

    def flops_per_step(self) -> float:
        return 0.0

    def tokens_per_step(self) -> int:
        """Tokens in one train step's batch (sequence families); 0 for the others."""
        return 0


def per_example_normal(keys: jax.Array, shape) -> jax.Array:
    """One N(0, I) draw of `shape` per example key: [B, *shape]."""
    return jax.vmap(lambda k: jax.random.normal(k, shape))(keys)


def check_heads(config) -> None:
    """Attention families: `width` must split evenly into `heads`."""
    if config.width % config.heads:
        raise UserError(f"config.width={config.width} is not divisible by config.heads={config.heads}; "
                        "expected width a multiple of heads")
