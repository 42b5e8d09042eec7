"""`python -m train FAMILY --help` lists every config key with its default, what it accepts and a
one-line help (the comment on the line that sets the default)."""

import subprocess
import sys

import pytest

from aigc_jax.tasks import config_help, registry


@pytest.mark.parametrize("family", registry.names())
def test_every_key_has_a_default_and_a_help_line(family):
    cls = registry.get(family)
    helps = config_help.key_help(cls)
    keys = [k for k in cls.default_config().keys() if k != "family"]
    assert [k for k in keys if not helps.get(k)] == []
    table = config_help.describe(cls, family)
    assert all(f"  {k} " in table for k in keys)


def test_family_help_on_the_command_line():
    done = subprocess.run([sys.executable, "-m", "train", "vae", "--help"], capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "config keys of vae" in done.stdout
    line = next(row for row in done.stdout.splitlines() if row.strip().startswith("latent "))
    assert "20" in line and ">= 1" in line and "size of the latent code z" in line
    unknown = subprocess.run([sys.executable, "-m", "train", "nope", "--help"], capture_output=True, text=True,
                             check=False, timeout=120)
    assert unknown.returncode == 2 and "unknown family 'nope'" in unknown.stderr and unknown.stderr.count("\n") == 1
