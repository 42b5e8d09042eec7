"""PyTorch twins of the reference workloads (../shared BENCHMARKS shapes), for `--torch`.

Each twin is written the way the seed documents write PyTorch: `nn.Module`s, `torch.optim`, one
`.backward()` per loss. Importing this package does not import torch (the JAX side never does);
`load_twin` and the runner do, and only when asked for.
"""

import importlib
import importlib.util

# JAX family name -> (module in this package, twin class).
TWINS = {
    "mlp": ("classifier", "MLPTwin"),
    "cnn": ("classifier", "CNNTwin"),
    "mlp_gan": ("mlp_gan", "MLPGANTwin"),
    "vae": ("vae", "VAETwin"),
    "dcgan": ("dcgan", "DCGANTwin"),
    "lstm_lm": ("lstm_lm", "LSTMLMTwin"),
    "gpt": ("gpt", "GPTTwin"),
    "transformer": ("transformer", "TransformerTwin"),
    "ddpm": ("ddpm", "DDPMTwin"),
}


def torch_missing() -> str | None:
    """Why torch cannot be used here, or None when it can."""
    if importlib.util.find_spec("torch") is None:
        return "torch is not installed (pip install -e '.[torch]')"
    return None


def load_twin(family: str):
    """The twin class of `family` (imports torch)."""
    module, name = TWINS[family]
    return getattr(importlib.import_module(f"aigc_jax.benchmarks.torch_twins.{module}"), name)
