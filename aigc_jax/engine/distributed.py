"""Several hosts: JAX's own distributed runtime, and the persistent compilation cache.

`initialize` must run before any JAX computation. With an explicit coordinator it starts a
process group (on CPU, collectives run over gloo); with `auto` it lets JAX detect the cluster
(Cloud TPU, Slurm, Open MPI, Kubernetes). Afterwards `jax.devices()` lists every host's devices:
the engine's mesh spans them all, each host feeds its slice of every global batch
(`jax.make_array_from_process_local_data`), process 0 alone writes logs and samples, and orbax
saves and restores across all processes.
"""

import atexit
import os
import shutil
import tempfile

import jax

from aigc_jax.errors import UserError

CACHE_ENV = "AIGC_JAX_COMPILE_CACHE"  # a directory, or "off"


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, auto: bool = False) -> None:
    if not (coordinator or auto):
        return
    if coordinator and (num_processes is None or process_id is None):
        raise UserError(f"--coordinator {coordinator} needs --num_processes N and --process_id I")
    if coordinator and not 0 <= process_id < num_processes:
        raise UserError(f"--process_id {process_id}: expected 0 <= process_id < --num_processes {num_processes}")
    try:
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                   process_id=process_id)
    except (RuntimeError, ValueError) as e:
        raise UserError(f"could not join the process group at {coordinator or 'the detected cluster'} "
                        f"({str(e).splitlines()[0][:160]}); expected a reachable coordinator") from None


def default_cache_dir() -> str:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "aigc_jax", "jax_compilation_cache")


def enable_compilation_cache(directory: str | None = None) -> str | None:
    """Turn on JAX's persistent compilation cache (default dir under the user's cache; "off" disables).

    A second run of the same family and shapes then loads its compiled steps from disk instead
    of compiling them again. Returns the directory in use, or None when off.
    """
    directory = directory or os.environ.get(CACHE_ENV) or default_cache_dir()
    if directory == "off":
        return None
    os.makedirs(directory, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return directory


def enable_fresh_compilation_cache(prefix: str) -> str:
    """A new, empty persistent cache for this process (its first compile of each step is cold, the
    second warm: what the benchmarks report), removed when the process exits."""
    directory = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, directory, True)
    return enable_compilation_cache(directory)
