"""What `python -m train FAMILY --help` lists: every config key of a family with its default, the
values it accepts and a one-line help.

Configs are code (the Flax examples' way): each key is set in the family's `default_config()` (or
the engine's `base_config()`, or a shared helper such as `language.lm_config()`) on one line, and
the comment on that line is its help. The help is read from those lines, so it cannot drift from
where the default is set; what a key accepts comes from the ranges and choices validation uses.
"""

import inspect
import re

from aigc_jax.engine import config as engine_config

_KEY_LINE = re.compile(r"^\s*(?:c|config)\.(\w+)\s*=\s*(?P<value>.*?)\s*(?:#\s*(?P<help>.*))?$")


def _comments(source: str) -> dict[str, str]:
    """{key: comment} from `c.KEY = VALUE  # comment` lines (or `config.KEY`); the last comment wins."""
    out = {}
    for line in source.splitlines():
        match = _KEY_LINE.match(line)
        if match and match.group("help"):
            out[match.group(1)] = match.group("help").strip()
    return out


def _task_modules(cls) -> list:
    """The modules whose `c.KEY = ...` lines can set `cls`'s defaults: the tasks modules the family's
    module takes functions from (shared config helpers), its base classes' modules, its own last."""
    own = inspect.getmodule(cls)
    imported = [inspect.getmodule(v) for v in vars(own).values() if callable(v)] if own else []
    bases = [inspect.getmodule(k) for k in reversed(cls.__mro__)]
    out = []
    for module in [*imported, *bases, own]:
        if module is not None and module.__name__.startswith("aigc_jax.tasks") and module not in out:
            out.append(module)
    if own is not None and own in out:  # the family's own comments are the most specific
        out.remove(own)
        out.append(own)
    return out


def key_help(cls) -> dict[str, str]:
    """{key: help} for a Task class: the engine's comments, the shared optimizer keys', then the
    modules of `_task_modules` (more specific wins)."""
    from aigc_jax.tasks import optim

    out = {}
    for module in [engine_config, optim, *_task_modules(cls)]:
        try:
            out.update(_comments(inspect.getsource(module)))
        except (OSError, TypeError):  # defined interactively: no source to read
            pass
    return out


def _accepts(key: str, value, ranges: dict, choices: dict) -> str:
    if key in choices:
        return " | ".join(map(str, choices[key]))
    if key in ranges:
        low, high = ranges[key]
        if key in engine_config.POSITIVE:
            return f"> {low}"
        return f">= {low}" if high is None else f"{low}..{high}"
    if isinstance(value, bool):
        return "true | false"
    if isinstance(value, tuple):
        return "comma-separated"
    return ""


def describe(cls, family: str) -> str:
    """The table of `--config.KEY=VALUE` keys `python -m train FAMILY --help` prints."""
    config = cls.default_config()
    helps = key_help(cls)
    ranges = {**engine_config.RANGES, **cls.config_ranges}
    choices = {**engine_config.CHOICES, **cls.config_choices}
    rows = []
    for key in sorted(k for k in config.keys() if k != "family"):
        value = config[key]
        shown = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        rows.append((key, shown, _accepts(key, value, ranges, choices), helps.get(key, "")))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"config keys of {family} (--config.KEY=VALUE; default, accepted values, help):"]
    for key, shown, accepts, help_text in rows:
        lines.append(f"  {key:<{widths[0]}}  {shown:<{widths[1]}}  {accepts:<{widths[2]}}  {help_text}".rstrip())
    return "\n".join(lines)
