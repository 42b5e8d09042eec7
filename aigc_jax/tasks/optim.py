"""The optimizer the sequence families share: Adam(W) on a warm-up + cosine (or constant) schedule,
after global-norm gradient clipping."""

import optax

# The keys these optimizers read besides learning_rate and steps, their checks, and their defaults.
SCHEDULE_RANGES = {"warmup_steps": (0, None), "clip_norm": (0.0, None)}
SCHEDULE_CHOICES = {"lr_schedule": ("constant", "cosine")}


def add_schedule_keys(config) -> None:
    """Add the schedule keys to `config` (a family's default config) with their defaults."""
    config.warmup_steps = 0  # linear warm-up of the learning rate from 0, in steps
    config.lr_schedule = "cosine"  # decay to 0 at config.steps, or "constant"
    config.clip_norm = 1.0  # global gradient-norm clipping; 0 = off


def learning_rate_schedule(config, updates_per_step: int = 1) -> optax.Schedule:
    """Linear warm-up over `warmup_steps`, then cosine decay to 0 at `steps` (or constant).

    optax counts updates, not engine steps: a step that makes several updates (truncated BPTT)
    passes `updates_per_step`, so the schedule still spans the run.
    """
    c = config
    warmup = c.warmup_steps * updates_per_step
    decay_steps = max(c.steps * updates_per_step - warmup, 1)
    after = (optax.cosine_decay_schedule(c.learning_rate, decay_steps) if c.lr_schedule == "cosine"
             else optax.constant_schedule(c.learning_rate))
    if not warmup:
        return after
    return optax.join_schedules([optax.linear_schedule(0.0, c.learning_rate, warmup), after], [warmup])


def adam_optimizer(config, weight_decay: float = 0.0, updates_per_step: int = 1) -> optax.GradientTransformation:
    """Adam, or AdamW with decoupled `weight_decay`, clipped to `config.clip_norm` (0 = no clipping)."""
    schedule = learning_rate_schedule(config, updates_per_step)
    adam = optax.adamw(schedule, weight_decay=weight_decay) if weight_decay else optax.adam(schedule)
    return optax.chain(optax.clip_by_global_norm(config.clip_norm), adam) if config.clip_norm else adam
