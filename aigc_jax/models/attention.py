"""The attention function of the Transformer families: `jax.nn.dot_product_attention`.

Passed as `attention_fn` to Flax's `MultiHeadDotProductAttention`, so parameters, projections and
the KV cache stay Flax's. On a GPU, a causal or unmasked attention in bfloat16/float16 runs cuDNN's
fused flash-attention kernel (`implementation="cudnn"`); everything else (CPU, float32, explicit
masks such as padding or the decode cache's, a head size cuDNN rejects) runs XLA's composition of
the same math. jax.nn's `implementation=None` means XLA today, so the choice is made here, when
the step is traced: cuDNN's own shape and dtype checks decide, and any shape they refuse falls
back to XLA instead of failing the run.

On CPU a causal self-attention over 64 positions or more is computed in blocks of queries, each
against the keys up to its last position only, as flash-attention kernels skip the blocks above
the diagonal: at GPT's cpu shape (128 positions, blocks of 32) the score and weighted-sum products
and the softmax shrink to 10 of 16 blocks, and the whole step ran 5-7% faster
(docs/benchmarks.md, "Causal attention in query blocks"). The result is the same function.
"""

import jax
import jax.numpy as jnp

# Query blocks of CAUSAL_BLOCK positions (more for long sequences: at most MAX_CAUSAL_BLOCKS
# blocks, since each is its own products in the compiled step). Blocks of 16 and 64 gained less.
CAUSAL_BLOCK = 32
MAX_CAUSAL_BLOCKS = 8


def dot_product_attention(query, key, value, mask=None, *, is_causal: bool = False):
    """query [B, T, heads, head_dim], key/value [B, S, heads, head_dim] -> [B, T, heads, head_dim].

    `mask` (0/1 or boolean, broadcastable to [B, heads, T, S]) keeps the True positions; `is_causal`
    applies the causal mask without materialising it (a GPT's training step passes it instead of
    a mask). Scores are scaled by 1/sqrt(head_dim), as in Flax's default.
    """
    if mask is not None:
        mask = mask.astype(bool)  # Flax's masks are 0/1 floats
    elif jax.default_backend() == "gpu":
        try:
            return jax.nn.dot_product_attention(query, key, value, is_causal=is_causal, implementation="cudnn")
        except (NotImplementedError, ValueError, RuntimeError):
            pass  # a dtype, head size or cuDNN version the fused kernel does not take
    length = query.shape[1]
    block = max(CAUSAL_BLOCK, -(-length // MAX_CAUSAL_BLOCKS))
    if (is_causal and mask is None and key.shape[1] == length >= 2 * block
            and jax.default_backend() == "cpu"):
        return _causal_in_query_blocks(query, key, value, block)
    return jax.nn.dot_product_attention(query, key, value, mask=mask, is_causal=is_causal, implementation="xla")


def _causal_in_query_blocks(query, key, value, block: int):
    """Causal self-attention, block of queries by block: each block attends to the keys up to its
    last position, under the causal mask of that rectangle (the blocks above it are all masked)."""
    outs = []
    for start in range(0, query.shape[1], block):
        stop = min(start + block, query.shape[1])
        mask = (start + jnp.arange(stop - start))[:, None] >= jnp.arange(stop)[None, :]
        outs.append(jax.nn.dot_product_attention(query[:, start:stop], key[:, :stop], value[:, :stop],
                                                 mask=mask[None, None], implementation="xla"))
    return jnp.concatenate(outs, axis=1)
