"""Family name -> Task class: the one list the trainer, the tests and the benchmarks iterate.

Built-in families are listed here; a user's own family joins with `register` (the `@aigc_jax.register`
decorator, or `python -m train --import mymodule`), and an installed package can offer families
through the `aigc_jax.families` entry point group (each entry point names a Task class).
"""

import importlib
import os
import sys
from importlib import metadata

from aigc_jax.engine.config import apply_overrides, validate
from aigc_jax.errors import UserError
from aigc_jax.tasks.base import Task
from aigc_jax.tasks.autoencoder import AutoencoderTask
from aigc_jax.tasks.classifier import CNNClassifier, MLPClassifier
from aigc_jax.tasks.clip import CLIPTask
from aigc_jax.tasks.conv_vae import ConvVAETask
from aigc_jax.tasks.cyclegan import CycleGANTask
from aigc_jax.tasks.dcgan import DCGANTask
from aigc_jax.tasks.ddpm import DDPMTask
from aigc_jax.tasks.gpt import GPTTask
from aigc_jax.tasks.lstm_seq2seq import LSTMSeq2SeqTask
from aigc_jax.tasks.mlm import MLMTask
from aigc_jax.tasks.mlm_finetune import MLMFinetuneTask
from aigc_jax.tasks.mlp_gan import MLPGAN
from aigc_jax.tasks.multimodal import MultimodalTask
from aigc_jax.tasks.ngram import NGramTask
from aigc_jax.tasks.ppo import PPOTask
from aigc_jax.tasks.reinforce import ReinforceTask
from aigc_jax.tasks.rnn_lm import LSTMLMTask, RNNLMTask
from aigc_jax.tasks.simclr import SimCLRTask
from aigc_jax.tasks.stylegan import StyleGANTask
from aigc_jax.tasks.transformer import TransformerTask
from aigc_jax.tasks.vae import VAETask
from aigc_jax.tasks.vae_gan import VAEGANTask
from aigc_jax.tasks.word2vec import Word2VecTask

ENTRY_POINT_GROUP = "aigc_jax.families"

FAMILIES = {task.name: task for task in (MLPClassifier, CNNClassifier, MLPGAN, VAETask, DCGANTask,
                                         LSTMSeq2SeqTask, TransformerTask, RNNLMTask, LSTMLMTask, NGramTask, GPTTask, PPOTask, ReinforceTask,
                                         StyleGANTask, SimCLRTask, MultimodalTask, CLIPTask, Word2VecTask,
                                         AutoencoderTask, ConvVAETask, VAEGANTask, MLMTask, MLMFinetuneTask,
                                         CycleGANTask, DDPMTask)}


def register(cls):
    """Add a Task subclass to the families under `cls.name` (usable as a class decorator).

    Registering the same class again is a no-op; another class under a taken name is a UserError."""
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise UserError(f"register({cls!r}): expected a subclass of aigc_jax.Task")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise UserError(f"{cls.__qualname__}.name={name!r}: expected a family name (letters, digits, _)")
    if FAMILIES.get(name, cls) is not cls:
        raise UserError(f"family {name!r} is already {FAMILIES[name].__module__}.{FAMILIES[name].__qualname__}; "
                        f"expected a new name for {cls.__module__}.{cls.__qualname__}")
    FAMILIES[name] = cls
    return cls


def _load_entry_points() -> None:
    """Families that installed packages offer (group `aigc_jax.families`); loaded once per name."""
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name not in FAMILIES:
            register(entry.load())


def import_families(modules) -> None:
    """Import the user's modules that `register` families (`--import mymodule`, repeatable), from
    the Python path or the current directory (as `python -m` would, also for the console scripts)."""
    if modules and os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    for module in modules or ():
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise UserError(f"--import {module}: {e}; expected a module on the Python path (e.g. mymodule.py "
                            "in the current directory)") from None


def names() -> list[str]:
    _load_entry_points()
    return list(FAMILIES)


def get(name: str):
    if name not in FAMILIES:
        _load_entry_points()
    if name not in FAMILIES:
        raise UserError(f"unknown family {name!r}; expected one of: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def _as_text(value) -> str:
    """A Python value as the text `--config.KEY=VALUE` would give (lists and tuples comma-separated)."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def build(family: str, overrides: dict | None = None, trained: dict | None = None, **values):
    """The family's task: its default config, then a trained run's saved config, then `overrides`
    (text, as the command line gives them) and `values` (Python values), validated.

    A bad key or value is a UserError naming it and what was expected."""
    cls = get(family)
    config = cls.default_config()
    for key, value in (trained or {}).items():
        if key in config:
            config[key] = tuple(value) if isinstance(config[key], tuple) else value
    config.family = family
    config = apply_overrides(config, {k: _as_text(v) for k, v in {**(overrides or {}), **values}.items()})
    validate(config, cls.config_ranges, cls.config_choices)
    return cls(config)
