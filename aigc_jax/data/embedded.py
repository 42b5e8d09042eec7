"""Building and reading the embedded TFDS datasets (generated or shipped inside installed packages)."""

import os

import tensorflow_datasets as tfds

from aigc_jax.errors import UserError


def prepare(builder_cls: type[tfds.core.GeneratorBasedBuilder], data_dir: str) -> tfds.core.DatasetBuilder:
    """Build `builder_cls` into `data_dir` as array_record once; later calls only open it."""
    builder = builder_cls(data_dir=data_dir, file_format="array_record")
    if not builder.is_prepared():
        tfds.disable_progress_bar()
        try:
            os.makedirs(data_dir, exist_ok=True)
        except OSError as e:
            raise UserError(f"data_dir {data_dir!r} is not writable ({e.strerror}); "
                            f"expected a writable directory for the prepared {builder.name}") from None
        try:
            builder.download_and_prepare()
        except FileExistsError:  # another process (a second host, a test worker) finished it first
            builder = builder_cls(data_dir=data_dir, file_format="array_record")
            if not builder.is_prepared():
                raise
    return builder


def read_all(source, name: str, data_dir: str) -> list[dict]:
    """Every record of a `tfds.data_source` split, in its stored order (one batched read: ~5x faster)."""
    try:
        return list(source.__getitems__(list(range(len(source)))))
    except Exception as e:  # truncated or overwritten array_record files
        raise UserError(f"dataset {name!r} in {data_dir!r} is unreadable ({type(e).__name__}); expected intact "
                        f"array_record files: delete {name}/ there to rebuild or re-prepare it") from None
